#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, fetches the model, checks
# formatting and lints, and runs every test: native (model-server against a real S3 API too), the cuda
# backend compiled in, wasm (Node; headless Chromium, Firefox ESR and WebKitGTK), the demo page end to end,
# model-server's schemathesis run, the edge, infra, observability and cost suites, and the Jetson
# (aarch64) build under qemu. `make test` runs this; each step prints the seconds since the start.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
step() { printf '\n== [%ds] %s\n' "$SECONDS" "$*" >&2; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-unknown-unknown >/dev/null

step "models"
bash scripts/fetch-models.sh

step "format and lints"
cargo fmt --all -- --check
# Unused dependencies, by a tool made for it (pinned; installed into target/tools once).
if [ "$(target/tools/bin/cargo-machete --version 2>/dev/null)" != "0.9.2" ]; then
  cargo_install_tool --quiet cargo-machete --version 0.9.2 --locked
fi
target/tools/bin/cargo-machete
# The test feature set (scripts/lib/prereqs.sh: test-hooks and the cuda backend), then the default build's
# code without the GPU backend (akidb-core's `cfg(not(feature = "cuda-backend"))` paths; only our crates
# are checked again).
cargo clippy --release --workspace --all-targets --features "$workspace_features" -- -D warnings
cargo clippy --release --workspace --all-targets --features akidb-native/test-hooks -- -D warnings
# The wasm-only code (akidb-core's wasm kernel, the browser tests) compiles only for wasm32.
cargo clippy --release --target wasm32-unknown-unknown -p akidb-wasm --all-targets -- -D warnings
# The relaxed-SIMD build's kernel (akidb-wasm's relaxed-simd feature): only akidb-core and akidb-wasm recheck.
cargo clippy --release --target wasm32-unknown-unknown -p akidb-wasm --all-targets --features relaxed-simd -- -D warnings

step "benchmark statistics and the scripts' shared helpers (scripts/lib)"
bash scripts/lib/test-stats.sh

step "native tests"
# moto_server (a real S3 API on loopback) for model-server's S3 store, snapshot and replica tests (installed
# by scripts/lib/test-stats.sh above; idempotent).
bash scripts/install-moto.sh
# $workspace_features: test-hooks (the process tests' hooks: a held batch for the shutdown test; no
# shipped build has them) and the cuda backend, so these are also the GPU backend's checks that need no GPU:
# its CPU paths, and tests/device.rs (--device cuda fails at start naming the missing driver library,
# --device auto serves golden vectors on the CPU). The aarch64 JetPack 6 build is the Jetson step's.
cargo test --release --workspace --features "$workspace_features"

step "observability: dashboards and rules against a live Prometheus, akidb-probe against delayed regions"
bash infra/observability/tests/run.sh

step "cost model"
bash infra/cost/tests/run.sh

step "npm package: the wasm builds (akidb-wasm/build.sh; the akidb-wasm suite below tests the package)"
ensure_wasm_pkg

# WebKitGTK's loader suite runs before the Jetson build starts, the rest of the akidb-wasm suite beside it.
# WebKitGTK 2.50's wasm core has trapped at random while loading a bundle: four times in CI-like runs (three
# with the build beside), and once in a load loop here, where the core's new panic record named a panic in
# tract's graph code. The loader now answers a trap while loading by loading the bundle again in a new
# instance, once (akidb-core/PERF.md, 'Not done yet'). Timing looks to matter, so WebKitGTK still runs with
# the CPU to itself; the suite runs whole.
step "akidb-wasm: the loader in WebKitGTK (before the background build below)"
AKIDB_BROWSERS=webkit AKIDB_WASM_LOADER_ONLY=1 bash akidb-wasm/tests/run.sh

# The Jetson aarch64 build (jetson/build.sh: 11 minutes of CPU on CI's two cores, the longest build)
# runs in the background at the lowest priority while the steps below run: they mostly wait on browsers
# (one inference thread each), servers and Python tools, so one core is often idle. Measured on CI's two
# cores, cold (2026-12-03): started after the akidb-wasm suite, it saved 346 s; started before the wasm
# builds, they took 1649 s instead of 1047 and the whole run gained only about 120 s. So it starts after
# the wasm builds and before the suite's tests, and nice keeps it off the CPU the test builds left in the
# suite (geckodriver, wasm-bindgen-test's) want. The observability and cost suites run before it too: the
# probe's latency checks are timed, and failed beside the build. The Jetson step waits for it. No cargo
# lock is shared: it builds into target/aarch64-unknown-linux-gnu, the steps below into target/release and
# target/wasm32-unknown-unknown.
# setsid: its own process group, so that an earlier failure stops the whole build with this script.
step "Jetson aarch64 build started in the background (its output: target/jetson-build.log)"
mkdir -p target
# With the kernel's autogroups (sched_autogroup_enabled, on here and on CI), setsid's new session is a
# scheduling group of its own, weighed equally against this script's, and nice only orders processes
# inside a group: the build took a full core from the suites (measured: 99% CPU throughout the akidb-wasm
# suite, its wasm-bindgen-test build 3m01s against 1m23s in a run without it beside). The group's own nice is what yields; the
# new session sets it itself (/proc/self/autogroup), after setsid, so it can't name this script's group.
setsid bash -c '{ echo 19 >/proc/self/autogroup; } 2>/dev/null; exec nice -n 19 bash jetson/build.sh' \
  >target/jetson-build.log 2>&1 &
jetson_build=$!
trap 'kill -- -"$jetson_build" 2>/dev/null || true' EXIT

step "akidb-wasm: golden suite in Node and in headless Chromium, Firefox ESR and WebKitGTK, loader browser tests in Chromium and Firefox ESR"
AKIDB_BROWSERS=chromium,firefox bash akidb-wasm/tests/run.sh

step "npm package from outside: a Vite app (bundler target) and a plain-ESM page embed in headless Chromium"
bash tests/npm-consumers/run.sh

step "demo page: end to end in headless Chromium (online, offline with the servers stopped, fallback)"
bash web/tests/run.sh

step "model-server: schemathesis against /openapi.json on a live server"
bash model-server/tests/schemathesis.sh

step "akidb serve with the official openai clients (Python and Node), default settings"
bash tests/openai-clients/run.sh

step "Lambda@Edge handler: CloudFront events, the contract suite against it and akidb serve, the zip, e2e"
bash infra/lambda-edge/tests/run.sh

step "infra: CDK synth, assertions, cdk-nag, cfn-lint, bats, deploy into moto"
bash infra/tests/run.sh

step "Jetson: aarch64 build, images, manifests, cluster scripts, the arm64 binary from its image under qemu"
if ! wait "$jetson_build"; then
  cat target/jetson-build.log >&2
  echo "scripts/test.sh: the background jetson/build.sh failed (its output above)" >&2
  exit 1
fi
trap - EXIT
echo "jetson/build.sh finished in the background (target/jetson-build.log); the Jetson suite reuses its build" >&2
bash jetson/tests/run.sh

step "all passed in ${SECONDS} s"
