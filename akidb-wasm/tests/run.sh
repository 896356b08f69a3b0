#!/usr/bin/env bash
# Every akidb-wasm test, from a fresh machine: installs Chromium + chromedriver (Debian) if missing, builds
# the npm package (akidb-wasm/build.sh installs wasm-bindgen-cli), installs the test's npm deps (npm ci),
# then runs
#   1. the golden suite in Node (token ids, cosine bars, wasm vs native on all 200 sentences, int8 + fp32),
#      and the blob-URL rule against the shared table tests/blob-urls.json,
#   2. the loader in headless Chromium (progress, Range resume, cache across reload, corruption, eviction,
#      server fallback to a real target/release/akidb serve, worker mode, model-server URLs with a prefix),
#   3. the core's golden suite inside headless Chromium through wasm-bindgen-test, with akidb-core's
#      wasm matmul kernel against plain loops (tests/kernel.rs),
#   4. the same suite inside headless Firefox ESR (Debian `firefox-esr`; geckodriver from crates.io,
#      installed into target/tools).
# Needs the bundles (scripts/fetch-models.sh) and ../shared/golden.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
step() { printf '\n== akidb-wasm: %s\n' "$*" >&2; }
export PATH="$root/target/tools/bin:$PATH"

step "browsers: chromium, firefox-esr, geckodriver"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v firefox-esr >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver firefox-esr >/dev/null
fi
geckodriver_version=0.37.1
if ! geckodriver --version 2>/dev/null | grep -q "^geckodriver $geckodriver_version"; then
  cargo install --quiet geckodriver --version "$geckodriver_version" --root "$root/target/tools"
fi

step "build the npm package"
bash akidb-wasm/build.sh

step "native CLI (reference vectors)"
# Always the default target dir (tests/js/node.test.mjs runs target/release/akidb), even when
# CARGO_TARGET_DIR points the wasm builds elsewhere.
env -u CARGO_TARGET_DIR cargo build --release --workspace --all-targets

step "npm deps"
(cd akidb-wasm/tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

step "golden suite and blob-URL table in Node"
node --test --test-reporter=spec akidb-wasm/tests/js/node.test.mjs akidb-wasm/tests/js/blob-urls.test.mjs

step "loader in headless Chromium"
node --test --test-reporter=spec akidb-wasm/tests/js/browser.test.mjs

# The core's golden suite (tests/web.rs) under wasm-bindgen-test-runner; the arguments (env options and
# assignments) pick the browser.
wasm_bindgen_tests() {
  (
    cd akidb-wasm
    env "$@" WASM_BINDGEN_TEST_TIMEOUT=900 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
      cargo test --profile wasm -p akidb-wasm --target wasm32-unknown-unknown
  )
}

step "golden suite in headless Chromium (wasm-bindgen-test)"
wasm_bindgen_tests CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"

step "golden suite in headless Firefox ESR (wasm-bindgen-test)"
# A fresh profile per run (geckodriver's default); the binary is named, not looked up, so that a non-ESR
# firefox elsewhere on PATH can't stand in for it.
webdriver_json=$(mktemp)
trap 'rm -f "$webdriver_json"' EXIT
echo '{"moz:firefoxOptions": {"binary": "/usr/bin/firefox-esr"}}' >"$webdriver_json"
wasm_bindgen_tests -u CHROMEDRIVER GECKODRIVER="$(command -v geckodriver)" \
  WASM_BINDGEN_TEST_WEBDRIVER_JSON="$webdriver_json"
