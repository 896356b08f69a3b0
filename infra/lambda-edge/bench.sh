#!/usr/bin/env bash
# The Lambda@Edge handler's benchmark (not a test): init time, warm latency of the handler against the
# @akidb/wasm package's own embed in the same Node process and against akidb serve, zip size (bench.mjs says
# what each figure is). Builds the package first; needs what tests/run.sh needs (run it once before).
#   bash infra/lambda-edge/bench.sh        # INIT_RUNS=5 ROUNDS=200 BATCH_ROUNDS=20 by default
# bench.mjs measures and writes raw samples; the tables and targets come from scripts/lib/benchstats.py
# (nearest-rank percentiles, the median is p50), the one definition every benchmark here uses.
set -euo pipefail
# The Python helpers of scripts/lib are imported: no __pycache__ left in the source tree.
export PYTHONDONTWRITEBYTECODE=1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ -x "$root/target/release/akidb" ] || { echo "bench.sh: target/release/akidb is missing (cargo build --release -p akidb-native)" >&2; exit 1; }
bash "$here/build.sh"
echo "bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPU, node $(node --version)"
samples=$(mktemp --suffix=.jsonl)
trap 'rm -f "$samples"' EXIT
BENCH_SAMPLES=$samples node "$here/bench.mjs"
python3 - "$root" "$samples" <<'PY'
import sys
sys.path.insert(0, f"{sys.argv[1]}/scripts/lib")
import benchstats as bs
samples = bs.read_files([sys.argv[2]])
get = lambda subject, metric: samples[("edge", subject, metric)]
f = lambda x, d=2: f"{x:.{d}f}"
contenders = [("handler", "handler (CloudFront event → response)"), ("embed", "@akidb/wasm `embed`, same process"),
              ("serve", "akidb serve (HTTP, loopback)")]
print()
print(bs.markdown_table(
    ["contender", "single p50 ms", "single p95 ms", "batch-32 p50 ms", "batch-32 p95 ms"],
    [[name] + [f(bs.percentile(get(s, m), p)) for m in ("single_ms", "batch32_ms") for p in (50, 95)]
     for s, name in contenders]))
tokens = int(get("input", "single_tokens")[0])
ratio = bs.percentile(get("handler", "single_ms"), 95) / bs.percentile(get("embed", "single_ms"), 95)
init_ms = bs.median(get("init", "ready_ms"))
zip_mb = get("package", "zip_mb")[0]
met = lambda ok: "met" if ok else "NOT met"
print()
print(bs.markdown_table(["measure", "value", "target", ""], [
    [f"handler / embed, single p95 ({tokens}-token sentence)", f"{f(ratio)}x", "<= 1.2x", met(ratio <= 1.2)],
    [f"init: fresh Node process → model ready (median of {len(get('init', 'ready_ms'))})", f"{f(init_ms / 1000)} s",
     "<= 1.5 s", met(init_ms <= 1500)],
    ["zip", f"{f(zip_mb, 1)} MB", "<= 30 MB (limit 50)", met(zip_mb <= 30)],
]))
step = lambda k: bs.median(get("init", k))
print(f"\ninit steps (medians, ms): read {f(step('read_ms'), 0)}, sha256 {f(step('hash_ms'), 0)}, "
      f"wasm compile {f(step('wasm_ms'), 0)}, model parse {f(step('parse_ms'), 0)}, warm-up {f(step('warm_ms'), 0)}; "
      f"rest of init (Node start, imports) {f(init_ms - step('total_ms'), 0)}")
print(f"rounds: single {len(get('handler', 'single_ms'))}, batch-32 {len(get('handler', 'batch32_ms'))}; "
      f"{int(get('input', 'single_words')[0])} words, {tokens} tokens")
PY
