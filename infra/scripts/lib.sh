# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are read by the scripts that source this file
# Shared by deploy.sh, rollback.sh and failover-drill.sh (sourced, not run).
# Every AWS-facing call goes through `call` (prints it as `+ cmd`, then runs it unless --dry-run) or `query` (a
# read whose answer later steps need: printed, and in --dry-run answered with a placeholder instead of being run).
# The `+ cmd` trace goes to stderr in both modes.

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$INFRA_DIR/.." && pwd)"
DRY_RUN=0
CONFIG="${AKIDB_CONFIG:-$INFRA_DIR/config/default.json}"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Print a command the way a shell would read it back.
show() {
  local out='+' arg
  for arg in "$@"; do out+=" $(printf '%q' "$arg")"; done
  printf '%s\n' "$out"
}

# The trace of calls goes to stderr, so that a step's captured output stays clean.
call() {
  show "$@" >&2
  if [[ $DRY_RUN -eq 0 ]]; then "$@"; fi
}

# query PLACEHOLDER CMD...: run CMD and print its output; in --dry-run print PLACEHOLDER instead.
query() {
  local placeholder=$1; shift
  show "$@" >&2
  if [[ $DRY_RUN -eq 1 ]]; then printf '%s\n' "$placeholder"; else "$@"; fi
}

require() {
  local tool
  for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
}

cfg() { jq -er "$1" "$CONFIG" || die "config $CONFIG has no $1"; }

load_config() {
  [[ -f $CONFIG ]] || die "config $CONFIG not found"
  ACCOUNT=$(cfg .account)
  DOMAIN=$(cfg .domain)
  ZONE_ID=$(cfg .hostedZone.id)
  PRIMARY=$(cfg .regions.primary)
  mapfile -t SECONDARIES < <(cfg '.regions.secondary[]')
  REGIONS=("$PRIMARY" "${SECONDARIES[@]}")
  MODEL_NAME=$(cfg .model.name)
  MODEL_ALIAS=$(cfg .model.alias)
}

is_region() {
  local r
  for r in "${REGIONS[@]}"; do [[ $r == "$1" ]] && return 0; done
  return 1
}

# stack_output STACK REGION KEY: one CloudFormation output of a deployed stack.
stack_output() {
  query "<$1.$3>" aws cloudformation describe-stacks --region "$2" --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$3'].OutputValue | [0]" --output text
}

# health_check_id REGION: the Route 53 health check probing <region>.api.<domain>.
health_check_id() {
  local id
  id=$(query "<health-check-$1>" aws route53 list-health-checks \
    --query "HealthChecks[?HealthCheckConfig.FullyQualifiedDomainName=='$1.api.$DOMAIN'].Id | [0]" --output text)
  [[ -n $id && $id != None ]] || die "no Route 53 health check for $1.api.$DOMAIN"
  printf '%s\n' "$id"
}
