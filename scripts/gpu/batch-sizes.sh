#!/usr/bin/env bash
# Throughput of `akidb bench --device cuda` by batch size, on the GPU machine after scripts/gpu/prepare.sh
# staged target/gpu-stage: the bench's 32 sentences repeated to each size, 5 timed rounds each. It is the
# curve that sizes the GPU micro-batcher's batch limit (BatchOptions::gpu: 256 texts).
# Usage: bash scripts/gpu/batch-sizes.sh [SIZE...]   (default 32 64 128 256 512 1024)
# Results: $OUT/batch-sizes.md (default target/gpu-out) and each size's bench JSON in $OUT/batch-sizes.jsonl.
# AKIDB_GPU_DEVICE=cpu runs it on the CPU (a dry run).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=scripts/gpu/stage.sh
source scripts/gpu/stage.sh
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(32 64 128 256 512 1024)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
akidb=$work/akidb
unpack_akidb "$akidb"
if [ "$device" != cpu ]; then
  eval "$(python3 scripts/gpu/cuda_env.py "$stage")"
fi
# tract-cuda's NVRTC kernels, compiled by the first run and reused by the others.
export XDG_CACHE_HOME=$work/cache
: >"$out/batch-sizes.jsonl"
for size in "${sizes[@]}"; do
  echo "== batch of $size [${SECONDS}s]" >&2
  "$akidb" bench --device "$device" --bundle "$stage/bundle" --json --single-runs 20 --batch-rounds 5 \
    --big-batch "$size" >>"$out/batch-sizes.jsonl"
done
python3 - "$out/batch-sizes.jsonl" >"$out/batch-sizes.md" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"# akidb bench by batch size ({rows[0]['device']}, {rows[0]['device_name']})\n")
print("| batch | median ms | sentences/s | per sentence ms |")
print("|---|---|---|---|")
for r in rows:
    n, ms = r["big_batch"], r["big_batch_ms"]
    print(f"| {n} | {ms:.2f} | {r['big_batch_sentences_per_s']:.0f} | {ms / n:.3f} |")
print(f"\nsingle sentence p50 {rows[-1]['single_p50_ms']:.2f} ms; host ops: {rows[-1]['host_ops']}")
PY
cat "$out/batch-sizes.md"
