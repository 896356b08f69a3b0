#!/usr/bin/env bash
# The Lambda@Edge handler's tests (issue #14), from a clean clone with ../shared beside it. Builds or installs
# what is missing, and only that: the int8-dynamic bundle (scripts/fetch-models.sh), target/release/akidb, the npm
# package akidb-wasm/pkg (rebuilt when its sources are newer), web/dist, Debian's chromium, shellcheck and
# unzip; then builds the deployment zip (build.sh) and runs, with `node --test`:
#   rules.test.mjs     which requests the edge answers, refuses or forwards; the config checks
#   handler.test.mjs   synthetic CloudFront events: golden, native core, fallbacks, same answers as akidb serve
#   package.test.mjs   the zip unpacked in a fresh Node process; a flipped model byte refused, all forwarded
#   signature.test.mjs signed bundles: keys from `akidb keygen`, build.sh --trusted-keys; changed byte,
#                      untrusted key, missing signature, revoked key refused; rotated keys accepted
#   contract.test.mjs  tests/contract/suite.mjs against akidb serve and against the handler behind adapter.mjs
#   e2e.test.mjs       the demo page's forced server fallback through the edge adapter, headless Chromium
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
t0=$(date +%s)

apt_install() {
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
}
missing=()
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || missing+=(chromium)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v unzip >/dev/null || missing+=(unzip)
command -v zip >/dev/null || missing+=(zip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "lambda-edge tests: installing ${missing[*]} (Debian)" >&2
  apt_install "${missing[@]}"
fi

shellcheck -x "$here/build.sh" "$here/bench.sh" "$here/tests/run.sh"

# shellcheck source-path=SCRIPTDIR/../../.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
[ -f models/all-MiniLM-L6-v2/int8-dynamic/manifest.json ] || bash scripts/fetch-models.sh
# akidb signs the test bundles (keygen, bundle sign): rebuilt when missing or without those commands.
if ! target/release/akidb keygen --help >/dev/null 2>&1; then
  build_workspace
fi

# The npm package, then the demo page (the e2e test's), each rebuilt when missing or stale.
ensure_wasm_pkg
if [ ! -f web/dist/index.html ] ||
  [ -n "$(find web/src akidb-wasm/pkg/package.json -newer web/dist/index.html -print -quit)" ]; then
  bash web/build.sh
fi

(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
bash "$here/build.sh"

# One file at a time: two cores, and each file runs its own akidb serve and model.
node --test --test-concurrency=1 --test-reporter=spec \
  "$here/tests/rules.test.mjs" \
  "$here/tests/handler.test.mjs" \
  "$here/tests/package.test.mjs" \
  "$here/tests/signature.test.mjs" \
  "$here/tests/contract.test.mjs" \
  "$here/tests/e2e.test.mjs"
echo "lambda-edge tests passed in $(($(date +%s) - t0)) s"
