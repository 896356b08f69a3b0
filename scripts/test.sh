#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, fetches the model, checks
# formatting and lints, and runs every test: native, wasm (Node, headless Chromium), the demo page end to
# end, model-server's schemathesis run, and the Jetson (aarch64) build under qemu. `make test` runs this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n== %s\n' "$*" >&2; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-unknown-unknown >/dev/null

step "models"
bash scripts/fetch-models.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
# The wasm-only code (akidb-core's wasm kernel, the browser tests) compiles only for wasm32.
cargo clippy --release --target wasm32-unknown-unknown -p akidb-wasm --all-targets -- -D warnings

step "native tests"
cargo test --release --workspace

step "akidb-wasm: npm package, golden suite in Node and headless Chromium, loader browser tests"
bash akidb-wasm/tests/run.sh

step "npm package from outside: a Vite app (bundler target) and a plain-ESM page embed in headless Chromium"
bash tests/npm-consumers/run.sh

step "demo page: end to end in headless Chromium (online, offline with the servers stopped, fallback)"
bash web/tests/run.sh

step "model-server: schemathesis against /openapi.json on a live server"
bash model-server/tests/schemathesis.sh

step "Jetson: aarch64 build for glibc 2.31, smoke test under qemu against the reference"
bash jetson/build.sh
bash jetson/smoke-test.sh
