#!/usr/bin/env bash
# Builds the npm package @akidb/wasm into akidb-wasm/pkg/: the wasm core (simd128, see .cargo/config.toml)
# through wasm-bindgen for the web, bundler and nodejs targets (each with its generated .d.ts), plus the JS
# loader's modules, the worker entry and the loader's types.
# Installs what it needs (the wasm32 target; wasm-bindgen-cli at Cargo.lock's version into target/tools,
# so reruns skip it). Prints the .wasm size raw and gzip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools="$root/target/tools"
export PATH="$tools/bin:$PATH"

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  echo "installing wasm-bindgen-cli $wb_version into $tools" >&2
  # Not --locked: a locked dependency of wasm-bindgen-cli is missing from crates.io here.
  cargo install wasm-bindgen-cli --version "$wb_version" --root "$tools"
fi

# The `wasm` profile (Cargo.toml): opt-level "s" but for the matmul kernels' crates.
cargo build --profile wasm -p akidb-wasm --target wasm32-unknown-unknown
wasm="${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/wasm/akidb_wasm.wasm"

pkg="$root/akidb-wasm/pkg"
rm -rf "$pkg.tmp"
mkdir -p "$pkg.tmp"
for target in web bundler nodejs; do
  dir=$target; [ "$target" = nodejs ] && dir=node
  wasm-bindgen --target "$target" --out-dir "$pkg.tmp/$dir" "$wasm"
done
# node/ is CommonJS inside a "type": "module" package.
echo '{ "type": "commonjs" }' >"$pkg.tmp/node/package.json"
# The loader's modules (every .js and .d.ts of js/), the Node entry, package.json and README. package.json's
# "files" must list the same modules: a consumer installs only those.
cp akidb-wasm/js/*.js akidb-wasm/js/*.d.ts akidb-wasm/js/node.mjs akidb-wasm/js/package.json \
  akidb-wasm/js/README.md "$pkg.tmp/"
missing=$(cd "$pkg.tmp" && node -e '
  const files = require("./package.json").files;
  const shipped = require("fs").readdirSync(".").filter((f) => /\.(m?js|d\.ts)$/.test(f));
  console.log(shipped.filter((f) => !files.includes(f)).join(" "));
')
if [ -n "$missing" ]; then
  echo "akidb-wasm/js/package.json: \"files\" lacks $missing" >&2
  exit 1
fi
rm -rf "$pkg"
mv "$pkg.tmp" "$pkg"

raw=$(stat -c %s "$pkg/web/akidb_wasm_bg.wasm")
gz=$(gzip -9 -c "$pkg/web/akidb_wasm_bg.wasm" | wc -c)
awk -v r="$raw" -v g="$gz" -v p="${pkg#"$root"/}" \
  'BEGIN { printf "@akidb/wasm built in %s: akidb_wasm_bg.wasm %.2f MB raw, %.2f MB gzip -9\n", p, r / 1e6, g / 1e6 }' >&2
