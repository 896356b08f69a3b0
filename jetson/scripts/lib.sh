# shellcheck shell=bash
# Shared by setup-cluster.sh, deploy.sh and rollback.sh (sourced, not run).
#
# Every command that changes something goes through `act`: it is printed as `+ CMD` on stdout, and run
# unless --dry-run. Commands that only look (facts, `kubectl get`, `kubectl diff`) run in both modes, so a
# dry run takes the same decisions as a real run and prints exactly the changes the real run would make.

DRY_RUN=${DRY_RUN:-0}
SSH_OPTS=${SSH_OPTS:--o BatchMode=yes -o ConnectTimeout=10}
NODE_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/node.sh"

say() { printf '%s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# act CMD...: a change. `act_in FILE CMD...`: the same, with FILE on the command's stdin.
act() {
  printf '+ %s\n' "$*"
  [ "$DRY_RUN" = 1 ] || "$@"
}
act_in() {
  local input=$1
  shift
  printf '+ %s < %s\n' "$*" "$input"
  [ "$DRY_RUN" = 1 ] || "$@" <"$input"
}

# remote HOST ARGS...: node.sh ARGS on HOST as root, node.sh sent on stdin (nothing is installed on the
# boards to run it). `remote_act` is the same as a change.
remote() {
  local host=$1
  shift
  # shellcheck disable=SC2086 # SSH_OPTS is a list of options
  ssh $SSH_OPTS "$host" sudo bash -s -- "$@" <"$NODE_SCRIPT"
}
remote_act() {
  local host=$1
  shift
  printf '+ ssh %s node.sh %s\n' "$host" "$*"
  [ "$DRY_RUN" = 1 ] || remote "$host" "$@" ||
    die "$host: node.sh $* failed (see above); rerun once fixed: the steps already done are skipped"
}

# host_addr USER@HOST -> HOST
host_addr() { printf '%s\n' "${1#*@}"; }
