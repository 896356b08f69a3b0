#!/usr/bin/env bash
# Builds the demo page into web/dist/, with no bundler: the app (web/src/: plain ES modules, an import map
# for `@akidb/wasm`) plus the browser files of @akidb/wasm, installed the way an outside app installs it
# (web/package.json depends on file:../akidb-wasm/pkg; npm ci). Stamps the service worker with a build id
# and the list of files to precache. Needs akidb-wasm/pkg (bash akidb-wasm/build.sh).
#
# dist/config.json holds the defaults (model from the same origin, fallback http://127.0.0.1:8080/v1/embed);
# scripts/demo.sh rewrites it for its addresses.
set -euo pipefail
web=$(cd "$(dirname "$0")" && pwd)
cd "$web"

if [ ! -f ../akidb-wasm/pkg/package.json ]; then
  echo "web/build.sh: akidb-wasm/pkg is missing; build it first (bash akidb-wasm/build.sh)" >&2
  exit 1
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
pkg=node_modules/@akidb/wasm

tmp=$(mktemp -d "$web/dist.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp -R src/. "$tmp/"
# The browser half of the package: the loader, its worker, the web builds' glue and both .wasm (the loader
# fetches one: see sw.js, which precaches only that one).
lib="$tmp/lib/akidb-wasm"
mkdir -p "$lib/web"
cp "$pkg"/*.js "$lib/"
cp "$pkg/web/akidb_wasm.js" "$pkg/web/akidb_wasm_bg.wasm" "$pkg/web/akidb_wasm_relaxed_simd_bg.wasm" "$lib/web/"

# Build id: the hash of everything but the two files that are stamped or rewritten after the build.
build_id=$(cd "$tmp" && find . -type f ! -name sw.js ! -name config.json -print0 | LC_ALL=C sort -z |
  xargs -0 sha256sum | sha256sum | cut -c1-16)
precache=$(cd "$tmp" && find . -type f ! -name sw.js -printf '%P\n' | LC_ALL=C sort |
  sed "s/.*/'&'/" | paste -sd, - | sed 's/,/, /g')
sed -i -e "s/__BUILD_ID__/$build_id/" -e "s|'__PRECACHE__'|$precache|" "$tmp/sw.js"
for f in "$lib"/web/*.wasm; do
  grep -q "'lib/akidb-wasm/web/$(basename "$f")'" src/sw.js ||
    { echo "web/build.sh: sw.js's WASM_BUILDS lacks $(basename "$f")" >&2; exit 1; }
done
if grep -q '__BUILD_ID__\|__PRECACHE__' "$tmp/sw.js"; then
  echo "web/build.sh: sw.js was not stamped" >&2
  exit 1
fi

rm -rf dist
mv "$tmp" dist
chmod 755 dist
trap - EXIT
size=$(du -sb dist | cut -f1)
echo "web/build.sh: web/dist built (build $build_id, $(find dist -type f | wc -l) files, $((size / 1000000)) MB)" >&2
