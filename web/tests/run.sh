#!/usr/bin/env bash
# The demo page's tests, from a clean clone with ../shared beside it. Builds or installs what is missing, and
# only that: Debian's chromium, the int8-dynamic bundle (scripts/fetch-models.sh), target/release/{akidb,model-server},
# the npm package akidb-wasm/pkg (rebuilt when its sources are newer); then builds web/dist (web/build.sh),
# installs the test's npm deps (npm ci, lockfile, no install scripts) and runs the unit tests of the page's
# helpers and corpus in Node and the end-to-end tests in headless Chromium (/usr/bin/chromium through
# playwright-core, no browser download) against real model-server and `akidb serve` processes on free
# loopback ports. Screenshots go to web/tests/out/.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
t0=$(date +%s)

golden=${AKIDB_GOLDEN:-../shared/golden}
if [ ! -f "$golden/embeddings.f32" ]; then
  echo "web/tests/run.sh: the golden data $golden is missing (../shared beside the clone, or AKIDB_GOLDEN)" >&2
  exit 1
fi

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "web tests: installing chromium (Debian)" >&2
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium
fi

# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
[ -f models/all-MiniLM-L6-v2/int8-dynamic/manifest.json ] || bash scripts/fetch-models.sh
if [ ! -x target/release/akidb ] || [ ! -x target/release/model-server ]; then
  build_workspace
fi
ensure_wasm_pkg

bash web/build.sh
(cd web/tests && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
node --test --test-reporter=spec web/tests/unit.test.mjs web/tests/e2e.test.mjs
echo "web tests passed in $(($(date +%s) - t0)) s"
