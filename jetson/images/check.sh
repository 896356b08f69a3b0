#!/usr/bin/env bash
# Checks the four OCI archives of images/build.sh as a node would see them:
#   - config (skopeo): architecture, os, user 65532, entrypoint, exposed port, the OCI labels, and the
#     manifest's annotations (source, revision, version);
#   - root filesystem (umoci unpack): exactly the binary, its loader and its libraries; no shell;
#   - the amd64 binaries start from their unpacked root filesystem (its own loader and libraries);
#   - the arm64 akidb from its unpacked root filesystem serves golden sentences under qemu-aarch64-static
#     (jetson/smoke-test.sh with the image's root as the library root: cosine to ../shared/golden).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
images=target/images
work=$images/check
step() { printf '\n== images check: %s\n' "$*" >&2; }
fail() {
  echo "images check: $*" >&2
  exit 1
}

[ -f "$images/TAG" ] || fail "no $images/TAG: run jetson/images/build.sh first"
tag=$(cat "$images/TAG")
revision=$(git rev-parse HEAD)
rm -rf "$work" && mkdir -p "$work"

for arch in arm64 amd64; do
  for image in akidb-serve model-server; do
    archive="$images/$image-$arch.oci.tar"
    step "$image ($arch): $archive"
    case "$image" in
      akidb-serve) bin=akidb port=8080 ;;
      model-server) bin=model-server port=8081 ;;
    esac
    skopeo inspect --config "oci-archive:$archive" >"$work/config.json"
    skopeo inspect --raw "oci-archive:$archive" >"$work/manifest.json"
    python3 - "$work/config.json" "$work/manifest.json" "$arch" "/$bin" "$port" "$tag" "$revision" <<'PY'
import json, sys
config, manifest = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
arch, entry, port, tag, revision = sys.argv[3:]
c = config["config"]
checks = {
    "architecture": (config["architecture"], arch),
    "os": (config["os"], "linux"),
    "user": (c.get("User"), "65532:65532"),
    "entrypoint": (c.get("Entrypoint"), [entry]),
    "first argument": ((c.get("Cmd") or [None])[0], "serve"),
    "exposed port": (sorted(c.get("ExposedPorts", {})), [f"{port}/tcp"]),
    "label revision": (c.get("Labels", {}).get("org.opencontainers.image.revision"), revision),
    "label version": (c.get("Labels", {}).get("org.opencontainers.image.version"), tag.split("-")[0]),
    "annotation revision": (manifest.get("annotations", {}).get("org.opencontainers.image.revision"), revision),
    "annotation version": (manifest.get("annotations", {}).get("org.opencontainers.image.version"), tag.split("-")[0]),
}
bad = [f"{k}: {got!r}, expected {want!r}" for k, (got, want) in checks.items() if got != want]
for key in ("org.opencontainers.image.source",):
    if not c.get("Labels", {}).get(key) or not manifest.get("annotations", {}).get(key):
        bad.append(f"{key} missing from the labels or the annotations")
if bad:
    sys.exit("config: " + "; ".join(bad))
print(f"config: {arch}, user 65532, entrypoint {entry}, port {port}, labels and annotations (revision {revision[:12]})")
PY

    layout="$work/layout-$image-$arch" rootfs="$work/rootfs-$image-$arch"
    mkdir -p "$layout" && tar -C "$layout" -xf "$archive"
    umoci unpack --rootless --image "$layout:docker.io/library/$image:$tag" "$rootfs" >/dev/null
    files=$(cd "$rootfs/rootfs" && find . -mindepth 1 ! -type d | sort | tr '\n' ' ')
    echo "root filesystem: $files" >&2
    [ -x "$rootfs/rootfs/$bin" ] || fail "$image ($arch): no executable /$bin"
    for shell in bin/sh bin/bash usr/bin/sh; do
      [ ! -e "$rootfs/rootfs/$shell" ] || fail "$image ($arch): ships a shell ($shell)"
    done
    for f in $files; do
      case "$f" in
        "./$bin" | ./lib/*.so* | ./lib64/ld-linux-x86-64.so.2) ;;
        *) fail "$image ($arch): unexpected file $f in the root filesystem" ;;
      esac
    done
    if [ "$arch" = amd64 ]; then
      # Its own loader and libraries only (the build machine's are not looked at).
      "$rootfs/rootfs/lib64/ld-linux-x86-64.so.2" --inhibit-cache --library-path "$rootfs/rootfs/lib" \
        "$rootfs/rootfs/$bin" --version >&2 || fail "$image (amd64) does not start from its root filesystem"
    fi
  done
done

step "arm64 akidb from its image's root filesystem, under qemu: golden sentences"
rootfs_serve="$work/rootfs-akidb-serve-arm64/rootfs"
rootfs_model_server="$work/rootfs-model-server-arm64/rootfs"
QEMU_LD_PREFIX="$rootfs_serve" MODEL_SERVER_BIN="$rootfs_model_server/model-server" MODEL_SERVER_LD_PREFIX="$rootfs_model_server" \
  bash jetson/smoke-test.sh "$rootfs_serve/akidb"
echo "images check passed: 4 images ($tag)" >&2
