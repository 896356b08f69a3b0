#!/usr/bin/env bash
# The wasm-threads build of akidb-wasm (the `threads` feature) into $CARGO_TARGET_DIR/wasm-threads (default
# target/wasm-threads): nightly Rust with std rebuilt with atomics (-Z build-std), in a target dir of its own
# (other RUSTFLAGS: nothing is shared with the other two builds). akidb-wasm/build.sh runs it and makes the
# package's web-threads/ from its .wasm. Installs nightly's rust-src if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

# The threads build. RUSTFLAGS replaces .cargo/config.toml's (so simd128 is named again, and symbols are
# left for wasm-bindgen: it reads the target_features section to emit the shared-memory glue, then drops
# the names). rustc no longer passes the shared-memory link flags by itself: they go to akidb-wasm's link
# only (cargo rustc), so no dependency recompiles for them. 1 GiB maximum memory (the pool's shared memory
# must declare one; a batch of 32 long texts peaks near 200 MB).
# A nightly already here is used as it is (installing `nightly` again would update it): only rust-src is
# added to it.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain with rust-src (the threads build rebuilds std)" >&2
  rustup toolchain install nightly --profile minimal --component rust-src
elif ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  rustup component add rust-src --toolchain nightly
fi
echo "threads build with $(rustup run nightly rustc --version)" >&2
threads_target="$target_dir/wasm-threads"
CARGO_TARGET_DIR="$threads_target" RUSTFLAGS="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals" \
  cargo +nightly rustc --profile wasm -p akidb-wasm --lib --target wasm32-unknown-unknown --features threads \
  -Z build-std=panic_abort,std -- \
  -C link-arg=--shared-memory -C link-arg=--max-memory=1073741824 -C link-arg=--import-memory \
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align \
  -C link-arg=--export=__tls_base
