#!/usr/bin/env bash
# The Lambda@Edge handler's benchmark (not a test): init time, warm latency of the handler against the
# @akidb/wasm package's own embed in the same Node process and against akidb serve, zip size (bench.mjs says
# what each figure is). Builds the package first; needs what tests/run.sh needs (run it once before).
#   bash infra/lambda-edge/bench.sh        # INIT_RUNS=5 ROUNDS=200 BATCH_ROUNDS=20 by default
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ -x "$root/target/release/akidb" ] || { echo "bench.sh: target/release/akidb is missing (cargo build --release -p akidb-native)" >&2; exit 1; }
bash "$here/build.sh"
echo "bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPU, node $(node --version)"
node "$here/bench.mjs"
