#!/usr/bin/env python3
"""Every metric a dashboard query, recording rule or alert uses must be one a
running cxpulse really exports.

    check_metric_names.py CXPULSE REPO

Collects the PromQL of deploy/grafana/*.json (panel targets and template
variables) and deploy/prometheus/*-rules.yml, takes out every metric name
(`cxpulse_...`; `cxpulse:...` names must be recorded by a recording rule,
whose own names are checked in turn; `up` and `ALERTS` are Prometheus'
own), then starts
a mock Kafka, the daemon and `cxpulse gen` traffic, and scrapes /metrics
until every name has appeared, failing with the list of names that never do.
Strict: a name the daemon does not export yet fails the check.
"""
import glob
import json
import re
import sys
import time

import yaml

from cxpulse_stack import Stack, http_get, sample_names

CXPULSE, REPO = sys.argv[1], sys.argv[2]
PROMETHEUS_OWN = {"up", "ALERTS"}  # written by Prometheus itself, not scraped
SCRAPE_DEADLINE_S = 30

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME = re.compile(r"(?<![A-Za-z0-9_:.$])(cxpulse[_:][A-Za-z0-9_:]*|up|ALERTS)(?![A-Za-z0-9_:(])")


def metric_names(promql):
    """Metric names in a PromQL expression (or a Grafana label_values() query)."""
    return set(_NAME.findall(_STRING.sub('""', promql)))


def dashboard_queries(path):
    """(where, promql) for every panel target and query variable of a Grafana dashboard."""
    with open(path) as f:
        dashboard = json.load(f)
    out = []

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            out.append((f"{path}: panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"{path}: variable {v['name']}", q))
    for a in dashboard.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append((f"{path}: annotation {a['name']!r}", a["expr"]))
    return out


def rule_files():
    return sorted(glob.glob(f"{REPO}/deploy/prometheus/*-rules.yml"))


def main():
    recorded = {}  # recording-rule name -> names its expression uses
    uses = []      # (where, names)
    for path in rule_files():
        with open(path) as f:
            for group in yaml.safe_load(f)["groups"]:
                for rule in group["rules"]:
                    names = metric_names(rule["expr"])
                    if "record" in rule:
                        recorded[rule["record"]] = names
                    uses.append((f"{path}: {rule.get('record') or rule.get('alert')}", names))
    dashboards = sorted(glob.glob(f"{REPO}/deploy/grafana/*.json"))
    for path in dashboards:
        for where, q in dashboard_queries(path):
            uses.append((where, metric_names(q)))
    # A check that found nothing to check would pass for the wrong reason.
    assert dashboards and rule_files(), "no dashboards or rule files found"
    for where, names in uses:
        assert names, f"{where}: no metric name found in its query"

    needed = {}  # exported name -> first place that needs it
    for where, names in uses:
        for n in names:
            if n.startswith("cxpulse:"):
                if n not in recorded:
                    print(f"{where}: {n} is not recorded by any recording rule")
                    needed.setdefault(n, where)  # cannot exist
                continue
            if n not in PROMETHEUS_OWN:
                needed.setdefault(n, where)
    print(f"{len(uses)} queries use {len(needed)} exported metric names")

    with Stack(CXPULSE) as stack:
        brokers = stack.mock_kafka()
        port = stack.daemon(brokers, f"{REPO}/rules")
        print(stack.gen(brokers, "--start", "now-2h", "--duration", "2h", "--rate", "2", "--seed", "3",
                        "--incident", "agents-lost:billing:1h30m:30m:0.2"))
        deadline = time.monotonic() + SCRAPE_DEADLINE_S
        while True:
            exported = sample_names(http_get(f"http://127.0.0.1:{port}/metrics")[1])
            missing = sorted(n for n in needed if n not in exported)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
    print(f"the daemon exported {len(exported)} sample names")
    for n in missing:
        print(f"MISSING {n} (used by {needed[n]})")
    if missing:
        print(f"FAIL: {len(missing)} metric names used in deploy/ are not exported by cxpulse")
        sys.exit(1)
    print("PASS: every metric name used in deploy/ is exported")


if __name__ == "__main__":
    main()
