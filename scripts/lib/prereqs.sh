# shellcheck shell=bash
# Building what a test suite needs, only when it is missing or stale, written once for the suites that
# need it (web/tests/run.sh, infra/lambda-edge/tests/run.sh, the benchmarks):
#   source "$root/scripts/lib/prereqs.sh"
# Paths are the repository's (this file's ../..), whatever the caller's working directory.

prereqs_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# build_workspace: the release build of the whole workspace, every target, with the feature set
# scripts/test.sh and CI build with (CARGO_TERM_QUIET=true for a quiet one). Another set (no test-hooks, or
# `-p CRATE`, which re-resolves features) would compile the crates whose features differ a second time
# into the same target/ and relink the binaries the tests run.
build_workspace() {
  (cd "$prereqs_root" && cargo build --release --workspace --all-targets --features akidb-native/test-hooks)
}

# ensure_wasm_pkg: builds the npm package akidb-wasm/pkg (akidb-wasm/build.sh) when it is missing or older
# than any source it is built from, build.sh itself and the wasm rustflags (.cargo/config.toml) included (a
# package from an older build.sh may lack a build variant); otherwise does nothing. Its package.json is the
# stamp: build.sh renames the whole package into place, so that file is as old as the build.
ensure_wasm_pkg() {
  local stamp=akidb-wasm/pkg/package.json
  (
    cd "$prereqs_root" || exit
    if [[ ! -f $stamp ]] ||
      [[ -n $(find akidb-core/src akidb-wasm/src akidb-wasm/js akidb-wasm/Cargo.toml akidb-core/Cargo.toml \
        akidb-wasm/build.sh .cargo/config.toml Cargo.lock -newer "$stamp" -print -quit) ]]; then
      bash akidb-wasm/build.sh
    fi
  )
}
