#!/usr/bin/env bash
# The GPU run of issue #20, as one short script for a GPU machine (NVIDIA, CUDA 13 libraries, PyTorch and
# sentence-transformers installed, no network): run it from the repository root after
# scripts/gpu/prepare.sh staged target/gpu-stage here (see scripts/gpu/README.md for the device tool).
#   1. golden bars on the GPU: akidb's token ids vs ../shared/golden (staged), its GPU vectors' min/mean
#      cosine vs the reference (int8 bars 0.995 / 0.999), GPU vs CPU max abs diff;
#   2. akidb bench --device cuda: single-sentence p50/p95, batches of 32 and 256, and the ops tract-cuda
#      left on the CPU;
#   3. sentence-transformers on the same GPU, same sentences, same int8-derived weights: fp32 and fp16;
#   4. akidb serve --device cuda under load at concurrency 64 (scripts/gpu/load.py), its /readyz and
#      device metric.
# Every step runs under a timeout and the run goes on past a failed one, within AKIDB_GPU_DEADLINE_S in all;
# results land in $OUT (the device tool brings it back; default target/gpu-out): summary.md, run.log, and
# steps.tar.gz (one file per step). Exits non-zero if a golden bar fails or a step failed or was skipped.
# AKIDB_GPU_DEVICE=cpu runs the same plumbing on the CPU (a dry run on a machine without a GPU; the
# PyTorch part is skipped there if torch is missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=scripts/gpu/stage.sh
source scripts/gpu/stage.sh
# Timed repetitions (a CPU dry run on a small machine takes fewer).
single_runs=${AKIDB_GPU_SINGLE_RUNS:-200}
rounds=${AKIDB_GPU_ROUNDS:-10}
# The whole run's seconds: each step's timeout is cut to what is left (less the summary's), and a step
# with no time left is skipped and reported, so a run on a lease of minutes still ends with its summary.
deadline=${AKIDB_GPU_DEADLINE_S:-1200}
keep_for_summary=20
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
exec > >(tee "$out/run.log") 2>&1
failed=()
step() { printf '\n== gpu run [%ds]: %s\n' "$SECONDS" "$*"; }
# run_step NAME TIMEOUT_S COMMAND...: records NAME as failed instead of stopping the run.
run_step() {
  local name=$1 limit=$2 left
  shift 2
  left=$((deadline - keep_for_summary - SECONDS))
  if [ "$left" -lt 5 ]; then
    echo "!! step $name skipped: the run's deadline (${deadline} s) is reached"
    failed+=("$name-skipped")
    return 0
  fi
  [ "$limit" -le "$left" ] || limit=$left
  if ! timeout "$limit" "$@"; then
    echo "!! step $name failed or timed out (${limit} s)"
    failed+=("$name")
  fi
}

akidb=$work/akidb
unpack_akidb "$akidb"
sentences="akidb-native/src/bench_sentences.json"

step "machine"
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } || echo "no nvidia-smi"
python3 -c 'import sys, numpy; print("python", sys.version.split()[0], "numpy", numpy.__version__)' || echo "!! no numpy (report.py needs it)"
python3 -c 'import torch, transformers, sentence_transformers as st; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "transformers", transformers.__version__, "sentence-transformers", st.__version__)' || echo "no torch / sentence-transformers"
"$akidb" --version

if [ "$device" != cpu ]; then
  step "CUDA libraries and headers (scripts/gpu/cuda_env.py)"
  eval "$(python3 scripts/gpu/cuda_env.py "$stage")"
fi
# tract-cuda compiles its kernels with NVRTC once and caches them here; the first GPU step pays for it.
export XDG_CACHE_HOME=$work/cache

step "golden sentences as JSON lines"
python3 - "$stage/golden/sentences.json" >"$work/golden.jsonl" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1])):
    print(json.dumps({"text": s}))
PY

step "akidb tokenize (token ids vs golden)"
run_step tokenize 120 "$akidb" tokenize --bundle "$stage/bundle" <"$work/golden.jsonl" >"$out/akidb-token-ids.jsonl"

step "akidb embed --device $device (first GPU use: NVRTC kernel compile included)"
start=$SECONDS
run_step embed-gpu 300 "$akidb" embed --device "$device" --bundle "$stage/bundle" <"$work/golden.jsonl" >"$out/akidb-gpu.jsonl"
echo "embed --device $device of 200 golden sentences: $((SECONDS - start)) s (load, kernel compile, plans)"
step "akidb embed --device cpu (for GPU vs CPU)"
run_step embed-cpu 120 "$akidb" embed --device cpu --bundle "$stage/bundle" <"$work/golden.jsonl" >"$out/akidb-cpu.jsonl"

step "akidb bench --device $device (single, batch 32, batch 256)"
run_step bench 240 "$akidb" bench --device "$device" --bundle "$stage/bundle" --json --single-runs "$single_runs" \
  --batch-rounds "$rounds" --big-batch 256 >"$out/akidb-bench.json"
cat "$out/akidb-bench.json" || true

step "sentence-transformers fp32 / fp16 on the same GPU (scripts/gpu/torch_side.py)"
if python3 -c 'import torch, sentence_transformers' 2>/dev/null; then
  torch_device=cuda
  [ "$device" = cpu ] && torch_device=cpu
  (cd scripts/gpu && run_step torch 300 python3 torch_side.py --bundle "$root/$stage/bundle" \
    --golden "$root/$stage/golden" --sentences "$root/$sentences" --work "$work" --device "$torch_device" \
    --out "$out/torch.json" --vectors "$out/st-fp32.f32" --single-runs "$single_runs" --rounds "$rounds")
  [ -s "$out/torch.json" ] || failed+=(torch)
elif [ "$device" = cpu ]; then
  echo "torch / sentence-transformers missing: PyTorch part NOT run (dry run on the CPU)"
else
  echo "!! torch / sentence-transformers missing on the GPU machine"
  failed+=(torch)
fi

step "akidb serve --device $device under load (concurrency 64, 15 s)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$akidb" serve --device "$device" --bundle "$stage/bundle" --addr "127.0.0.1:$port" >"$out/serve.log" 2>&1 &
serve_pid=$!
ready=0
for _ in $(seq 1800); do
  [ $((SECONDS + keep_for_summary + 15)) -lt "$deadline" ] || break
  if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=2)" 2>/dev/null; then
    ready=1
    break
  fi
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.1
done
echo "serve ready after $SECONDS s of the run: $ready"
if [ "$ready" = 1 ]; then
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/readyz').read().decode(), end='')" | tee "$out/readyz.txt"
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())" | grep "^akidb_device_info" | tee "$out/device-metric.txt" || true
  run_step serve-load 60 python3 scripts/gpu/load.py "127.0.0.1:$port" "$sentences" 64 15 >"$out/serve-load.json"
  cat "$out/serve-load.json" || true
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())" | grep -E '^akidb_batch_size_(sum|count)' | tee "$out/batch-metric.txt" || true
else
  failed+=(serve)
fi
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
tail -5 "$out/serve.log"

step "summary"
report_args=("$out" "$stage/golden" "$device")
if [ ${#failed[@]} -gt 0 ]; then report_args+=("${failed[@]}"); fi
status=0
python3 scripts/gpu/report.py "${report_args[@]}" || status=$?
# The device tool brings back at most 8 files from $OUT: the steps' outputs travel as one archive beside
# summary.md and run.log.
(cd "$out" && find . -maxdepth 1 -type f ! -name summary.md ! -name run.log ! -name steps.tar.gz -printf '%P\n' |
  tar -czf steps.tar.gz -T - --remove-files)
rm -rf "$work"
echo "gpu run: $SECONDS s"
exit "$status"
