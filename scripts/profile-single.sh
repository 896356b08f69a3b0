#!/usr/bin/env bash
# Where a single sentence's time goes in `akidb` (issue #18): `perf record` of `akidb bench` on each
# bundle (1 thread, the bench's 12-token sentence repeated), then the samples split by what the
# function that held the CPU does (matmul kernels, packing, element-wise ops, tract's per-op plan
# work, allocation and copies, tokenisation, pooling), and the inclusive share of a few frames.
# Not a test. Needs perf (perf_event_paranoid <= 2 is enough: user-space samples of our own process).
#
#   scripts/profile-single.sh [RUNS] [VARIANT...]     (default 3000 single-sentence runs; int8 fp32)
#   AKIDB=path/to/akidb BUNDLES=dir scripts/profile-single.sh   (defaults: target/profiling/akidb,
#                                                                 models/all-MiniLM-L6-v2)
#
# The default binary is release's code with line tables (the `profiling` cargo profile), built or brought
# up to date here: release itself carries no debug info, and without it perf can't see inlined frames.
#
# Each sample is put under the innermost tract op being evaluated (its EvalOp::eval frame), or the
# phase around the model (tokenisation, pooling, tract's plan loop); within an op, the leaf says whether
# the CPU was in a matmul asm kernel, in malloc/free/memcpy, or elsewhere.
#
# Output: a markdown table per variant on stdout; perf data and reports under $PROFILE_OUT (default a
# temporary directory, removed at the end). The bench's load, first embedding and its one batch round
# are in the recording too: the script delays the recording past load + first embedding (measured by a
# first, unrecorded bench run), and the batch round is ~1% of the samples at the default RUNS.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-3000}
shift || true
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(int8 fp32)
if [ -z "${AKIDB:-}" ]; then
  cargo build --profile profiling -p akidb-native --bin akidb
fi
akidb=${AKIDB:-target/profiling/akidb}
bundles=${BUNDLES:-models/all-MiniLM-L6-v2}
[ -x "$akidb" ] || { echo "profile-single: build first ($akidb missing)" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile-single: perf not found" >&2; exit 1; }
if [ -n "${PROFILE_OUT:-}" ]; then
  out=$PROFILE_OUT
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

for v in "${variants[@]}"; do
  bundle=$bundles/$v
  [ -f "$bundle/manifest.json" ] || { echo "profile-single: no bundle $bundle (scripts/fetch-models.sh)" >&2; exit 1; }
  # Load + first embedding, to start the recording after them.
  "$akidb" bench --bundle "$bundle" --single-runs 20 --batch-rounds 1 --json >"$out/$v.pre.json"
  delay_ms=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(int((r["load_s"]*1e3+r["first_ms"])*1.5)+50)' "$out/$v.pre.json")
  echo "profile-single: $v: recording $runs runs (delay ${delay_ms} ms)" >&2
  perf record -q -e cpu-clock:u -F 999 --call-graph dwarf,16384 -D "$delay_ms" -o "$out/$v.data" -- \
    "$akidb" bench --bundle "$bundle" --single-runs "$runs" --batch-rounds 1 --json >"$out/$v.json" 2>"$out/$v.perf.log"
  perf script -i "$out/$v.data" --no-inline -F ip,sym >"$out/$v.stacks.txt" 2>/dev/null
  python3 - "$v" "$out/$v.json" "$out/$v.stacks.txt" <<'PY'
import collections, json, re, sys
variant, report_path, stacks_path = sys.argv[1:]
report = json.load(open(report_path))

# One sample per block: frames leaf first, "ip symbol" per line, blocks split by blank lines.
samples, frames = [], []
for line in open(stacks_path, errors="replace"):
    line = line.strip()
    if not line:
        if frames:
            samples.append(frames)
        frames = []
        continue
    frames.append(line.split(None, 1)[1] if " " in line else "[unknown]")
if frames:
    samples.append(frames)

EVAL = re.compile(r"<tract_\w+::ops::(?:\w+::)*(\w+)(?:<.*>)? as tract_core::ops::(?:EvalOp|OpState)>::eval")
KERNEL = re.compile(r"_mmm_(f32|f16|i32)_\d+x\d+")
MEMORY = re.compile(r"^(malloc|free|realloc|calloc|cfree|_int_malloc|_int_free|_int_realloc|malloc_consolidate|"
                    r"unlink_chunk|__mem(cpy|move|set)\w*|__libc_\w*alloc|sysmalloc|alloc::alloc::\w+|"
                    r"__rust_(alloc|dealloc|realloc)\w*)")

def where(st):
    """(phase, detail) of one sample; st is leaf first."""
    text = "\n".join(st)
    if not any("Embedder::embed" in f for f in st):
        return "outside embed (bench loop)", ""
    if re.search(r"TypedOp>::(codegen|declutter|fuse|change_axes|set_symbols|output_facts)|"
                 r"SentenceModel::(optimize|base)|into_runnable|into_decluttered|into_optimized|"
                 r"model::rewrite::prepare", text):
        return "plan compile (the batch's new shapes; not the single-sentence loop)", ""
    if any("Embedder::tokenize" in f or f.startswith("tokenizers::") for f in st):
        return "tokenisation", ""
    for f in st:
        m = EVAL.search(f)
        if m:
            op = m.group(1)
            leaf = st[0]
            if KERNEL.search(leaf):
                part = "kernel (asm)"
            elif MEMORY.search(leaf):
                part = "alloc/free/copy"
            else:
                part = "rest"
            return f"op {op}", part
    if any("SimplePlan" in f and "::run" in f for f in st) or any("SimpleState" in f for f in st):
        return "tract plan loop outside ops (SimpleState spawn/drop, inputs, values)", ""
    if any("SentenceModel::run" in f for f in st):
        return "akidb: input tensors, plan lookup", ""
    return "akidb: pad, pool, normalise, output", ""

phases = collections.Counter()
parts = collections.defaultdict(collections.Counter)
leaf_mem = collections.Counter()
leaf_self = collections.Counter()
for st in samples:
    ph, part = where(st)
    phases[ph] += 1
    if part:
        parts[ph][part] += 1
    if MEMORY.search(st[0]):
        leaf_mem[ph] += 1
    leaf_self[st[0]] += 1
n = len(samples)
runs = len(report["single_samples_ms"])
cpu_ms = n / 999 * 1e3 / runs  # sampling at 999 Hz: CPU time per single-sentence run (plus the batch's share)
p50 = report["single_p50_ms"]
print(f"### {variant}: {report['model']}, {report['single_tokens']} tokens, {runs} runs")
print()
print(f"single p50 {p50:.2f} ms, p95 {report['single_p95_ms']:.2f} ms (wall); {n} samples = "
      f"{cpu_ms:.2f} ms of CPU per run")
print(f"matmul kernels named by the bench (all plans): {', '.join(report['matmul_kernels'])}")
print()
print("| where (innermost tract op, or phase) | share of samples | ≈ ms per run | of which: matmul asm kernel / alloc+free+copy / rest |")
print("|---|---|---|---|")
for ph, c in phases.most_common():
    detail = ""
    if parts[ph]:
        t = parts[ph]
        detail = " / ".join(f"{t[k] / c:.0%}" for k in ("kernel (asm)", "alloc/free/copy", "rest"))
    print(f"| {ph} | {c / n:.1%} | {cpu_ms * c / n:.2f} | {detail} |")
print()
print(f"Samples whose leaf is malloc/free/memcpy/memset (any phase): {sum(leaf_mem.values()) / n:.1%}")
print()
print("| self share | function (leaf) |")
print("|---|---|")
for sym, c in leaf_self.most_common(15):
    print(f"| {c / n:.1%} | `{sym[:120]}` |")
print()
PY
done
