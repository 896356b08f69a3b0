# shellcheck shell=bash
# Sourced by every fake: appends "NAME ARGS" (prefixed with the board for the remote fakes) to $FAKE_LOG,
# and fails the call when the line matches the extended regex $FAKE_FAIL ("told to fail").
fake_record() {
  local line="$*"
  if [ -n "${AKIDB_NODE_ROOT:-}" ]; then line="[$(basename "$AKIDB_NODE_ROOT")] $line"; fi
  printf '%s\n' "$line" >>"${FAKE_LOG:?}"
  if [ -n "${FAKE_FAIL:-}" ] && grep -Eq -- "$FAKE_FAIL" <<<"$line"; then
    echo "fake $1: told to fail ($line)" >&2
    exit 1
  fi
}
