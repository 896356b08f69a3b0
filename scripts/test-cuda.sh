#!/usr/bin/env bash
# The GPU backend's checks that need no GPU (issue #20); scripts/test.sh calls it.
#   1. x86-64: the workspace with --features akidb-native/cuda (tract-cuda, CUDA 13 API; CUDA is loaded at
#      run time, so it builds without CUDA) and test-hooks, in its own target dir (target/cuda: another
#      feature set in target/ would rebuild tract for every later build there); then the akidb-core and
#      akidb-native suites of that build: the CPU tests with the feature on, and tests/device.rs, where
#      --device cuda must fail at start naming the missing driver library and --device auto must serve
#      golden vectors on the CPU.
#   2. aarch64 for JetPack 6 (cuda-12060) through jetson/build.sh --cuda (cargo-zigbuild, glibc 2.31):
#      compiles, links, and the binary is checked (AArch64, glibc).
# AKIDB_CUDA_SKIP_AARCH64=1 skips 2, and says so. Prints each part's wall time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# AKIDB_CUDA_TARGET_DIR=target: reuse the main build's target dir when that build carries the feature too.
export CARGO_TARGET_DIR="${AKIDB_CUDA_TARGET_DIR:-$root/target/cuda}"
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

if [ "${AKIDB_CUDA_SKIP_AARCH64:-0}" = 1 ]; then
  echo "AKIDB_CUDA_SKIP_AARCH64=1: the aarch64 JetPack 6 (cuda-12060) build was NOT run" >&2
else
  step "aarch64 JetPack 6 build (jetson/build.sh --cuda)"
  start=$SECONDS
  unset CARGO_TARGET_DIR
  bash jetson/build.sh --cuda
  echo "aarch64 build with cuda-12060: $((SECONDS - start)) s" >&2
fi
step "done"
