#!/usr/bin/env bash
# The core beside onnxruntime (Python, 1 thread), same bundle files, same sentences, interleaved rounds.
# Prints a markdown table and akidb/onnxruntime ratios. Not a test.
#   scripts/bench-core.sh [ROUNDS]     (default 3)
# Both engines report their raw samples (`akidb bench --json` and scripts/bench_peers.py: every warm
# single-sentence and batch time); the samples of all rounds are pooled and their statistics come from
# scripts/lib/benchstats.py (nearest rank; load time and peak RSS: the median of the rounds).
set -euo pipefail
# The Python helpers of scripts/lib are imported: no __pycache__ left in the source tree.
export PYTHONDONTWRITEBYTECODE=1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${1:-3}
bash scripts/fetch-models.sh >&2
python3 -c 'import onnxruntime, tokenizers, numpy' 2>/dev/null ||
  python3 -m pip install --quiet onnxruntime tokenizers numpy >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# as_samples SUBJECT: a bench report (JSON, on stdin) -> benchstats sample lines (bench "core") on
# stdout; the engine's name goes to $out/engines.json.
as_samples() {
  python3 -c '
import json, sys
sys.path.insert(0, "scripts/lib")
from benchstats import sample_line
subject, engines, report = sys.argv[1], sys.argv[2], json.load(sys.stdin)
for field in ("single_samples_ms", "batch32_samples_ms"):
    if field not in report:
        sys.exit(f"bench-core: the report of {subject} has no {field} (raw samples): {sorted(report)}")
with open(engines, "a") as f:
    f.write(json.dumps({"subject": subject, "model": report["model"]}) + "\n")
for metric, field in (("single_ms", "single_samples_ms"), ("batch32_ms", "batch32_samples_ms")):
    for value in report[field]:
        print(sample_line("core", subject, metric, value))
for metric in ("load_s", "peak_rss_mb"):
    print(sample_line("core", subject, metric, report[metric]))
' "$1" "$out/engines.json"
}
variants=()
# int8-dynamic is the int8 file with integer weight products: onnxruntime runs that file as it runs int8.
for v in int8 int8-dynamic fp32; do [ -f "models/all-MiniLM-L6-v2/$v/manifest.json" ] && variants+=("$v"); done
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    echo "round $r/$rounds: $v" >&2
    target/release/akidb bench --bundle "models/all-MiniLM-L6-v2/$v" --json | as_samples "akidb $v" >>"$out/samples.jsonl"
    python3 scripts/bench_peers.py --bundle "models/all-MiniLM-L6-v2/$v" --threads 1 |
      as_samples "ort $v" >>"$out/samples.jsonl"
  done
done
python3 - "$out" "${variants[@]}" <<'PY'
import json, sys
sys.path.insert(0, "scripts/lib")
import benchstats as bs
out, variants = sys.argv[1], sys.argv[2:]
samples = bs.read_files([f"{out}/samples.jsonl"])
engine = {r["subject"]: r["model"] for r in map(json.loads, open(f"{out}/engines.json"))}
batch = len(json.load(open("akidb-native/src/bench_sentences.json"))["batch"])
rows, ratios = [], []
for v in variants:
    figs = {}
    for eng in ("akidb", "ort"):
        subject = f"{eng} {v}"
        get = lambda metric: samples[("core", subject, metric)]
        f = figs[eng] = {
            "load_s": bs.median(get("load_s")),
            "p50": bs.percentile(get("single_ms"), 50),
            "p95": bs.percentile(get("single_ms"), 95),
            "batch_ms": bs.median(get("batch32_ms")),
            "rss": bs.median(get("peak_rss_mb")),
        }
        f["per_s"] = batch / (f["batch_ms"] / 1e3)
        name = "akidb (tract)" if eng == "akidb" else engine[subject]
        rows.append([v, name, f"{f['load_s']:.2f}", f"{f['p50']:.2f}", f"{f['p95']:.2f}", f"{f['batch_ms']:.1f}",
                     f"{f['per_s']:.1f}", f"{f['rss']:.0f}", len(get("single_ms")), len(get("batch32_ms"))])
    ratios.append((v, figs["akidb"], figs["ort"]))
print(bs.markdown_table(["model", "engine", "load s", "single p50 ms", "single p95 ms", f"batch{batch} ms", "sent/s",
                         "peak RSS MB", "single samples", "batch samples"], rows))
print()
for v, a, o in ratios:
    # Issue #18's targets: single sentence <= 1.0x onnxruntime's, batch throughput >= 3x.
    print(bs.ratio_line(f"{v}: single latency p50 akidb/onnxruntime", a["p50"], o["p50"], 1.0))
    print(bs.ratio_line(f"{v}: batch throughput akidb/onnxruntime", a["per_s"], o["per_s"], 3.0, at_most=False))
PY
