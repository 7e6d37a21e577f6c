#!/usr/bin/env python3
"""Structural checks of deploy/ that its tools' own linters do not make.

    check_deploy_files.py CXPULSE REPO

- kubernetes/: the four objects, probes on /healthz and /readyz at the admin
  port, resources, a non-root read-only container, config from the ConfigMap,
  and that the Service, ServiceMonitor and Deployment point at each other;
- container/Containerfile (no Docker or Podman engine runs here, and Debian 12
  packages no Dockerfile linter, so this parses its instructions): a Debian 12
  multi-stage build, a non-root numeric USER, EXPOSE 9464, a HEALTHCHECK on
  /healthz, and runtime packages that provide every shared library the built
  binary needs (dpkg -S on its DT_NEEDED entries);
- the shipped config files (systemd, container, ConfigMap) are accepted by the
  real `cxpulse run` (unknown keys are errors there) and bind 0.0.0.0:9464;
- prometheus/: every alert has a severity, a summary and a description, and a
  promtool test in which it fires and one in which it does not;
- grafana/: panel ids unique, every query on the dashboard's datasource
  variable, every $variable defined.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import unittest

import yaml

from cxpulse_stack import Stack

CXPULSE, REPO = sys.argv[1], sys.argv[2]
DEPLOY = os.path.join(REPO, "deploy")
ADMIN = "0.0.0.0:9464"
# In every debian:12 image already (apt needs them).
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def kubernetes_objects():
    objects = {}
    for path in sorted(glob.glob(f"{DEPLOY}/kubernetes/*.yaml")):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    objects[doc["kind"]] = doc
    return objects


def containerfile_stages():
    """[(from-line words, [(INSTRUCTION, arguments)])], continuation lines joined, comments dropped."""
    with open(f"{DEPLOY}/container/Containerfile") as f:
        text = f.read()
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        lines.append(current.strip())
        current = ""
    stages = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        if instruction == "FROM":
            stages.append((args.split(), []))
        else:
            stages[-1][1].append((instruction, args.strip()))
    return stages


def instructions(stage, name):
    return [args for instruction, args in stage[1] if instruction == name]


def flag(args, name):
    m = re.search(rf"--{name}=(\S+)", args)
    return m.group(1) if m else None


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.objects = kubernetes_objects()
        self.deployment = self.objects["Deployment"]
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]

    def test_the_four_objects_with_names(self):
        self.assertEqual(set(self.objects), {"Deployment", "Service", "ServiceMonitor", "ConfigMap"})
        for kind, o in self.objects.items():
            self.assertTrue(o.get("apiVersion"), kind)
            self.assertTrue(o["metadata"].get("name"), kind)

    def test_selector_matches_pod_labels(self):
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        for k, v in self.deployment["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(labels.get(k), v)
        for k, v in self.objects["Service"]["spec"]["selector"].items():
            self.assertEqual(labels.get(k), v, "Service does not select the pods")

    def container_port(self, port):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        return ports.get(port, port)

    def test_probes_on_health_endpoints_at_the_admin_port(self):
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = self.container[probe]["httpGet"]
            self.assertEqual(get["path"], path, probe)
            self.assertEqual(self.container_port(get["port"]), 9464, probe)

    def test_resources_and_security(self):
        for kind in ("requests", "limits"):
            self.assertEqual(set(self.container["resources"][kind]), {"cpu", "memory"}, kind)
        self.assertIs(self.pod["securityContext"]["runAsNonRoot"], True)
        self.assertNotEqual(self.pod["securityContext"].get("runAsUser"), 0)
        sc = self.container["securityContext"]
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])

    def test_user_matches_the_image(self):
        final = containerfile_stages()[-1]
        uid = instructions(final, "USER")[-1].split(":")[0]
        self.assertEqual(str(self.pod["securityContext"]["runAsUser"]), uid)

    def test_config_comes_from_the_configmap(self):
        config = self.container["args"][self.container["args"].index("--config") + 1]
        mounts = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        configmap = self.objects["ConfigMap"]
        name = next(n for n, v in volumes.items() if v.get("configMap", {}).get("name") == configmap["metadata"]["name"])
        self.assertEqual(os.path.dirname(config), mounts[name])
        self.assertIn(os.path.basename(config), configmap["data"])

    def test_servicemonitor_scrapes_the_service_port(self):
        monitor, service = self.objects["ServiceMonitor"], self.objects["Service"]
        for k, v in monitor["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(service["metadata"]["labels"].get(k), v)
        port_names = {p["name"]: p for p in service["spec"]["ports"]}
        endpoint = monitor["spec"]["endpoints"][0]
        self.assertIn(endpoint["port"], port_names)
        self.assertEqual(self.container_port(port_names[endpoint["port"]]["targetPort"]), 9464)
        self.assertEqual(endpoint["path"], "/metrics")
        # The alert rules and dashboard select job="cxpulse".
        self.assertEqual(service["metadata"]["labels"][monitor["spec"]["jobLabel"]], "cxpulse")


class Containerfile(unittest.TestCase):
    KNOWN = {"FROM", "RUN", "COPY", "ADD", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "ENV",
             "ARG", "LABEL", "STOPSIGNAL", "VOLUME", "SHELL", "ONBUILD"}

    def setUp(self):
        self.stages = containerfile_stages()
        self.final = self.stages[-1]

    def test_instructions_are_known(self):
        for _, body in self.stages:
            for instruction, _ in body:
                self.assertIn(instruction, self.KNOWN)

    def test_debian_12_multi_stage_build(self):
        self.assertGreaterEqual(len(self.stages), 2)
        for words, _ in self.stages:
            self.assertRegex(words[0], r"^(docker\.io/library/)?debian:12(-slim)?$")
        build = self.stages[0]
        self.assertEqual(build[0][1:], ["AS", "build"])
        runs = " ".join(instructions(build, "RUN"))
        self.assertIn("bash deploy/install-deps.sh", runs)
        self.assertIn("--target cxpulse", runs)
        names = {w[2] for w, _ in self.stages[:-1] if len(w) == 3}
        for args in instructions(self.final, "COPY"):
            if flag(args, "from"):
                self.assertIn(flag(args, "from"), names)
            else:
                source = args.split()[0]
                self.assertTrue(os.path.exists(os.path.join(REPO, source)), f"COPY {source}: not in the repository")

    def test_runs_as_non_root_and_serves_health_on_9464(self):
        user = instructions(self.final, "USER")[-1]
        self.assertRegex(user, r"^[1-9][0-9]*(:[0-9]+)?$", "USER must be a numeric non-root uid (runAsNonRoot)")
        self.assertEqual(instructions(self.final, "EXPOSE"), ["9464"])
        health = instructions(self.final, "HEALTHCHECK")[-1]
        command = json.loads(health[health.index("CMD") + 3:])
        self.assertIn("http://127.0.0.1:9464/healthz", command)
        self.assertIn("curl", self.runtime_packages())
        entry = json.loads(instructions(self.final, "ENTRYPOINT")[-1])
        self.assertEqual(entry, ["/usr/local/bin/cxpulse"])
        cmd = json.loads(instructions(self.final, "CMD")[-1])
        config = cmd[cmd.index("--config") + 1]
        copied = {a.split()[-1]: a.split()[-2] for a in instructions(self.final, "COPY")}
        self.assertIn(config, copied, "the default config is not in the image")

    def runtime_packages(self):
        words = shlex.split(" ".join(instructions(self.final, "RUN")))
        start = words.index("install")
        end = words.index("&&", start)
        return {w for w in words[start + 1:end] if not w.startswith("-")}

    def test_runtime_packages_provide_every_needed_library(self):
        needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(["objdump", "-p", CXPULSE], capture_output=True,
                                                               text=True, check=True).stdout)
        self.assertIn("librdkafka.so.1", needed)
        resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(["ldd", CXPULSE], capture_output=True,
                                                                         text=True, check=True).stdout, re.M))
        missing = {}
        for lib in needed:
            owner = None
            for path in (resolved[lib], os.path.realpath(resolved[lib])):
                r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0]
                    break
            self.assertIsNotNone(owner, f"no Debian package owns {resolved[lib]}")
            if owner not in self.runtime_packages() | BASE_IMAGE_PACKAGES:
                missing[lib] = owner
        self.assertEqual(missing, {}, "libraries the runtime stage does not install")

    def test_build_context_leaves_out_build_dirs(self):
        with open(os.path.join(REPO, ".dockerignore")) as f:
            ignored = f.read().split()
        self.assertIn("build/", ignored)


class ShippedConfigs(unittest.TestCase):
    """Each config file the deployment ships starts the real daemon."""

    def configs(self):
        configmap = kubernetes_objects()["ConfigMap"]
        return {
            "systemd/cxpulse.yaml": load_yaml(f"{DEPLOY}/systemd/cxpulse.yaml"),
            "container/cxpulse.yaml": load_yaml(f"{DEPLOY}/container/cxpulse.yaml"),
            "kubernetes ConfigMap": yaml.safe_load(configmap["data"]["cxpulse.yaml"]),
        }

    def test_bind_all_interfaces_on_9464(self):
        for name, config in self.configs().items():
            self.assertEqual(config["admin"]["address"], ADMIN, name)

    def test_the_daemon_accepts_them(self):
        configs = self.configs()
        group = {name: "check-" + re.sub(r"\W+", "-", name) for name in configs}
        with Stack(CXPULSE) as stack:
            # Each group's changelog, with the input's 8 partitions.
            brokers = stack.mock_kafka([f"{g}-changelog:8" for g in group.values()])
            for name, config in configs.items():
                with self.subTest(name):
                    # Only what cannot work here changes: brokers, rules path, port, and a group
                    # per run (the mock cluster is slow to hand a left group's partitions on).
                    config["kafka"]["brokers"] = brokers
                    config["kafka"]["group_id"] = group[name]
                    config["rules"] = os.path.join(REPO, "rules")
                    config["admin"]["address"] = "127.0.0.1:0"
                    path = stack.write("config.yaml", yaml.safe_dump(config))
                    p, _ = stack.run_daemon(path, config["kafka"]["group_id"])
                    p.terminate()
                    self.assertEqual(p.wait(timeout=30), 0, stack.log(config['kafka']['group_id']))


class AlertRules(unittest.TestCase):
    def test_every_alert_has_severity_and_says_what_to_do(self):
        for group in load_yaml(f"{DEPLOY}/prometheus/alert-rules.yml")["groups"]:
            for rule in group["rules"]:
                self.assertIn(rule["labels"]["severity"], {"critical", "warning", "info"}, rule["alert"])
                self.assertTrue(rule["annotations"]["summary"], rule["alert"])
                self.assertGreater(len(rule["annotations"]["description"]), 80, rule["alert"])

    def test_every_alert_is_tested_firing_and_not_firing(self):
        fires, silent = set(), set()
        for path in glob.glob(f"{DEPLOY}/prometheus/tests/*.yml"):
            for test in load_yaml(path)["tests"]:
                for case in test.get("alert_rule_test", []):
                    (fires if case.get("exp_alerts") else silent).add(case["alertname"])
        alerts = {r["alert"] for g in load_yaml(f"{DEPLOY}/prometheus/alert-rules.yml")["groups"] for r in g["rules"]}
        self.assertGreaterEqual(len(alerts), 6)
        self.assertEqual(alerts - fires, set(), "alerts never tested firing")
        self.assertEqual(alerts - silent, set(), "alerts never tested not firing")


class Dashboard(unittest.TestCase):
    def setUp(self):
        with open(f"{DEPLOY}/grafana/cxpulse-dashboard.json") as f:
            self.dashboard = json.load(f)

    def test_panels_and_variables(self):
        panels = self.dashboard["panels"]
        self.assertEqual(len({p["id"] for p in panels}), len(panels), "panel ids repeat")
        variables = {v["name"] for v in self.dashboard["templating"]["list"]}
        titles = set()
        for p in panels:
            if p["type"] == "row":
                continue
            titles.add(p["title"])
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                for var in re.findall(r"\$(\w+)", t["expr"]):
                    if not var.startswith("__"):
                        self.assertIn(var, variables, f"{p['title']}: ${var}")
        for wanted in ("Service level by queue", "Abandon ratio by queue", "Average speed of answer",
                       "Repeat contact ratio", "Callbacks due, made and missed", "Findings per second by rule",
                       "Events consumed per second", "Consumer lag", "Decode errors, late events, dead letters",
                       "Batch duration", "Rule reloads"):
            self.assertIn(wanted, titles)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
