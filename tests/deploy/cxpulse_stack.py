"""Processes for the deploy/ tests: a mock Kafka, the cxpulse daemon, the
traffic generator, Prometheus and Alertmanager, each on loopback with an
ephemeral port and a temp dir, all killed when the test process exits (even
when ctest kills it: every child gets PR_SET_PDEATHSIG).

Only the Python standard library.
"""
import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    """A loopback port nobody listens on now (the OS's next ephemeral one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, ""


def http_json(url):
    status, body = http_get(url)
    return json.loads(body) if status == 200 else None


def wait_until(what, probe, timeout, interval=0.5):
    """Polls probe() until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sample_names(exposition):
    """Names of the samples in a Prometheus text exposition (a histogram gives _bucket, _sum, _count)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


class Stack(contextlib.AbstractContextManager):
    """Owns a temp dir and every process started through it."""

    def __init__(self, cxpulse):
        self.cxpulse = cxpulse
        self._tmp = tempfile.TemporaryDirectory(prefix="cxpulse-deploy-")
        self.dir = self._tmp.name
        self._procs = []

    def __exit__(self, *exc):
        for p, _ in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
        for p, _ in reversed(self._procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()
        if exc[0] is not None:
            self.dump_logs()
        self._tmp.cleanup()
        return False

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def dump_logs(self):
        for _, log in self._procs:
            with open(log, errors="replace") as f:
                tail = f.read()[-3000:]
            print(f"----- {os.path.basename(log)} (tail)\n{tail}", file=sys.stderr)

    def start(self, name, argv, stdout=None):
        log = self.path(name + ".log")
        out = open(log, "w")
        p = subprocess.Popen(argv, stdout=stdout or out, stderr=out, stdin=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent, cwd=self.dir)
        out.close()
        self._procs.append((p, log))
        return p

    def log(self, name):
        with open(self.path(name + ".log"), errors="replace") as f:
            return f.read()

    # mock-kafka's own defaults, and the changelog of daemon()'s group.
    DEFAULT_TOPICS = ("cx.interactions:8", "cx.findings:1", "cx.deadletter:1", "cxpulse-changelog:8",
                      "deploy-test-changelog:8")

    def mock_kafka(self, extra_topics=()):
        """`cxpulse mock-kafka` with its default topics and `extra_topics` (NAME:PARTITIONS); returns the
        bootstrap servers."""
        topics = [arg for t in (*self.DEFAULT_TOPICS, *extra_topics) for arg in ("--topic", t)]
        p = self.start("mock-kafka", [self.cxpulse, "mock-kafka", *topics], stdout=subprocess.PIPE)
        line = p.stdout.readline().decode().strip()
        if not re.fullmatch(r"[0-9.:,]+", line):
            raise AssertionError(f"mock-kafka printed {line!r}, not its bootstrap servers")
        return line

    def daemon(self, brokers, rules, engine="{}"):
        """`cxpulse run` on the repository's rules, admin on an ephemeral port; returns that port."""
        config = self.write("cxpulse.yaml",
                            f"kafka: {{brokers: '{brokers}', group_id: deploy-test}}\n"
                            f"rules: {rules}\nadmin: {{address: '127.0.0.1:0'}}\nengine: {engine}\n")
        return self.run_daemon(config, "cxpulse")[1]

    def run_daemon(self, config, name):
        """Starts `cxpulse run --config CONFIG` (admin address port 0) and waits until it has partitions
        assigned; returns (process, admin port)."""
        p = self.start(name, [self.cxpulse, "run", "--config", config, "--shards", "2"])
        def serving():
            if p.poll() is not None:
                raise AssertionError(f"{name} exited {p.returncode}:\n{self.log(name)}")
            return re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", self.log(name))
        port = wait_until(f"{name} to serve /metrics", serving, 30, 0.1)
        port = int(port.group(1))
        wait_until(f"{name} /readyz (partitions assigned)",
                   lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, 0.2)
        return p, port

    def gen(self, brokers, *args):
        """Runs `cxpulse gen` to the mock Kafka until it is done."""
        r = subprocess.run([self.cxpulse, "gen", "--brokers", brokers, *args], capture_output=True, text=True,
                           timeout=120, preexec_fn=_die_with_parent)
        if r.returncode != 0:
            raise AssertionError(f"cxpulse gen exited {r.returncode}: {r.stderr}")
        return r.stderr.strip()
