#!/usr/bin/env bash
# Jetson smoke test, runnable on any x86-64 Debian: the aarch64 `akidb` (jetson/build.sh) runs under
# qemu-aarch64-static against Debian bullseye's glibc 2.31 (the glibc of JetPack 5 / Ubuntu 20.04), serves
# the bundle the cluster's `latest` is (int8-dynamic: the integer path, on tract's aarch64 int8 kernels; or
# $BUNDLE) on loopback, and its embeddings of golden sentences are compared with the reference
# (../shared/golden). Installs qemu-user-static if missing; the glibc 2.31 runtime comes from two pinned
# Debian packages (sha256-checked, jetson/sysroot.sh), or from $QEMU_LD_PREFIX when set.
set -euo pipefail
# The Python helpers of scripts/lib are imported: no __pycache__ left in the source tree.
export PYTHONDONTWRITEBYTECODE=1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${1:-target/jetson/akidb}
bundle=${BUNDLE:-models/all-MiniLM-L6-v2/int8-dynamic}
golden=${GOLDEN_DIR:-$root/../shared/golden}
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
# QEMU_LD_PREFIX: the root the binary's loader and libraries come from. Given (images/check.sh passes the
# image's unpacked root filesystem), the binary runs against exactly what the image ships.
prefix=${QEMU_LD_PREFIX:-$(bash jetson/sysroot.sh)}
# Cortex-A76 (Armv8.2, NEON, no SVE) stands in for the Jetson Orin's Cortex-A78AE: tract then picks the
# NEON kernels a Jetson runs, not the SVE ones qemu's default CPU would offer.
run=(env QEMU_CPU=cortex-a76 qemu-aarch64-static -L "$prefix" "$bin")
"${run[@]}" --version

step "the manifests' flags are ones these binaries take"
model_server_bin=${MODEL_SERVER_BIN:-$(dirname "$bin")/model-server}
[ -x "$model_server_bin" ] || { echo "no aarch64 model-server at $model_server_bin: run jetson/build.sh first" >&2; exit 1; }
serve_help=$("${run[@]}" serve --help)
model_server_help=$(QEMU_CPU=cortex-a76 qemu-aarch64-static -L "${MODEL_SERVER_LD_PREFIX:-$prefix}" "$model_server_bin" serve --help)
python3 - "$serve_help" "$model_server_help" <<'PY'
import pathlib, re, sys, yaml
helps = {"akidb-serve": sys.argv[1], "model-server": sys.argv[2]}
checked = 0
for path in sorted(pathlib.Path("jetson/k8s").rglob("*.yaml")):
    for doc in yaml.safe_load_all(open(path)):
        for c in (doc or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for arg in c.get("args", []):
                if arg.startswith("--"):
                    flag = arg.split("=", 1)[0]
                    assert c["name"] in helps, f"{path}: container {c['name']} is neither akidb-serve nor model-server"
                    # clap lists a flag as "--name <VALUE>", or alone on its line when it takes none.
                    known = re.search(rf"^\s*(-\w, )?{re.escape(flag)}( |$)", helps[c["name"]], re.M)
                    assert known, f"{path}: `{c['name']} serve` has no {flag}"
                    checked += 1
assert checked, "no container args found in jetson/k8s"
print(f"jetson/k8s: {checked} flags, all known to akidb serve / model-server serve")
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
if grep -q '"quantization": *"int8-dynamic"' "$bundle/manifest.json"; then
  # aarch64 has no slow-kernel exception (akidb-core's integer.rs): the integer path must be the one running.
  grep -q 'weight_products="int8 x int8 -> i32"' "$log" ||
    { cat "$log" >&2; echo "the int8-dynamic bundle is not on the integer path under qemu" >&2; exit 1; }
  echo "weight products: int8 x int8 -> i32 (the ready line)" >&2
fi

step "embed golden sentences, compare with the reference"
python3 - "$port" "$golden" "$bundle/manifest.json" <<'PY'
import json, sys, urllib.request
sys.path.insert(0, "scripts/lib")
import golden
port, ref = sys.argv[1], golden.load(sys.argv[2])
quantization = json.load(open(sys.argv[3])).get("quantization", "none")
bar = golden.min_bar(quantization)
picks = [i for i, s in enumerate(ref.sentences) if len(s.split()) >= 4][:24]

def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=300))

got = post("/v1/embed", {"texts": [ref.sentences[i] for i in picks]})["embeddings"]
openai = post("/v1/embeddings", {"input": ref.sentences[picks[0]], "model": "all-MiniLM-L6-v2"})["data"][0]["embedding"]
worst, mean = golden.check(ref, picks, got, min_bar=bar)
openai_cos, _ = golden.check(ref, picks[:1], [openai], min_bar=bar)
print(f"aarch64 akidb under qemu ({quantization}): {len(picks)} golden sentences, min cosine {worst:.6f} "
      f"(bar {bar}), mean {mean:.6f}; /v1/embeddings cosine {openai_cos:.6f}")
PY

step "graceful shutdown"
kill -TERM $pid
wait $pid || { status=$?; cat "$log" >&2; echo "akidb (aarch64) exited with status $status on SIGTERM" >&2; exit 1; }
echo "jetson smoke test passed" >&2
