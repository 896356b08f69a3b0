#!/usr/bin/env bash
# The rexie study (issue #19; results in akidb-wasm/js/CACHE.md): builds this crate (rexie, the IndexedDB
# crate the design names) for wasm32 into target/rexie (its own target dir: the workspace's is shared),
# runs wasm-bindgen (target/tools/bin, akidb-wasm's exact version), and times it against the loader's JS
# cache (akidb-wasm/js/cache.js) on the int8 bundle's files in Debian's headless Chromium.
#   bash akidb-wasm/tests/rexie-bench/bench.sh [RUNS]
# Needs: the wasm32 target and wasm-bindgen-cli (bash akidb-wasm/build.sh installs both), /usr/bin/chromium,
# the int8 bundle (scripts/fetch-models.sh) and akidb-wasm/pkg (bash akidb-wasm/build.sh: the core's .wasm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
export CARGO_TARGET_DIR="$root/target/rexie"
wasm_bindgen="$root/target/tools/bin/wasm-bindgen"
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$here/Cargo.lock")
if [ "$("$wasm_bindgen" --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  echo "bench.sh: $wasm_bindgen is not wasm-bindgen $want (bash akidb-wasm/build.sh installs it)" >&2
  exit 1
fi

(cd "$here" && cargo build --locked --release --target wasm32-unknown-unknown)
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/rexie_bench.wasm"
"$wasm_bindgen" --target web --out-dir "$CARGO_TARGET_DIR/pkg" "$wasm"
echo "rexie_bench_bg.wasm: $(stat -c %s "$CARGO_TARGET_DIR/pkg/rexie_bench_bg.wasm") bytes" >&2

(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
node "$here/bench.mjs" "$CARGO_TARGET_DIR/pkg" "${1:-7}"
