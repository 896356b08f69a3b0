#!/usr/bin/env bash
# Stages what the GPU run (scripts/gpu/run.sh) needs on a machine without network, in target/gpu-stage
# (at most 64 MiB: what the device tool carries):
#   akidb.gz          x86-64, --features akidb-native/cuda (CUDA 13 API), release code, stripped, gzipped
#   bundle/           the int8 bundle (models/all-MiniLM-L6-v2/int8), which the PyTorch side reads too
#   golden/           ../shared/golden: sentences, reference embeddings, token ids
#   wheels/           nvidia-cuda-runtime and nvidia-cuda-cccl 13.0 (headers only are used: tract-cuda's
#                     NVRTC kernels need cuda_fp16.h, math_constants.h and CCCL; run.sh unpacks them only if
#                     the GPU machine has no complete set of its own)
# and first checks here, with numpy, that the int8 weights loaded the PyTorch way give golden-correct
# vectors (scripts/gpu/check_weights.py), so the GPU run cannot fail on that.
# The binary is make test's build (scripts/lib/prereqs.sh's build_workspace: test-hooks and the cuda
# feature), in target/. Installs what it needs: numpy in target/tools/gpu-venv, the two wheels (PyPI).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
stage=target/gpu-stage
venv=target/tools/gpu-venv
numpy=numpy==2.3.5
wheels=(nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85)
bundle=models/all-MiniLM-L6-v2/int8
golden=../shared/golden
step() { printf '\n== gpu prepare: %s\n' "$*" >&2; }

step "tools"
if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$numpy" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$numpy"
  echo "$numpy" >"$venv/.installed"
fi
[ -f "$bundle/model.onnx" ] || { echo "no $bundle: build the bundles first (make models)" >&2; exit 1; }
[ -f "$golden/embeddings.f32" ] || { echo "no $golden: put shared/ beside the workspace" >&2; exit 1; }

step "the int8 weights as PyTorch will load them, vs golden (numpy, CPU)"
(cd scripts/gpu && "$root/$venv/bin/python" check_weights.py "$root/$bundle/model.onnx" "$root/$golden")

step "akidb with the cuda feature"
start=$SECONDS
# The very build of make test (a no-op after it): another feature set here (without test-hooks, or with
# --bin only, which drops the dev-dependencies' features) re-resolves the dependencies and compiles tract
# once more. The test-hooks feature it carries is inert unless AKIDB_TEST_HOLD_BATCH is set, which run.sh
# never does.
build_workspace
echo "build: $((SECONDS - start)) s" >&2

step "stage $stage"
rm -rf "$stage.tmp" && mkdir -p "$stage.tmp/bundle" "$stage.tmp/golden" "$stage.tmp/wheels"
objcopy --strip-all target/release/akidb "$stage.tmp/akidb"
gzip -9 "$stage.tmp/akidb" # 37 MB -> about a third; run.sh unpacks it
cp "$bundle"/* "$stage.tmp/bundle/"
cp "$golden"/sentences.json "$golden"/embeddings.f32 "$golden"/token_ids.json "$stage.tmp/golden/"
cache=target/tools/gpu-wheels
for w in "${wheels[@]}"; do
  name=${w%%==*}
  ls "$cache/${name//-/_}-${w##*==}-"*.whl >/dev/null 2>&1 ||
    "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$cache" "$w"
  cp "$cache/${name//-/_}-${w##*==}-"*.whl "$stage.tmp/wheels/"
done
rm -rf "$stage" && mv "$stage.tmp" "$stage"
bytes=$(du -sb "$stage" | cut -f1)
du -ah "$stage" | sort -k2 >&2
limit=$((64 << 20))
echo "staged: $bytes bytes ($((bytes >> 20)) MiB) of the $((limit >> 20)) MiB the device tool carries" >&2
[ "$bytes" -le "$limit" ] || { echo "$stage is over 64 MiB" >&2; exit 1; }
