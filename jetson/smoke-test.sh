#!/usr/bin/env bash
# Jetson smoke test, runnable on any x86-64 Debian: the aarch64 `akidb` (jetson/build.sh) runs under
# qemu-aarch64-static against Debian bullseye's glibc 2.31 (the glibc of JetPack 5 / Ubuntu 20.04), serves
# the int8 bundle on loopback, and its embeddings of golden sentences are compared with the reference
# (../shared/golden). Installs qemu-user-static if missing; the glibc 2.31 runtime comes from two pinned
# Debian packages (sha256-checked) unpacked into target/tools/sysroot-bullseye-arm64.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${1:-target/jetson/akidb}
bundle=models/all-MiniLM-L6-v2/int8
golden=${GOLDEN_DIR:-$root/../shared/golden}
sysroot=target/tools/sysroot-bullseye-arm64
step() { printf '\n== jetson smoke test: %s\n' "$*" >&2; }

[ -x "$bin" ] || { echo "no aarch64 binary at $bin: run jetson/build.sh first" >&2; exit 1; }
[ -f "$bundle/manifest.json" ] || { echo "no bundle at $bundle: run scripts/fetch-models.sh first" >&2; exit 1; }

step "qemu-user-static"
if ! command -v qemu-aarch64-static >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user-static >/dev/null
fi

step "glibc 2.31 aarch64 runtime (Debian bullseye)"
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
prefix="$sysroot/usr/aarch64-linux-gnu"
# Cortex-A76 (Armv8.2, NEON, no SVE) stands in for the Jetson Orin's Cortex-A78AE: tract then picks the
# NEON kernels a Jetson runs, not the SVE ones qemu's default CPU would offer.
run=(env QEMU_CPU=cortex-a76 qemu-aarch64-static -L "$prefix" "$bin")
"${run[@]}" --version

step "the k3s manifest's flags are ones this binary takes"
help=$("${run[@]}" serve --help)
python3 - "$help" jetson/k3s/*.yaml <<'PY'
import sys, yaml
help_text, paths = sys.argv[1], sys.argv[2:]
checked = 0
for path in paths:
    for doc in yaml.safe_load_all(open(path)):
        for c in (doc or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for arg in c.get("args", []):
                if arg.startswith("--"):
                    flag = arg.split("=", 1)[0]
                    assert f"{flag} " in help_text, f"{path}: `akidb serve` has no {flag}"
                    checked += 1
assert checked, "no container args found in the k3s manifests"
print(f"k3s manifests: {checked} serve flags, all known to akidb serve")
PY

step "serve under qemu"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"${run[@]}" serve --bundle "$bundle" --addr "127.0.0.1:$port" --timeout-s 600 --max-batch 4 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
start=$SECONDS
for _ in $(seq 2400); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; echo "akidb (aarch64) exited before it was ready" >&2; exit 1; }
  sleep 0.25
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$log" >&2; echo "not ready after 600 s" >&2; exit 1; }
echo "ready under qemu after $((SECONDS - start)) s (model load and warm-up)" >&2

step "embed golden sentences, compare with the reference"
python3 - "$port" "$golden" <<'PY'
import json, math, struct, sys, urllib.request
port, golden = sys.argv[1], sys.argv[2]
sentences = json.load(open(f"{golden}/sentences.json"))
raw = open(f"{golden}/embeddings.f32", "rb").read()
dim = len(raw) // 4 // len(sentences)
ref = [struct.unpack_from(f"<{dim}f", raw, i * dim * 4) for i in range(len(sentences))]
picks = [i for i, s in enumerate(sentences) if len(s.split()) >= 4][:24]

def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=300))

def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

got = post("/v1/embed", {"texts": [sentences[i] for i in picks]})["embeddings"]
openai = post("/v1/embeddings", {"input": sentences[picks[0]], "model": "all-MiniLM-L6-v2"})["data"][0]["embedding"]
assert len(got) == len(picks), f"{len(got)} embeddings for {len(picks)} texts"
cosines = [cos(g, ref[i]) for g, i in zip(got, picks)]
worst = min(cosines)
print(f"aarch64 akidb under qemu: {len(picks)} golden sentences, min cosine {worst:.6f}, "
      f"mean {sum(cosines) / len(cosines):.6f}; /v1/embeddings cosine {cos(openai, ref[picks[0]]):.6f}")
assert worst >= 0.995, f"min cosine {worst} < 0.995 (int8 bar)"
assert cos(openai, ref[picks[0]]) >= 0.995, "/v1/embeddings differs from the reference"
PY

step "graceful shutdown"
kill -TERM $pid
wait $pid || { status=$?; cat "$log" >&2; echo "akidb (aarch64) exited with status $status on SIGTERM" >&2; exit 1; }
echo "jetson smoke test passed" >&2
