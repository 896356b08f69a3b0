#!/usr/bin/env bash
# @akidb/wasm as its users get it: installs the two consumer apps the way a user would (npm ci from their
# committed lockfiles, no install scripts; @akidb/wasm comes from akidb-wasm/pkg as a packed copy, see
# their .npmrc), type-checks both apps' JavaScript (and plain-esm/api-types.ts, the whole public API) with
# `tsc --noEmit` against the types the package ships, builds vite-app with `vite build` (Vite's own .wasm
# imports, and vite-plugin-wasm), then node --test opens each app, served with the int8 bundle on a free loopback port, in headless Chromium
# (/usr/bin/chromium through playwright-core, no browser download) and compares its vectors with
# ../shared/golden (cosine >= 0.995).
# Needs what scripts/test.sh builds first: akidb-wasm/pkg (akidb-wasm/build.sh) and the int8 bundle
# (scripts/fetch-models.sh); and ../shared/golden. It builds nothing in Rust.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

chromium=${CHROMIUM:-/usr/bin/chromium}
bundle=${AKIDB_BUNDLE:-$root/models/all-MiniLM-L6-v2/int8}
golden=${AKIDB_GOLDEN:-$root/../shared/golden}
fail() {
  echo "tests/npm-consumers/run.sh: $*" >&2
  exit 1
}
for need in akidb-wasm/pkg/package.json akidb-wasm/pkg/index.js akidb-wasm/pkg/web/akidb_wasm_bg.wasm \
  akidb-wasm/pkg/bundler/akidb_wasm.js akidb-wasm/pkg/bundler/akidb_wasm_bg.wasm; do
  [ -e "$need" ] || fail "$need is missing: build the npm package first (bash akidb-wasm/build.sh)"
done
for src in akidb-wasm/js/*.js akidb-wasm/js/*.d.ts akidb-wasm/js/node.mjs akidb-wasm/js/package.json; do
  f=${src#akidb-wasm/js/}
  cmp -s "$src" "akidb-wasm/pkg/$f" ||
    fail "akidb-wasm/pkg/$f differs from $src: the package is stale (bash akidb-wasm/build.sh)"
done
for need in "$bundle/manifest.json" "$bundle/model.onnx" "$bundle/tokenizer.json"; do
  [ -e "$need" ] || fail "$need is missing: fetch the model bundle first (bash scripts/fetch-models.sh)"
done
for need in "$golden/sentences.json" "$golden/embeddings.f32"; do
  [ -e "$need" ] || fail "$need is missing (the golden vectors; AKIDB_GOLDEN points elsewhere)"
done
[ -x "$chromium" ] || fail "$chromium is missing (apt-get install chromium; CHROMIUM points elsewhere)"

npm_ci() {
  echo "npm ci in tests/npm-consumers/$1" >&2
  (cd "$here/$1" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
}
npm_ci .
npm_ci vite-app
npm_ci plain-esm

for app in vite-app plain-esm; do
  echo "tsc --noEmit -p tests/npm-consumers/$app" >&2
  "$here/node_modules/.bin/tsc" --noEmit -p "$here/$app/tsconfig.json"
done

echo "vite build: tests/npm-consumers/vite-app/dist/{native,wasm-plugin}" >&2
(cd "$here/vite-app" && npm run --silent build -- --logLevel warn &&
  npm run --silent build:wasm-plugin -- --logLevel warn)

AKIDB_BUNDLE="$bundle" AKIDB_GOLDEN="$golden" CHROMIUM="$chromium" \
  node --test --test-reporter=spec "$here/consumers.test.mjs"
