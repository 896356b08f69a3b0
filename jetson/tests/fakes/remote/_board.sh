# shellcheck shell=bash
# Sourced by the remote fakes: the board's directory and the fake recorder.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=jetson/tests/fakes/_record.sh
source "$here/../_record.sh"
# shellcheck disable=SC2034 # used by the fakes that source this
board=${AKIDB_NODE_ROOT:?the remote fakes run inside a board directory}
