#!/usr/bin/env bash
# Builds the four images without a daemon (buildah, vfs storage under target/images/.storage) and writes
# them as OCI archives that `k3s ctr images import` takes:
#   target/images/{akidb-serve,model-server}-{arm64,amd64}.oci.tar, and target/images/TAG (their tag).
# Inputs: arm64 - target/jetson/{akidb,model-server} (jetson/build.sh: dist profile, glibc 2.31) with
# Debian bullseye's glibc 2.31 runtime (jetson/sysroot.sh); amd64 - target/release/{akidb,model-server}
# (the build CI's native tests already make; built here if missing) with their symbols stripped, which is
# what the dist profile gives, with the build machine's glibc. Each image ships its binary, the dynamic
# loader and the libraries the binary names (readelf's NEEDED), nothing else.
# Env: AKIDB_IMAGE_SOURCE (OCI source annotation; default: git's origin URL, else "akidb-edge").
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=target/images
storage=(--root "$root/$out/.storage" --runroot "$root/$out/.run" --storage-driver vfs)
step() { printf '\n== images: %s\n' "$*" >&2; }

step "tools"
missing=()
for tool in buildah readelf objcopy; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah binutils >/dev/null
fi

version=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "akidb-native"))')
revision=$(git rev-parse HEAD)
# Unique per commit: `kubectl rollout undo` goes back to the previous tag, which must still name the
# previous image on the nodes.
tag="$version-${revision:0:12}"
source_url=${AKIDB_IMAGE_SOURCE:-$(git config --get remote.origin.url || echo akidb-edge)}

for bin in target/jetson/akidb target/jetson/model-server; do
  [ -x "$bin" ] || { echo "no $bin: run jetson/build.sh first" >&2; exit 1; }
done
if [ ! -x target/release/akidb ] || [ ! -x target/release/model-server ]; then
  step "amd64 binaries (cargo build --release)"
  cargo build --release -p akidb-native --bin akidb -p model-server --bin model-server
fi
arm64_libs=$(bash jetson/sysroot.sh)/lib

# stage IMAGE ARCH BINARY: target/images/ctx-IMAGE-ARCH/rootfs with /NAME, the loader and NEEDED libraries.
stage() {
  local image=$1 arch=$2 binary=$3 name ctx lib interp
  name=$(basename "$binary")
  ctx="$out/ctx-$image-$arch"
  rm -rf "$ctx" && mkdir -p "$ctx/rootfs/lib"
  objcopy --strip-all "$binary" "$ctx/rootfs/$name" 2>/dev/null || cp "$binary" "$ctx/rootfs/$name"
  interp=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  mkdir -p "$ctx/rootfs$(dirname "$interp")"
  for lib in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p') "$(basename "$interp")"; do
    if [ "$arch" = arm64 ]; then
      cp -L "$arm64_libs/$lib" "$ctx/rootfs/lib/$lib"
    else
      cp -L "$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')" "$ctx/rootfs/lib/$lib"
    fi
  done
  # The loader where the binary asks for it (/lib/ld-linux-aarch64.so.1, /lib64/ld-linux-x86-64.so.2).
  [ -e "$ctx/rootfs$interp" ] || cp "$ctx/rootfs/lib/$(basename "$interp")" "$ctx/rootfs$interp"
  echo "$ctx"
}

mkdir -p "$out"
for arch in arm64 amd64; do
  for image in akidb-serve model-server; do
    case "$image-$arch" in
      akidb-serve-arm64) binary=target/jetson/akidb ;;
      model-server-arm64) binary=target/jetson/model-server ;;
      akidb-serve-amd64) binary=target/release/akidb ;;
      model-server-amd64) binary=target/release/model-server ;;
    esac
    step "$image ($arch) from $binary"
    ctx=$(stage "$image" "$arch" "$binary")
    ref="docker.io/library/$image:$tag"
    buildah "${storage[@]}" bud --quiet --isolation chroot --arch "$arch" --os linux \
      --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg SOURCE="$source_url" \
      --annotation org.opencontainers.image.version="$version" \
      --annotation org.opencontainers.image.revision="$revision" \
      --annotation org.opencontainers.image.source="$source_url" \
      --timestamp 0 -f "jetson/images/Containerfile.$image" -t "$ref" "$ctx" >/dev/null
    rm -f "$out/$image-$arch.oci.tar.tmp"
    buildah "${storage[@]}" push --quiet "$ref" "oci-archive:$out/$image-$arch.oci.tar.tmp:$ref"
    mv "$out/$image-$arch.oci.tar.tmp" "$out/$image-$arch.oci.tar"
    buildah "${storage[@]}" rmi "$ref" >/dev/null
    rm -rf "$ctx"
    echo "$out/$image-$arch.oci.tar: $ref, $(du -h "$out/$image-$arch.oci.tar" | cut -f1)" >&2
  done
done
echo "$tag" >"$out/TAG"
