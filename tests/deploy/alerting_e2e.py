#!/usr/bin/env python3
"""End to end: an incident in generated traffic becomes an alert in Prometheus
and reaches Alertmanager.

    alerting_e2e.py CXPULSE REPO

Starts on loopback: a mock Kafka (`cxpulse mock-kafka`), the daemon on the
repository's rule pack, Debian's Alertmanager, and Debian's Prometheus with
deploy/prometheus's recording and alert rules (scraping every second, and
with each alert's `for` cut to 0 so the test need not wait minutes). Once
Prometheus has scraped the daemon, `cxpulse gen` writes 7 hours of traffic
(simulated time, as fast as it can) with a surge of `outage` contacts after
6h30m and, in `billing`, 90% of the agents lost after 6h20m. Then:

- CxpulseReasonSurge (from cxpulse_findings_total{rule="reason_surge"}) must
  be firing in Prometheus (/api/v1/alerts) and be held by Alertmanager
  (/api/v2/alerts); it must not have fired before the traffic;
- CxpulseAbandonmentSpike (from the KPI gauges, through the recording rules)
  must do the same for queue billing, and must not have fired before either.
"""
import sys
import time

import yaml

from cxpulse_stack import Stack, free_port, http_get, http_json, wait_until

CXPULSE, REPO = sys.argv[1], sys.argv[2]
DEADLINE_S = 90


def prometheus_alerts(port):
    body = http_json(f"http://127.0.0.1:{port}/api/v1/alerts")
    return body["data"]["alerts"] if body else []


def alertmanager_alerts(port):
    return http_json(f"http://127.0.0.1:{port}/api/v2/alerts") or []


def firing(alerts, name, **labels):
    return [a for a in alerts if a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
            and a.get("state", a.get("status", {}).get("state")) in ("firing", "active")]


def rules_without_for(stack, name):
    """A copy of a deploy/prometheus rule file with every `for` at 0."""
    with open(f"{REPO}/deploy/prometheus/{name}") as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    return stack.write(name, yaml.safe_dump(rules))


def main():
    started = time.monotonic()
    with Stack(CXPULSE) as stack:
        brokers = stack.mock_kafka()
        daemon = stack.daemon(brokers, f"{REPO}/rules")

        am = free_port()
        stack.write("alertmanager.yml", "route: {receiver: test, group_wait: 1s, group_interval: 1s}\n"
                                        "receivers: [{name: test}]\n")
        stack.start("alertmanager", ["prometheus-alertmanager", "--config.file", stack.path("alertmanager.yml"),
                                     "--storage.path", stack.path("am-data"), "--cluster.listen-address=",
                                     f"--web.listen-address=127.0.0.1:{am}"])

        prom = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules_without_for(stack, "recording-rules.yml"),
                           rules_without_for(stack, "alert-rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am}"]}]}]},
            "scrape_configs": [{"job_name": "cxpulse", "static_configs": [{"targets": [f"127.0.0.1:{daemon}"]}]}],
        }
        stack.write("prometheus.yml", yaml.safe_dump(config))
        stack.start("prometheus", ["prometheus", "--config.file", stack.path("prometheus.yml"),
                                   "--storage.tsdb.path", stack.path("prom-data"),
                                   f"--web.listen-address=127.0.0.1:{prom}"])
        for port, name in ((am, "Alertmanager"), (prom, "Prometheus")):
            wait_until(f"{name} ready", lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 30)
        # The findings counter must be seen at 0 before the surge, or increase() has nothing to compare with.
        q = f"http://127.0.0.1:{prom}/api/v1/query?query=cxpulse_findings_total%7Brule%3D%22reason_surge%22%7D"
        wait_until("Prometheus to scrape cxpulse", lambda: (http_json(q) or {}).get("data", {}).get("result"), 30)
        wait_until("Prometheus to evaluate the alert rules",
                   lambda: (http_json(f"http://127.0.0.1:{prom}/api/v1/rules") or {}).get("data", {}).get("groups"),
                   30)
        for name in ("CxpulseReasonSurge", "CxpulseAbandonmentSpike"):
            assert not firing(prometheus_alerts(prom), name), f"{name} before any traffic"

        summary = stack.gen(brokers, "--start", "now-7h", "--duration", "7h", "--rate", "1", "--seed", "11",
                            "--incident", "surge:outage:6h30m:20m:2",
                            "--incident", "agents-lost:billing:6h20m:40m:0.1")
        print(f"gen: {summary}")

        expected = [("CxpulseReasonSurge", {"rule": "reason_surge"}),
                    ("CxpulseAbandonmentSpike", {"queue": "billing", "window": "15m"})]
        for name, labels in expected:
            wait_until(f"{name} {labels} firing in Prometheus",
                       lambda: firing(prometheus_alerts(prom), name, **labels), DEADLINE_S)
            print(f"Prometheus: {name} firing after {time.monotonic() - started:.1f}s")
            got = wait_until(f"{name} {labels} in Alertmanager",
                             lambda: firing(alertmanager_alerts(am), name, **labels), DEADLINE_S)
            print(f"Alertmanager: {name} active after {time.monotonic() - started:.1f}s: {got[0]['labels']}")
            assert got[0]["annotations"]["description"], "alert reached Alertmanager without its description"
        metrics = http_get(f"http://127.0.0.1:{daemon}/metrics")[1]
        surges = [l for l in metrics.splitlines() if l.startswith('cxpulse_findings_total{') and 'reason_surge' in l]
        print(f"daemon: {surges}")
    print(f"PASS in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
