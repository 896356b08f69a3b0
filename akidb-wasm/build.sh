#!/usr/bin/env bash
# Builds the npm package @akidb/wasm into akidb-wasm/pkg/: the wasm core through wasm-bindgen for the web,
# bundler and nodejs targets (each with its generated .d.ts), plus the JS loader's modules, the worker entry
# and the loader's types. Three builds of the core, which the loader picks between at run time
# (js/wasm-backend.js WASM_VARIANTS, js/node.mjs):
#   wasm-threads       the `threads` feature: simd128 + atomics on shared memory, tract's matmuls on
#                      wasm-bindgen-rayon's pool of Web Workers. Needs nightly (std rebuilt with atomics:
#                      -Z build-std) in its own target dir (other RUSTFLAGS: nothing shared with the other
#                      two), and the web target only: web-threads/ with its own glue and the pool's worker
#                      script (snippets/).
#   wasm-simd          simd128 (.cargo/config.toml): web/akidb_wasm_bg.wasm, node/, bundler/
#   wasm-relaxed-simd  the `relaxed-simd` feature (akidb-core's wasm kernel with f32x4.relaxed_madd; relaxed
#                      SIMD enabled on that kernel's functions only, so only akidb-core and akidb-wasm compile
#                      a second time): web/akidb_wasm_relaxed_simd_bg.wasm beside the same glue (build.sh checks the two builds' glue is the same bytes) and
#                      node-relaxed-simd/ (the nodejs glue reads the .wasm beside it). The bundler target
#                      ships the simd build only (its glue imports one .wasm statically).
# Installs what it needs (the wasm32 target; nightly's rust-src; wasm-bindgen-cli at Cargo.lock's version
# into target/tools, so reruns skip it). Prints the .wasm size raw and gzip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
tools="$root/target/tools"
export PATH="$tools/bin:$PATH"

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  echo "installing wasm-bindgen-cli $wb_version into $tools" >&2
  # Not --locked: a locked dependency of wasm-bindgen-cli is missing from crates.io here.
  cargo_install_tool wasm-bindgen-cli --version "$wb_version"
fi

# The `wasm` profile (Cargo.toml): opt-level "s" but for the matmul kernels' crates.
target_dir="${CARGO_TARGET_DIR:-$root/target}"
cargo build --profile wasm -p akidb-wasm --target wasm32-unknown-unknown
# Both builds write this one path: each is copied out before the next build, under its own directory and
# the same file name (wasm-bindgen names the glue after the input file).
out_wasm="$target_dir/wasm32-unknown-unknown/wasm/akidb_wasm.wasm"
builds="$target_dir/wasm32-unknown-unknown/wasm/variants"
mkdir -p "$builds/simd" "$builds/relaxed-simd"
wasm="$builds/simd/akidb_wasm.wasm"
relaxed_wasm="$builds/relaxed-simd/akidb_wasm.wasm"
cp "$out_wasm" "$wasm"
cargo build --profile wasm -p akidb-wasm --target wasm32-unknown-unknown --features relaxed-simd
cp "$out_wasm" "$relaxed_wasm"

# The threads build (akidb-wasm/build-threads.sh).
bash akidb-wasm/build-threads.sh
threads_wasm="$target_dir/wasm-threads/wasm32-unknown-unknown/wasm/akidb_wasm.wasm"

pkg="$root/akidb-wasm/pkg"
rm -rf "$pkg.tmp"
mkdir -p "$pkg.tmp"
# wasm-bindgen warns that `strip` hides the target_features section: nothing reads it here (no wasm-opt).
bindgen() { wasm-bindgen "$@" 2> >(grep -v 'target_features. custom section is missing' >&2); }
for target in web bundler nodejs; do
  dir=$target; [ "$target" = nodejs ] && dir=node
  bindgen --target "$target" --out-dir "$pkg.tmp/$dir" "$wasm"
done
for target in web nodejs; do
  bindgen --target "$target" --out-dir "$pkg.tmp/relaxed-$target" "$relaxed_wasm"
done
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$pkg.tmp/web-threads" \
  "$threads_wasm"
if ! grep -q 'shared:true' "$pkg.tmp/web-threads/akidb_wasm.js"; then
  echo "akidb-wasm/build.sh: the threads build's glue makes no shared memory (atomics off?)" >&2
  exit 1
fi
# One web glue serves both builds only if wasm-bindgen wrote the same glue for each.
for f in akidb_wasm.js akidb_wasm.d.ts akidb_wasm_bg.wasm.d.ts; do
  if ! cmp -s "$pkg.tmp/web/$f" "$pkg.tmp/relaxed-web/$f"; then
    echo "akidb-wasm/build.sh: the relaxed-simd build's web/$f differs from the simd build's: ship both glues" >&2
    exit 1
  fi
done
mv "$pkg.tmp/relaxed-web/akidb_wasm_bg.wasm" "$pkg.tmp/web/akidb_wasm_relaxed_simd_bg.wasm"
rm -r "$pkg.tmp/relaxed-web"
mv "$pkg.tmp/relaxed-nodejs" "$pkg.tmp/node-relaxed-simd"
# node/ and node-relaxed-simd/ are CommonJS inside a "type": "module" package.
for dir in node node-relaxed-simd; do echo '{ "type": "commonjs" }' >"$pkg.tmp/$dir/package.json"; done
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

for f in web/akidb_wasm_bg.wasm web/akidb_wasm_relaxed_simd_bg.wasm web-threads/akidb_wasm_bg.wasm; do
  raw=$(stat -c %s "$pkg/$f")
  gz=$(gzip -9 -c "$pkg/$f" | wc -c)
  awk -v f="$f" -v r="$raw" -v g="$gz" -v p="${pkg#"$root"/}" \
    'BEGIN { printf "@akidb/wasm built in %s: %s %.2f MB raw, %.2f MB gzip -9\n", p, f, r / 1e6, g / 1e6 }' >&2
done
