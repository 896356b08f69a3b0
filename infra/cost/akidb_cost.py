#!/usr/bin/env python3
"""AkiDB Edge monthly cost model: usage inputs x cited list prices, line by line.

    python3 akidb_cost.py                      # the plan's breakdown, the CDK defaults, the sensitivity table
    python3 akidb_cost.py --scenario F --json  # one scenario as JSON

Standard library only. Prices come from prices.json (each with its source and date); usage from a scenario
file (scenarios/plan.json) or from the CDK app's infra/config/default.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRICES = HERE / "prices.json"
PLAN = HERE / "scenarios" / "plan.json"
CDK_DEFAULTS = HERE.parent / "config" / "default.json"
LINES = ["central_dc", "cloudfront", "lambda_edge", "jetson", "s3", "route53", "monitoring"]
# A plan line more than this far from what its inputs cost at list price is flagged.
TOLERANCE = 0.05


class InputError(ValueError):
    """A scenario or price file that cannot be costed; the message names the field."""


def _num(d: dict, key: str, where: str) -> float:
    if key not in d:
        raise InputError(f"{where}: missing '{key}'")
    v = d[key]
    if isinstance(v, dict):
        v = v.get("value")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise InputError(f"{where}.{key}: expected a non-negative number, got {v!r}")
    return float(v)


def _regional(prices: dict, key: str, region: str) -> float:
    table = prices["prices"][key]["by_region"]
    if region not in table:
        raise InputError(f"no {key} price for region {region!r} (prices.json has {sorted(table)})")
    return table[region]


def _p(prices: dict, key: str) -> float:
    return prices["prices"][key]["usd"]


def tiered(amount: float, tiers: list) -> float:
    """Cost of `amount` units over [size, price] tiers (size None: everything left)."""
    cost, left = 0.0, amount
    for size, price in tiers:
        take = left if size is None else min(left, size)
        cost += take * price
        left -= take
        if left <= 0:
            break
    return cost


def cost_central_dc(s: dict, prices: dict) -> float:
    hours = prices["hours_per_month"]
    total = 0.0
    regions = s.get("regions")
    if not isinstance(regions, dict) or not regions:
        raise InputError("central_dc.regions: expected a non-empty object of region -> sizes")
    for region, r in regions.items():
        where = f"central_dc.regions.{region}"
        vcpu_h, gb_h = _regional(prices, "fargate_vcpu_hour", region), _regional(prices, "fargate_gb_hour", region)
        for i, t in enumerate(r.get("tasks", [])):
            tw = f"{where}.tasks[{i}]"
            per_hour = _num(t, "vcpu", tw) * vcpu_h + _num(t, "memory_gb", tw) * gb_h
            total += per_hour * _num(t, "count", tw) * hours
        albs = _num(r, "albs", where)
        total += albs * hours * (_regional(prices, "alb_hour", region)
                                 + _num(r, "alb_lcus", where) * _regional(prices, "alb_lcu_hour", region))
        total += _num(r, "internet_egress_gb", where) * _p(prices, "internet_egress_gb")
    return total


def cost_cloudfront(s: dict, prices: dict) -> float:
    egress = _num(s, "egress_gb", "cloudfront")
    requests = _num(s, "https_requests", "cloudfront")
    if s.get("apply_free_tier", False):
        free = prices["prices"]["cloudfront_free_tier"]
        egress, requests = max(0.0, egress - free["egress_gb"]), max(0.0, requests - free["requests"])
    return (tiered(egress, prices["prices"]["cloudfront_egress_gb_tiers"]["tiers"])
            + requests / 10_000 * _p(prices, "cloudfront_https_10k_requests"))


def cost_lambda_edge(s: dict, prices: dict) -> float:
    n = _num(s, "invocations", "lambda_edge")
    gb_s = n * _num(s, "avg_billed_ms", "lambda_edge") / 1000 * _num(s, "memory_mb", "lambda_edge") / 1024
    return n / 1e6 * _p(prices, "lambda_edge_1m_requests") + gb_s * _p(prices, "lambda_edge_gb_second")


def cost_jetson(s: dict, prices: dict) -> float:
    devices = _num(s, "devices", "jetson")
    kwh = devices * _num(s, "watts", "jetson") / 1000 * prices["hours_per_month"]
    months = _num(s, "amortisation_months", "jetson")
    if months == 0:
        raise InputError("jetson.amortisation_months must be positive")
    hardware = devices * _p(prices, "jetson_orin_nx_16gb_module") / months
    return kwh * _p(prices, "electricity_kwh") + hardware + devices * _num(s, "site_cost_per_device_month", "jetson")


def cost_s3(s: dict, prices: dict) -> float:
    return (_num(s, "storage_gb", "s3") * _p(prices, "s3_standard_gb_month")
            + _num(s, "replicated_gb", "s3") * _p(prices, "inter_region_transfer_gb")
            + _num(s, "get_requests", "s3") / 1000 * _p(prices, "s3_get_1k")
            + _num(s, "put_requests", "s3") / 1000 * _p(prices, "s3_put_1k"))


def cost_route53(s: dict, prices: dict) -> float:
    per_m = prices["prices"]["route53_1m_queries"]["by_type"]
    queries = s.get("queries", {})
    cost = _num(s, "hosted_zones", "route53") * _p(prices, "route53_hosted_zone_month")
    for kind, n in queries.items():
        if kind not in per_m:
            raise InputError(f"route53.queries: unknown query type {kind!r} (one of {sorted(per_m)})")
        cost += _num(queries, kind, "route53.queries") / 1e6 * per_m[kind]
    checks = _num(s, "health_checks", "route53")
    return cost + checks * (_p(prices, "route53_health_check_month")
                            + _num(s, "health_check_options", "route53") * _p(prices, "route53_health_check_option_month"))


def cost_monitoring(s: dict, prices: dict) -> float:
    return (_num(s, "custom_metrics", "monitoring") * _p(prices, "cloudwatch_metric_month")
            + max(0.0, _num(s, "dashboards", "monitoring") - 3) * _p(prices, "cloudwatch_dashboard_month")
            + _num(s, "alarms", "monitoring") * _p(prices, "cloudwatch_alarm_month")
            + _num(s, "logs_gb", "monitoring") * _p(prices, "cloudwatch_logs_ingest_gb"))


COSTERS = {
    "central_dc": cost_central_dc, "cloudfront": cost_cloudfront, "lambda_edge": cost_lambda_edge,
    "jetson": cost_jetson, "s3": cost_s3, "route53": cost_route53, "monitoring": cost_monitoring,
}


def compute(scenario: dict, prices: dict) -> dict:
    """Each line's monthly cost, the total, requests a month and the cost per request."""
    lines = {}
    for line in LINES:
        if line not in scenario:
            raise InputError(f"scenario has no '{line}' section")
        lines[line] = COSTERS[line](scenario[line], prices)
    total = sum(lines.values())
    requests = _num(scenario, "global_qps", "scenario") * prices["hours_per_month"] * 3600
    return {"lines": lines, "total": total, "requests_per_month": requests,
            "per_request": total / requests if requests else None}


def compare_with_plan(result: dict, plan: dict) -> list[dict]:
    """Each plan figure beside the model's; `flagged` where they differ by more than TOLERANCE."""
    rows = []
    for key in LINES + ["total", "per_request"]:
        model = result["lines"][key] if key in result["lines"] else result[key]
        planned = plan[key]
        diff = model - planned
        rows.append({"line": key, "plan": planned, "model": model, "diff": diff,
                     "diff_pct": diff / planned * 100, "flagged": abs(diff) > TOLERANCE * planned})
    return rows


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON: {e}") from None


def scenario_from_cdk(cdk: dict, usage: dict) -> dict:
    """The CDK app's default sizes (minimum task counts, its regions, its Lambda@Edge memory) with the usage
    (requests, bytes, devices) of `usage`, since default.json sizes the deployment and says nothing of traffic."""
    try:
        regions = [cdk["regions"]["primary"], *cdk["regions"]["secondary"]]
        svc = cdk["services"]
        tasks = [
            {"name": "akidb-serve", "vcpu": svc["akidbServe"]["cpu"] / 1024,
             "memory_gb": svc["akidbServe"]["memoryMiB"] / 1024, "count": svc["akidbServe"]["minTasks"]},
            {"name": "model-server", "vcpu": svc["modelServer"]["cpu"] / 1024,
             "memory_gb": svc["modelServer"]["memoryMiB"] / 1024, "count": svc["modelServer"]["minTasks"]},
        ]
        lambda_mb = cdk["lambdaEdge"]["memoryMiB"]
        fast_checks = cdk["healthCheck"]["intervalSeconds"] < 30
    except (KeyError, TypeError) as e:
        raise InputError(f"infra/config/default.json: missing or malformed field {e}") from None
    s = copy.deepcopy(usage)
    s["name"] = "the CDK app's default sizes (infra/config/default.json) at the plan's usage"
    s["central_dc"] = {"regions": {r: {"tasks": copy.deepcopy(tasks), "albs": 1, "alb_lcus": 2,
                                       "internet_egress_gb": 0} for r in regions}}
    s["lambda_edge"]["memory_mb"] = lambda_mb
    # One health check per region; HTTPS plus the fast (10 s) interval when the config asks for it.
    s["route53"]["health_checks"] = len(regions)
    s["route53"]["health_check_options"] = 1 + (1 if fast_checks else 0)
    return s


# Usage inputs the sensitivity table doubles: (label, path); '*' walks every key or list element.
SENSITIVITY = [
    ("regional task count", ("central_dc", "regions", "*", "tasks", "*", "count")),
    ("regional task size (vCPU and memory)", ("central_dc", "regions", "*", "tasks", "*", ("vcpu", "memory_gb"))),
    ("CloudFront egress GB", ("cloudfront", "egress_gb")),
    ("CloudFront requests", ("cloudfront", "https_requests")),
    ("Lambda@Edge invocations", ("lambda_edge", "invocations")),
    ("Lambda@Edge duration", ("lambda_edge", "avg_billed_ms")),
    ("Lambda@Edge memory", ("lambda_edge", "memory_mb")),
    ("Jetson devices", ("jetson", "devices")),
    ("S3 storage GB", ("s3", "storage_gb")),
    ("Route 53 queries", ("route53", "queries", "*")),
    ("monitoring logs GB", ("monitoring", "logs_gb")),
]


def scale(node, path: tuple, factor: float) -> int:
    """Multiplies the numbers at `path` in place; returns how many it changed."""
    head, rest = path[0], path[1:]
    keys = (range(len(node)) if isinstance(node, list) else list(node)) if head == "*" else (
        head if isinstance(head, tuple) else (head,))
    changed = 0
    for k in keys:
        if not rest:
            if isinstance(node[k], dict):
                node[k]["value"] *= factor
            else:
                node[k] *= factor
            changed += 1
        else:
            changed += scale(node[k], rest, factor)
    return changed


def sensitivity(scenario: dict, prices: dict) -> list[dict]:
    base = compute(scenario, prices)["total"]
    rows = []
    for label, path in SENSITIVITY:
        doubled = copy.deepcopy(scenario)
        if scale(doubled, path, 2.0) == 0:
            raise InputError(f"sensitivity: {label} matched no input")
        total = compute(doubled, prices)["total"]
        rows.append({"input": label, "total": total, "delta": total - base, "delta_pct": (total - base) / base * 100})
    return sorted(rows, key=lambda r: -r["delta"])


NAMES = {"central_dc": "central DC (regional tier)", "cloudfront": "CloudFront", "lambda_edge": "Lambda@Edge",
         "jetson": "Jetson cluster", "s3": "S3 storage", "route53": "Route 53", "monitoring": "monitoring",
         "total": "total", "per_request": "per request"}


def money(v: float, per_request: bool = False) -> str:
    return f"${v:.7f}" if per_request else f"${v:,.2f}"


def render_plan(rows: list[dict]) -> str:
    out = ["| line | plan | model at list prices | difference | |", "|---|---:|---:|---:|---|"]
    for r in rows:
        pr = r["line"] == "per_request"
        flag = "**flagged: list prices contradict the plan**" if r["flagged"] else "reproduced"
        out.append(f"| {NAMES[r['line']]} | {money(r['plan'], pr)} | {money(r['model'], pr)} | "
                   f"{'+' if r['diff'] >= 0 else '-'}{money(abs(r['diff']), pr)} ({r['diff_pct']:+.0f}%) | {flag} |")
    return "\n".join(out)


def render_lines(result: dict) -> str:
    out = ["| line | monthly |", "|---|---:|"]
    out += [f"| {NAMES[k]} | {money(v)} |" for k, v in result["lines"].items()]
    out.append(f"| total | {money(result['total'])} |")
    out.append(f"| per request ({result['requests_per_month'] / 1e6:,.0f} M a month) | {money(result['per_request'], True)} |")
    return "\n".join(out)


def render_sensitivity(rows: list[dict], base: float) -> str:
    out = [f"| doubling | monthly total | change (from {money(base)}) |", "|---|---:|---:|"]
    out += [f"| {r['input']} | {money(r['total'])} | +{money(r['delta'])} ({r['delta_pct']:+.1f}%) |" for r in rows]
    return "\n".join(out)


def render_sources(prices: dict) -> str:
    out = ["| price | value | unit | source | as of |", "|---|---|---|---|---|"]
    for key, p in prices["prices"].items():
        value = p.get("usd", p.get("by_region", p.get("by_type", p.get("tiers", {k: v for k, v in p.items()
                                                                                    if k in ("egress_gb", "requests")}))))
        value = json.dumps(value).replace("|", "\\|")
        out.append(f"| `{key}` | {value} | {p['unit']} | {p['source']} | {p['date']} |")
    return "\n".join(out)


def report(prices: dict, plan: dict, cdk: dict | None) -> str:
    result = compute(plan, prices)
    parts = ["### The plan's breakdown, from its inputs", "", render_plan(compare_with_plan(result, plan["plan_usd"])), ""]
    requests = result["requests_per_month"]
    implied = plan["plan_usd"]["total"] / plan["plan_usd"]["per_request"]
    parts += [f"At {plan['global_qps']['value']} QPS a month holds {requests / 1e6:,.0f} M requests; the plan's "
              f"${plan['plan_usd']['per_request']} a request implies {implied / 1e6:,.0f} M "
              f"({implied / (prices['hours_per_month'] * 3600):,.0f} QPS on average); the plan's own "
              f"${plan['plan_usd']['total']:,} over {requests / 1e6:,.0f} M requests would be "
              f"{money(plan['plan_usd']['total'] / requests, True)} a request.", ""]
    if cdk is not None:
        cdk_s = scenario_from_cdk(cdk, plan)
        parts += ["### The CDK app's default sizes (infra/config/default.json, minimum task counts) at the plan's usage",
                  "", render_lines(compute(cdk_s, prices)), ""]
    else:
        parts += ["### The CDK app's default sizes", "", f"{CDK_DEFAULTS} is absent: not costed.", ""]
    parts += ["### Sensitivity: what doubling each input of the plan's scenario costs", "",
              render_sensitivity(sensitivity(plan, prices), result["total"]), ""]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prices", type=Path, default=PRICES)
    ap.add_argument("--scenario", type=Path, default=PLAN)
    ap.add_argument("--cdk-config", type=Path, default=CDK_DEFAULTS)
    ap.add_argument("--json", action="store_true", help="the scenario's lines as JSON")
    ap.add_argument("--sources", action="store_true", help="the price table with its sources, as Markdown")
    args = ap.parse_args(argv)
    try:
        prices = load_json(args.prices)
        scenario = load_json(args.scenario)
        if args.sources:
            print(render_sources(prices))
        elif args.json:
            result = compute(scenario, prices)
            if "plan_usd" in scenario:
                result["plan"] = compare_with_plan(result, scenario["plan_usd"])
            print(json.dumps(result, indent=2))
        else:
            cdk = load_json(args.cdk_config) if args.cdk_config.exists() else None
            print(report(prices, scenario, cdk), end="")
    except InputError as e:
        print(f"akidb_cost: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
