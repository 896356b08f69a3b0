#!/usr/bin/env bash
# The @akidb/wasm benchmark against onnxruntime-web 1.30 in Node and headless Chromium (not a test).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[ -f akidb-wasm/pkg/node.mjs ] || bash akidb-wasm/build.sh
(cd akidb-wasm/tests/js && { [ -d node_modules/onnxruntime-web ] || npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; })
node akidb-wasm/tests/js/bench.mjs
