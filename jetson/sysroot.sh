#!/usr/bin/env bash
# Unpacks Debian bullseye's glibc 2.31 aarch64 runtime (the glibc of JetPack 5 / Ubuntu 20.04) into
# target/tools/sysroot-bullseye-arm64, from two pinned, sha256-checked packages; a second run downloads
# nothing. Used by smoke-test.sh (qemu's -L root) and images/build.sh (the libraries the arm64 images ship).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sysroot="$root/target/tools/sysroot-bullseye-arm64"
# Pinned: bullseye is frozen, so these names and hashes do not change.
debs=(
  "pool/main/c/cross-toolchain-base/libc6-arm64-cross_2.31-9cross4_all.deb ccd237814281910e72422a6e86a6ef7570105fc69119ff8fc82f6a4827a8a015"
  "pool/main/g/gcc-10-cross/libgcc-s1-arm64-cross_10.2.1-6cross1_all.deb 2966823a38c100f77786a49f734d240c892fc86c473dbf1c862c23424900fd83"
)
if [ ! -e "$sysroot/.complete" ]; then
  rm -rf "$sysroot.tmp" && mkdir -p "$sysroot.tmp"
  for d in "${debs[@]}"; do
    read -r path sha <<<"$d"
    curl -fsSL --retry 3 -o "$sysroot.tmp/pkg.deb" "http://deb.debian.org/debian/$path"
    echo "$sha  $sysroot.tmp/pkg.deb" | sha256sum -c --quiet - || { echo "sha256 mismatch: $path" >&2; exit 1; }
    dpkg-deb -x "$sysroot.tmp/pkg.deb" "$sysroot.tmp"
    rm "$sysroot.tmp/pkg.deb"
  done
  touch "$sysroot.tmp/.complete"
  rm -rf "$sysroot" && mv "$sysroot.tmp" "$sysroot"
fi
echo "$sysroot/usr/aarch64-linux-gnu"
