#!/usr/bin/env python3
"""Runs every PromQL expression of the generated dashboards and of the Prometheus rules against a live
Prometheus through its HTTP API and requires each to return data, so that no panel or rule queries a
metric or label no service exports. Variables are replaced as Grafana would with every value selected
($region -> .*, $__rate_interval -> 1m); label_values() variables must find their label on some series;
recording rules must have produced their series; an alert `signal OP number` must have data for its
signal (the comparison itself may rightly be empty while nothing is wrong).

    check_queries.py PROMETHEUS_URL [--wait SECONDS]"""

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent.parent
SUBSTITUTIONS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
ALERT_SHAPE = re.compile(r"^(?P<signal>.+?)\s*(?P<op>[<>]=?|[=!]=)\s*(?P<threshold>-?[0-9.]+(?:e-?[0-9]+)?)$", re.S)


def substitute(expr: str) -> str:
    for k, v in SUBSTITUTIONS.items():
        expr = expr.replace(k, v)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def dashboard_queries():
    for f in sorted((HERE / "generated").glob("*.json")):
        d = json.loads(f.read_text())
        for var in d.get("templating", {}).get("list", []):
            q = var.get("query")
            if var.get("type") == "query" and isinstance(q, dict):
                m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q["query"])
                if not m:
                    raise SystemExit(f"{f.name}: variable {var['name']}: unsupported query {q['query']!r}")
                yield ("label", f"{f.name} variable ${var['name']}", m.group(1), m.group(2))
        for panel in d.get("panels", []):
            for t in panel.get("targets", []):
                if (t.get("datasource") or {}).get("type") == "prometheus":
                    yield ("data", f"{f.name} panel {panel['title']!r} {t['refId']}", t["expr"], None)


def rule_queries():
    doc = yaml.safe_load((HERE / "prometheus" / "rules.yml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                yield ("data", f"rule {rule['record']}", rule["expr"], None)
                yield ("data", f"recorded series {rule['record']}", rule["record"], None)
            else:
                m = ALERT_SHAPE.match(rule["expr"].strip())
                if not m:
                    raise SystemExit(f"alert {rule['alert']}: expression is not `signal OP number`: {rule['expr']!r}")
                yield ("data", f"alert {rule['alert']} signal", m.group("signal"), None)
                yield ("valid", f"alert {rule['alert']}", rule["expr"], None)


def api(base: str, path: str, params: list) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def check(base: str, kind: str, expr: str, label) -> str | None:
    """None when it passes, else why not."""
    if kind == "label":
        r = api(base, "/api/v1/series", [("match[]", substitute(expr))])
        if r.get("status") != "success":
            return f"error: {r.get('error')}"
        values = sorted({s[label] for s in r["data"] if label in s})
        return None if values else f"no series of {expr} has label {label!r}"
    r = api(base, "/api/v1/query", [("query", substitute(expr))])
    if r.get("status") != "success":
        return f"error: {r.get('error')}"
    if kind == "data" and not r["data"]["result"]:
        return "no data"
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("prometheus")
    ap.add_argument("--wait", type=float, default=30, help="keep retrying failing queries this long")
    a = ap.parse_args()
    queries = list(dashboard_queries()) + list(rule_queries())
    deadline = time.monotonic() + a.wait
    while True:
        failures = [(name, expr, why) for kind, name, expr, label in queries
                    if (why := check(a.prometheus, kind, expr, label)) is not None]
        if not failures or time.monotonic() > deadline:
            break
        time.sleep(2)
    for name, expr, why in failures:
        print(f"FAIL {name}: {why}\n     {substitute(expr)}", file=sys.stderr)
    print(f"{len(queries) - len(failures)} of {len(queries)} queries returned data")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
