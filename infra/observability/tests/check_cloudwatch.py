#!/usr/bin/env python3
"""Checks every CloudWatch query of the generated dashboards against the names AWS documents
(cloudwatch-metrics.json): namespace, metric, dimension keys and fixed values, statistic, region, and
for Logs Insights queries the log group and every @field. Exits non-zero naming each offence."""

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def cloudwatch_targets(dashboard: dict):
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if (target.get("datasource") or {}).get("type") == "cloudwatch":
                yield panel.get("title", "?"), target


def check(dashboard: dict, doc: dict) -> tuple[list[str], int]:
    problems, checked = [], 0
    stat_names = set(doc["statistics"]["names"])
    pct = re.compile(doc["statistics"]["percentile_pattern"])
    for title, t in cloudwatch_targets(dashboard):
        checked += 1
        where = f"panel {title!r} {t.get('refId')}"
        mode = t.get("queryMode")
        if mode == "Metrics":
            ns = doc["namespaces"].get(t.get("namespace"))
            if ns is None:
                problems.append(f"{where}: namespace {t.get('namespace')!r} is not documented")
                continue
            if t.get("metricName") not in ns["metrics"]:
                problems.append(f"{where}: {t.get('namespace')} has no metric {t.get('metricName')!r}")
            for key, value in (t.get("dimensions") or {}).items():
                if key not in ns["dimensions"]:
                    problems.append(f"{where}: {t.get('namespace')} has no dimension {key!r}")
                elif ns["dimensions"][key] is not None and value not in ns["dimensions"][key]:
                    problems.append(f"{where}: dimension {key}={value!r}, documented: {ns['dimensions'][key]}")
            stat = t.get("statistic")
            if stat not in stat_names and not pct.match(stat or ""):
                problems.append(f"{where}: statistic {stat!r} is not a CloudWatch statistic")
            if ns["region"] is not None and t.get("region") != ns["region"]:
                problems.append(f"{where}: {t.get('namespace')} is published in {ns['region']}, query asks {t.get('region')!r}")
        elif mode == "Logs":
            logs = doc["logs"]
            for group in t.get("logGroupNames") or []:
                if not re.match(logs["log_group_pattern"], group):
                    problems.append(f"{where}: log group {group!r} is not a Lambda@Edge log group")
            fields = set(re.findall(r"@\w+", t.get("expression", "")))
            for f in sorted(fields - set(logs["lambda_fields"])):
                problems.append(f"{where}: Logs Insights field {f} is not a documented Lambda field")
            if not t.get("expression"):
                problems.append(f"{where}: empty Logs Insights query")
        else:
            problems.append(f"{where}: unknown CloudWatch query mode {mode!r}")
    return problems, checked


def main(argv: list[str]) -> int:
    doc = json.loads((HERE / "cloudwatch-metrics.json").read_text())
    files = [Path(a) for a in argv] or sorted((HERE / "generated").glob("*.json"))
    total, bad = 0, []
    for f in files:
        problems, checked = check(json.loads(f.read_text()), doc)
        total += checked
        bad += [f"{f.name}: {p}" for p in problems]
    for p in bad:
        print(p, file=sys.stderr)
    if total == 0:
        print("no CloudWatch query found: nothing was checked", file=sys.stderr)
        return 1
    print(f"{total} CloudWatch queries checked, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
