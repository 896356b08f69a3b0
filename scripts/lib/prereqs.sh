# shellcheck shell=bash
# Building what a test suite needs, only when it is missing or stale, written once for the suites that
# need it (web/tests/run.sh, infra/lambda-edge/tests/run.sh, the benchmarks):
#   source "$root/scripts/lib/prereqs.sh"
# Paths are the repository's (this file's ../..), whatever the caller's working directory.

prereqs_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The feature set every test build uses (make test's clippy, cargo test and build_workspace, the suites
# that run the binaries): test-hooks (the process tests' hooks, inert unless a test sets its variable) and
# cuda (the GPU backend, CUDA 13 API; tract-cuda loads CUDA at run time, so it builds and its CPU paths run
# without a GPU; tests/device.rs checks --device cuda|auto here). One set, so the native suite runs once on
# the build with the GPU backend compiled in: a second set would compile our crates, tract-onnx and the
# test binaries again (about 4 minutes of CI's two cores). akidb-core pins the one feature tract-cuda
# would change under tract, so tract itself is the same in every set.
# shellcheck disable=SC2034 # used by the scripts that source this file
workspace_features=akidb-native/test-hooks,akidb-native/cuda

# build_workspace: the release build of the whole workspace, every target, with $workspace_features
# (CARGO_TERM_QUIET=true for a quiet one). Another set (no test-hooks, or `-p CRATE`, which re-resolves
# features) would compile the crates whose features differ a second time into the same target/ and relink
# the binaries the tests run.
build_workspace() {
  (cd "$prereqs_root" && cargo build --release --workspace --all-targets --features "$workspace_features")
}

# cargo_install_tool ARGS...: `cargo install ARGS` into target/tools, at opt-level 0 without debug info.
# The tools (wasm-bindgen-cli, geckodriver, cargo-machete) do seconds of work per run, and their
# optimised builds took minutes of CI: wasm-bindgen-cli installs in 53 s instead of 164 s and then
# takes 6 s instead of 2 s per .wasm.
cargo_install_tool() {
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo install --root "$prereqs_root/target/tools" "$@"
}

# ensure_wasm_pkg: builds the npm package akidb-wasm/pkg (akidb-wasm/build.sh) when it is missing or older
# than any source it is built from, build.sh and build-threads.sh themselves, the wasm rustflags
# (.cargo/config.toml) and the wasm cargo profile (Cargo.toml) included (a package from an older build.sh may lack a build variant);
# otherwise does nothing. Its package.json is the stamp: build.sh renames the whole package into place, so
# that file is as old as the build.
ensure_wasm_pkg() {
  local stamp=akidb-wasm/pkg/package.json
  (
    cd "$prereqs_root" || exit
    if [[ ! -f $stamp ]] ||
      [[ -n $(find akidb-core/src akidb-wasm/src akidb-wasm/js akidb-wasm/Cargo.toml akidb-core/Cargo.toml \
        akidb-wasm/build.sh akidb-wasm/build-threads.sh .cargo/config.toml Cargo.toml Cargo.lock \
        -newer "$stamp" -print -quit) ]]; then
      bash akidb-wasm/build.sh
    fi
  )
}
