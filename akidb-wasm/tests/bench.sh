#!/usr/bin/env bash
# The @akidb/wasm benchmark against onnxruntime-web 1.30 in Node and in headless Chromium and WebKitGTK
# (AKIDB_BROWSERS picks the engines; the browsers and drivers are the ones akidb-wasm/tests/run.sh installs).
# @akidb/wasm runs the integer path's bundle, int8-dynamic (the default one), unless BENCH_BUNDLE=int8 (the
# exact path) or fp32 says otherwise; onnxruntime-web runs the int8 model file either way. Not a test. The raw samples go to target/bench/wasm-samples.jsonl (BENCH_SAMPLES); the tables are made
# from them by bench_table.py with scripts/lib/benchstats.py.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
# Rebuilt when stale too: an older package may lack a build the benchmark measures.
ensure_wasm_pkg
(cd akidb-wasm/tests/js && { [ -d node_modules/onnxruntime-web ] || npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; })
samples="${BENCH_SAMPLES:-$root/target/bench/wasm-samples.jsonl}"
BENCH_SAMPLES="$samples" node akidb-wasm/tests/js/bench.mjs
# The figures: scripts/lib/benchstats.py's statistics over the raw samples.
python3 akidb-wasm/tests/bench_table.py "$samples"
