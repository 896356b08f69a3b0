#!/usr/bin/env bash
# Builds `akidb` and `model-server` for NVIDIA Jetson (aarch64-unknown-linux-gnu) against glibc 2.31, the glibc of JetPack 5
# (Ubuntu 20.04), with cargo-zigbuild: zig links against 2.31's symbol versions, where a plain cross-gcc
# build would need the host's (2.34+). Installs what it needs: the rustup target, `ziglang` from PyPI (user
# site) and cargo-zigbuild from crates.io into target/tools. Builds with the `dist` profile (release code,
# no debug info, stripped: what the images ship). Writes target/jetson/{akidb,model-server} and checks each
# is an AArch64 ELF needing no glibc symbol newer than 2.31.
#
# `jetson/build.sh --cuda`: instead, `akidb` with the GPU backend for JetPack 6 (feature cuda-12060: the
# CUDA 12.6 driver API of JetPack 6.2; tract-cuda loads the CUDA libraries at run time, so nothing of CUDA
# is needed here) -> target/jetson/akidb-cuda, same glibc check (JetPack 6 has 2.35, newer than 2.31).
# It builds in its own target dir (target/cuda): another feature set in target/ would rebuild tract for
# every later build there.
set -euo pipefail
cuda=0
case "${1:-}" in
  --cuda) cuda=1 ;;
  "") ;;
  *) echo "usage: jetson/build.sh [--cuda]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
glibc=2.31
target=aarch64-unknown-linux-gnu
tools="$root/target/tools"
export PATH="$tools/bin:$PATH"
step() { printf '\n== jetson build: %s\n' "$*" >&2; }

step "tools"
rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
python3 -m ziglang version >/dev/null 2>&1 ||
  python3 -m pip install --quiet --user ziglang 2>/dev/null ||
  python3 -m pip install --quiet --user --break-system-packages ziglang
command -v cargo-zigbuild >/dev/null || cargo install cargo-zigbuild --root "$tools"

mkdir -p target/jetson
if [ "$cuda" = 1 ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/cuda"
  step "cargo zigbuild --profile dist --target $target.$glibc --features akidb-native/cuda-12060 (akidb)"
  cargo zigbuild --profile dist --target "$target.$glibc" -p akidb-native --bin akidb --features akidb-native/cuda-12060
  bins=(akidb)
else
  step "cargo zigbuild --profile dist --target $target.$glibc"
  # One invocation for both binaries: they share akidb-core and tract, which compile once.
  cargo zigbuild --profile dist --target "$target.$glibc" -p akidb-native --bin akidb -p model-server --bin model-server
  bins=(akidb model-server)
fi
for bin in "${bins[@]}"; do
  built="${CARGO_TARGET_DIR:-$root/target}/$target/dist/$bin"
  step "check $bin"
  readelf -h "$built" | grep -q 'Machine:.*AArch64' || { echo "$built is not an AArch64 ELF" >&2; exit 1; }
  newest=$(readelf -W --version-info "$built" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  if [ "$(printf '%s\n%s\n' "$newest" "$glibc" | sort -V | tail -1)" != "$glibc" ]; then
    echo "$built needs glibc $newest, newer than JetPack's $glibc" >&2
    exit 1
  fi
  out="target/jetson/$bin"
  [ "$cuda" = 1 ] && out="target/jetson/$bin-cuda"
  cp "$built" "$out.tmp" && mv "$out.tmp" "$out"
  echo "$out: aarch64, needs glibc >= $newest (JetPack 5 has $glibc), $(du -h "$out" | cut -f1)" >&2
done
