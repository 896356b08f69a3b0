#!/usr/bin/env bash
# Builds `akidb` and `model-server` for NVIDIA Jetson (aarch64-unknown-linux-gnu) against glibc 2.31, the glibc of JetPack 5
# (Ubuntu 20.04), with cargo-zigbuild: zig links against 2.31's symbol versions, where a plain cross-gcc
# build would need the host's (2.34+). Installs what it needs: the rustup target, and from PyPI (user site)
# `ziglang` and cargo-zigbuild's prebuilt wheel (compiling it from crates.io took 84 s of CI's two cores).
# Builds with the `dist` profile (release code, no debug info, stripped: what the images ship). Writes target/jetson/{akidb,model-server} and checks each
# is an AArch64 ELF needing no glibc symbol newer than 2.31.
#
# `akidb` carries the GPU backend for JetPack 6 (feature cuda-12060: the CUDA 12.6 driver API of JetPack
# 6.2). tract-cuda loads the CUDA libraries at run time, and only for `--device cuda|auto`, so the same binary
# serves the CPU image (the default `--device cpu` never touches CUDA) and the GPU overlay; one aarch64 build,
# not two (a second feature set is a second full tract compile: ~10 min of CI's two cores).
set -euo pipefail
case "${1:-}" in
  "") ;;
  *) echo "usage: jetson/build.sh" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
glibc=2.31
target=aarch64-unknown-linux-gnu
step() { printf '\n== jetson build: %s\n' "$*" >&2; }

step "tools"
rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
# pip_user SPEC: installs into the user site (Debian's pip refuses without --break-system-packages).
pip_user() {
  python3 -m pip install --quiet --user "$1" 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages "$1"
}
python3 -m ziglang version >/dev/null 2>&1 || pip_user ziglang
zigbuild_version=0.24.0
user_bin="$(python3 -m site --user-base)/bin"
export PATH="$user_bin:$PATH"
if [ "$(cargo-zigbuild --version 2>/dev/null)" != "cargo-zigbuild $zigbuild_version" ]; then
  pip_user "cargo-zigbuild==$zigbuild_version"
fi

mkdir -p target/jetson
step "cargo zigbuild --profile dist --target $target.$glibc --features akidb-native/cuda-12060"
# One invocation for both binaries: they share akidb-core and tract, which compile once.
cargo zigbuild --profile dist --target "$target.$glibc" -p akidb-native --bin akidb -p model-server --bin model-server \
  --features akidb-native/cuda-12060
bins=(akidb model-server)
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
  cp "$built" "$out.tmp" && mv "$out.tmp" "$out"
  echo "$out: aarch64, needs glibc >= $newest (JetPack 5 has $glibc), $(du -h "$out" | cut -f1)" >&2
done
