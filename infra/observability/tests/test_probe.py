#!/usr/bin/env python3
"""akidb-probe against simulated regions: a userspace delay proxy (delay_proxy.py) on loopback addresses
in front of a live model-server and `akidb serve`, with known added round trips.

Checks: the measured P50 time to first byte of each simulated region equals the direct P50 plus the
injected round trip, within `tolerances` (3 ms + 10% of the injection; embeddings more, above all on the
late side: see there); a run within its budgets exits 0, a budget breach exits 2, and the JSON and SVG
reports are written and well formed.

    test_probe.py --probe BIN --model-server URL --regional URL --blob SHA256"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Simulated regions: loopback address, one-way delay in ms (a round trip adds twice that).
REGIONS = {"sim-near": ("127.0.0.2", 10), "sim-far": ("127.0.0.3", 30)}


def free_port(host: str) -> int:
    import socket
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def raise_priority() -> None:
    # The proxy's timers fire late when the machine is busy (measured here at load 14 on 2 cores: +5-6 ms
    # per round trip at normal priority, +2 ms at nice -15), and lateness is added latency the test did not
    # inject. Root may raise the proxy's priority; anyone else runs it as it is.
    try:
        os.nice(-15)
    except PermissionError:
        pass


def endpoints(ms_base: str, ak_base: str, blob: str) -> list:
    return [
        {"name": "manifest", "url": f"{ms_base}/v1/models/all-MiniLM-L6-v2/latest/manifest.json"},
        {"name": "blob-range", "url": f"{ms_base}/v1/blobs/sha256/{blob}", "headers": {"Range": "bytes=0-65535"}},
        {"name": "embed", "method": "POST", "url": f"{ak_base}/v1/embed",
         "headers": {"Content-Type": "application/json"}, "body": json.dumps({"texts": ["how far is the edge?"]})},
    ]


def run_probe(probe: str, config: dict, work: Path, name: str) -> tuple[int, dict, str]:
    cfg = work / f"{name}.json"
    cfg.write_text(json.dumps(config))
    out_json, out_svg = work / f"{name}-report.json", work / f"{name}.svg"
    p = subprocess.run([probe, "--config", str(cfg), "--from", "test-machine", "--json-out", str(out_json),
                        "--svg", str(out_svg)], capture_output=True, text=True, timeout=300)
    print(p.stdout, end="")
    print(p.stderr, end="", file=sys.stderr)
    report = json.loads(out_json.read_text())
    ET.parse(out_svg)  # well-formed SVG, or this raises
    return p.returncode, report, p.stdout


def p50(report: dict, region: str, endpoint: str, phase: str = "ttfb") -> float:
    for r in report["results"]:
        if r["region"] == region and r["endpoint"] == endpoint:
            assert r["failed"] == 0, r
            return next(p["p50_ms"] for p in r["phases"] if p["phase"] == phase)
    raise AssertionError(f"no result for {region}/{endpoint}")


def tolerances(endpoint: str, injected: float, direct: float) -> tuple[float, float]:
    """How far a simulated region's P50 may fall below and above the direct P50 plus the injected round trip.

    3 ms + 10% of the injection either way (the proxy's timers), and for embeddings a quarter of the direct
    P50 more (their service time varies on a shared machine). Above, embeddings get the direct P50 once
    more: the direct run sends them back to back, while through the proxy one arrives every 25-70 ms, after
    the CPU sat idle, and such an embedding takes about twice as long (`akidb serve`, int8, 2026-12-04:
    7.9-8.7 ms spaced 25-65 ms apart against 4.4 ms back to back). Idle only adds time, so below stays
    tight: a proxy that delayed one direction only is 10 ms early in the near region and fails."""
    early = 3 + 0.1 * injected + (0.25 * direct if endpoint == "embed" else 0)
    late = early + (direct if endpoint == "embed" else 0)
    return early, late


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True)
    ap.add_argument("--model-server", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--regional", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--blob", required=True)
    ap.add_argument("--requests", type=int, default=30)
    a = ap.parse_args()
    ms_port, ak_port = a.model_server.rsplit(":", 1)[1], a.regional.rsplit(":", 1)[1]
    routes, regions = [], [{"name": "direct", "endpoints": endpoints(a.model_server, a.regional, a.blob)}]
    for name, (addr, one_way) in REGIONS.items():
        pm, pa = free_port(addr), free_port(addr)
        routes += [f"{addr}:{pm}=127.0.0.1:{ms_port}:{one_way}", f"{addr}:{pa}=127.0.0.1:{ak_port}:{one_way}"]
        regions.append({"name": name, "endpoints": endpoints(f"http://{addr}:{pm}", f"http://{addr}:{pa}", a.blob)})
    proxy = subprocess.Popen([sys.executable, str(HERE / "delay_proxy.py"), *routes], stdout=subprocess.PIPE, text=True,
                             preexec_fn=raise_priority)
    failures = []
    try:
        if proxy.stdout.readline().strip() != "ready":
            raise SystemExit("delay proxy did not start")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            # Budgets every simulated region meets (60 ms round trip + a loaded 2-core machine's service time).
            ok_budget = [{"phase": "total", "percentile": 50, "max_ms": 500}]
            rc, report, _ = run_probe(a.probe, {"requests": a.requests, "warmup": 3, "budgets": ok_budget,
                                               "regions": regions}, work, "within")
            if rc != 0:
                failures.append(f"a run within budget exited {rc}")
            for region, (_, one_way) in REGIONS.items():
                injected = 2 * one_way
                for endpoint in ["manifest", "blob-range", "embed"]:
                    direct, measured = p50(report, "direct", endpoint), p50(report, region, endpoint)
                    early, late = tolerances(endpoint, injected, direct)
                    expected = direct + injected
                    verdict = "ok" if -early <= measured - expected <= late else "FAIL"
                    print(f"probe-test: {region}/{endpoint}: P50 ttfb {measured:.1f} ms, expected {direct:.1f} + "
                          f"{injected} = {expected:.1f} -{early:.1f}/+{late:.1f}: {verdict}")
                    if verdict == "FAIL":
                        failures.append(f"{region}/{endpoint} P50 {measured:.1f} ms, expected {expected:.1f} "
                                        f"-{early:.1f}/+{late:.1f}")
            # The far region's 60 ms round trip alone breaks a 25 ms total P95 budget: exit 2, named in the report.
            tight = [{"phase": "total", "percentile": 95, "max_ms": 25}]
            far = [r for r in regions if r["name"] == "sim-far"]
            rc, report, table = run_probe(a.probe, {"requests": 10, "warmup": 1, "budgets": tight, "regions": far},
                                          work, "breach")
            if rc != 2:
                failures.append(f"a budget breach exited {rc}, not 2")
            if report["passed"] or "EXCEEDED" not in table:
                failures.append("the breach is not in the report")
            # A config that cannot be probed is refused before any request (exit 1).
            bad = {"regions": [{"name": "x", "endpoints": [{"name": "e", "url": "ftp://127.0.0.1/"}]}]}
            (work / "bad.json").write_text(json.dumps(bad))
            p = subprocess.run([a.probe, "--config", str(work / "bad.json")], capture_output=True, text=True)
            if p.returncode != 1 or "http://" not in p.stderr:
                failures.append(f"a bad URL gave exit {p.returncode}: {p.stderr.strip()}")
    finally:
        proxy.terminate()
        proxy.wait()
    for f in failures:
        print(f"probe-test: FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
