#!/usr/bin/env bash
# The demo page's tests: builds web/dist (web/build.sh), installs the test's npm deps (npm ci, lockfile,
# no install scripts), then runs the unit tests of the page's helpers in Node and the end-to-end tests in
# headless Chromium (/usr/bin/chromium through playwright-core, no browser download) against real
# model-server and `akidb serve` processes on free loopback ports. Screenshots go to web/tests/out/.
# Assumes what scripts/test.sh builds before it: akidb-wasm/pkg, target/release/{akidb,model-server},
# the int8 bundle (scripts/fetch-models.sh), and ../shared/golden.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

chromium=${CHROMIUM:-/usr/bin/chromium}
for need in "$chromium" target/release/akidb target/release/model-server models/all-MiniLM-L6-v2/int8/manifest.json; do
  if [ ! -e "$need" ]; then
    echo "web/tests/run.sh: $need is missing (scripts/test.sh builds it before this script)" >&2
    exit 1
  fi
done

bash web/build.sh
(cd web/tests && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
node --test --test-reporter=spec web/tests/unit.test.mjs web/tests/e2e.test.mjs
