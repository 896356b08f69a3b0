#!/usr/bin/env bash
# The core beside onnxruntime (Python, 1 thread), same bundle files, same sentences, interleaved rounds.
# Prints a markdown table of medians over the rounds and akidb/onnxruntime ratios. Not a test.
#   scripts/bench-core.sh [ROUNDS]     (default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${1:-3}
bash scripts/fetch-models.sh >&2
python3 -c 'import onnxruntime, tokenizers, numpy' 2>/dev/null ||
  python3 -m pip install --quiet onnxruntime tokenizers numpy >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
variants=()
for v in int8 fp32; do [ -f "models/all-MiniLM-L6-v2/$v/manifest.json" ] && variants+=("$v"); done
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    echo "round $r/$rounds: $v" >&2
    target/release/akidb bench --bundle "models/all-MiniLM-L6-v2/$v" --json >>"$out/akidb-$v.jsonl"
    python3 scripts/bench_peers.py --bundle "models/all-MiniLM-L6-v2/$v" --threads 1 >>"$out/ort-$v.jsonl"
  done
done
python3 - "$out" "${variants[@]}" <<'PY'
import json, statistics, sys
out, variants = sys.argv[1], sys.argv[2:]
def med(path, key):
    rows = [json.loads(l) for l in open(path)]
    return statistics.median(r[key] for r in rows), rows[0]
print("| model | engine | load s | single p50 ms | single p95 ms | batch32 ms | sent/s | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
keys = ["load_s", "single_p50_ms", "single_p95_ms", "batch32_ms", "sentences_per_s", "peak_rss_mb"]
ratios = []
for v in variants:
    figs = {}
    for eng in ["akidb", "ort"]:
        p = f"{out}/{eng}-{v}.jsonl"
        figs[eng] = {k: med(p, k)[0] for k in keys}
        name = med(p, "model")[1]["model"] if eng == "ort" else "akidb (tract)"
        f = figs[eng]
        print(f"| {v} | {name} | {f['load_s']:.2f} | {f['single_p50_ms']:.2f} | {f['single_p95_ms']:.2f} | "
              f"{f['batch32_ms']:.1f} | {f['sentences_per_s']:.1f} | {f['peak_rss_mb']:.0f} |")
    a, o = figs["akidb"], figs["ort"]
    ratios.append((v, a["single_p50_ms"] / o["single_p50_ms"], a["sentences_per_s"] / o["sentences_per_s"]))
print()
for v, lat, thr in ratios:
    print(f"{v}: single latency akidb/onnxruntime = {lat:.2f}x (target <= 1.2x); "
          f"batch throughput akidb/onnxruntime = {thr:.2f}x (target >= 1.5x)")
PY
