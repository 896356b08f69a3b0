#!/usr/bin/env bash
# The GPU backend's checks that need no GPU (issue #20); scripts/test.sh calls it.
#   x86-64: the workspace with --features akidb-native/cuda (tract-cuda, CUDA 13 API; CUDA is loaded at
#   run time, so it builds without CUDA) and test-hooks, in the main target dir: akidb-core pins the one
#   feature tract-cuda would change under tract (half's rand_distr), so only our crates, tract-onnx and
#   tract-cuda's own recompile. Then the akidb-core and akidb-native suites of that build: the CPU tests
#   with the feature on, and tests/device.rs, where --device cuda must fail at start naming the missing
#   driver library and --device auto must serve golden vectors on the CPU.
# The aarch64 JetPack 6 build (cuda-12060) is jetson/build.sh's only build: jetson/tests/run.sh makes it.
# AKIDB_CUDA_TARGET_DIR=DIR builds elsewhere. Prints each part's wall time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARGO_TARGET_DIR="${AKIDB_CUDA_TARGET_DIR:-$root/target}"
features=akidb-native/test-hooks,akidb-native/cuda
step() { printf '\n== cuda tests [%ds]: %s\n' "$SECONDS" "$*" >&2; }

step "cargo build --release --workspace --all-targets --features $features"
start=$SECONDS
cargo build --release --workspace --all-targets --features "$features"
echo "x86-64 build with the cuda feature: $((SECONDS - start)) s" >&2

step "akidb-core and akidb-native tests of that build"
start=$SECONDS
# The test executables of the very build above (the same command with --no-run is a no-op), filtered to
# the two crates the feature changes; each runs from its crate's directory, as cargo test does.
mapfile -t tests < <(cargo test --release --workspace --features "$features" --no-run --message-format json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = m["package_id"]
        if "/akidb-core#" in name or "/akidb-native#" in name or "akidb-core " in name or "akidb-native " in name:
            print(m["manifest_path"].rsplit("/", 1)[0] + "\t" + m["executable"])
')
[ ${#tests[@]} -gt 0 ] || { echo "no akidb-core / akidb-native test executables found" >&2; exit 1; }
for entry in "${tests[@]}"; do
  dir=${entry%%$'\t'*}
  exe=${entry#*$'\t'}
  echo "-- ${exe##*/}" >&2
  (cd "$dir" && "$exe" --quiet)
done
echo "akidb-core + akidb-native tests with the cuda feature: $((SECONDS - start)) s" >&2

step "done"
