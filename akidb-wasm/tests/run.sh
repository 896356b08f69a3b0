#!/usr/bin/env bash
# Every akidb-wasm test, from a fresh machine: installs the browsers and their drivers (Debian chromium,
# chromium-driver, firefox-esr, webkit2gtk-driver, xvfb) if missing and geckodriver (crates.io, into
# target/tools), builds the npm package unless it is up to date (akidb-wasm/build.sh, which installs
# wasm-bindgen-cli; scripts/test.sh builds it before this suite), installs the test's npm deps (npm ci),
# then runs
#   1. the golden suite in Node (token ids, cosine bars, wasm vs native on all 200 sentences, int8 + fp32),
#      on each wasm build (the one this Node picks, then the other: on Node 20 wasm-simd, then
#      wasm-relaxed-simd behind --experimental-wasm-relaxed-simd), and the blob-URL rule against the shared
#      table tests/blob-urls.json,
#   2. the loader's browser suite (progress, Range resume, cache across reload, corruption, eviction,
#      server fallback to a real target/release/akidb serve, worker mode, the threads build on a
#      cross-origin-isolated page and its fallback on one that isn't, model-server URLs with a prefix,
#      signatures, and the golden suite against native on every wasm build the engine runs) once in each
#      engine: headless Chromium, Firefox ESR and WebKitGTK (tests/support/browsers.mjs;
#      AKIDB_BROWSERS=chromium,firefox,webkit picks some),
#   3. the core's golden suite through wasm-bindgen-test, with akidb-core's wasm matmul kernel against plain
#      loops (tests/kernel.rs), once in each engine: Chromium (chromedriver), Firefox ESR (geckodriver),
#      WebKitGTK (WebKitWebDriver, which wasm-bindgen-test-runner drives as its SAFARIDRIVER, under Xvfb:
#      MiniBrowser has no headless mode).
# Needs the bundles (scripts/fetch-models.sh) and ../shared/golden.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
step() { printf '\n== akidb-wasm: %s\n' "$*" >&2; }
export PATH="$root/target/tools/bin:$PATH"

step "browsers: chromium, firefox-esr, webkit2gtk-driver, xvfb, geckodriver"
# The browser tests expect relaxed SIMD in Firefox, on by default since 145 (tests/js/browser.test.mjs,
# VARIANTS_RUN): an older Firefox ESR already installed (Debian's bookworm main had 140) is upgraded.
firefox_major=$(firefox-esr --version 2>/dev/null | sed -nE 's/^[^0-9]*([0-9]+)\..*/\1/p')
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || [ "${firefox_major:-0}" -lt 145 ] \
  || ! command -v WebKitWebDriver >/dev/null || ! command -v Xvfb >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver firefox-esr webkit2gtk-driver xvfb >/dev/null
fi
geckodriver_version=0.37.1
if ! geckodriver --version 2>/dev/null | grep -q "^geckodriver $geckodriver_version"; then
  cargo_install_tool --quiet geckodriver --version "$geckodriver_version"
fi

step "build the npm package (when missing or older than its sources)"
ensure_wasm_pkg

step "native CLI (reference vectors; akidb keygen and bundle sign make the signature fixtures)"
# Always the default target dir (tests/js/node.test.mjs runs target/release/akidb), even when
# CARGO_TARGET_DIR points the wasm builds elsewhere.
# The feature set make test builds with (build_workspace), so this reuses its build.
(unset CARGO_TARGET_DIR && build_workspace)

step "npm deps"
(cd akidb-wasm/tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

# AKIDB_WASM_LOADER_ONLY=1: the loader suite (with the set-up it needs) and nothing else; scripts/test.sh
# runs WebKitGTK's loader suite that way before the background Jetson build starts.
loader_only=${AKIDB_WASM_LOADER_ONLY:-}
if [ "$loader_only" != 1 ]; then
  step "golden suite and blob-URL table in Node"
  node --test --test-reporter=spec akidb-wasm/tests/js/node.test.mjs akidb-wasm/tests/js/blob-urls.test.mjs
  # The other build: Node 21+ picks relaxed SIMD by itself, so the plain one is forced; Node 20 runs relaxed
  # SIMD only behind its flag.
  if [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 21 ]; then
    step "golden suite in Node on the wasm-simd build (forced)"
    AKIDB_WASM_VARIANT=wasm-simd node --test --test-reporter=spec akidb-wasm/tests/js/node.test.mjs
  else
    step "golden suite in Node on the wasm-relaxed-simd build (--experimental-wasm-relaxed-simd)"
    node --experimental-wasm-relaxed-simd --test --test-reporter=spec akidb-wasm/tests/js/node.test.mjs
  fi
fi
step "loader in headless Chromium, Firefox ESR and WebKitGTK (those of \$AKIDB_BROWSERS if set)"
node --test --test-reporter=spec akidb-wasm/tests/js/browser.test.mjs
if [ "$loader_only" = 1 ]; then exit 0; fi

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
tmp=$(mktemp -d)
xvfb_pid=""
cleanup() {
  if [ -n "$xvfb_pid" ]; then kill "$xvfb_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
echo '{"moz:firefoxOptions": {"binary": "/usr/bin/firefox-esr"}}' >"$tmp/firefox.json"
wasm_bindgen_tests -u CHROMEDRIVER GECKODRIVER="$(command -v geckodriver)" \
  WASM_BINDGEN_TEST_WEBDRIVER_JSON="$tmp/firefox.json"

step "golden suite in WebKitGTK under Xvfb (wasm-bindgen-test)"
# wasm-bindgen-test-runner speaks to WebKitWebDriver as to safaridriver (an empty capability set, which
# WebKitWebDriver answers with its MiniBrowser). Xvfb picks a free display and writes its number to fd 3.
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$tmp/display" 2>"$tmp/xvfb.log" &
xvfb_pid=$!
for _ in $(seq 100); do [ -s "$tmp/display" ] && break; sleep 0.1; done
[ -s "$tmp/display" ] || { echo "Xvfb reported no display:" >&2; cat "$tmp/xvfb.log" >&2; exit 1; }
wasm_bindgen_tests -u CHROMEDRIVER DISPLAY=":$(head -n1 "$tmp/display")" SAFARIDRIVER="$(command -v WebKitWebDriver)"
