#!/usr/bin/env bash
# Test double for the two Route 53 calls moto does not implement (TestDNSAnswer, GetHealthCheckStatus); every
# other call goes to the real AWS CLI, i.e. to moto. It answers from moto's own health-check state:
#   <region>.api.<domain>  → that region's address (us-east-1 192.0.2.1, eu-central-1 .2, ap-northeast-1 .3)
#   api.<domain>           → eu-central-1's address while its health check passes, else us-east-1's (the fallback);
#                            with SHIM_STUCK_ANSWER=1 always eu-central-1's (a failover that does not happen)
#   health-check status    → Failure while the check is inverted, Success otherwise
set -euo pipefail
real_aws=${REAL_AWS:?REAL_AWS must name the real aws CLI}
arg() { # arg NAME ARGS...: the value after --NAME
  local name=$1; shift
  while [[ $# -gt 0 ]]; do [[ $1 == "--$name" ]] && { echo "$2"; return; }; shift; done
}
inverted() { "$real_aws" route53 get-health-check --health-check-id "$1" --query HealthCheck.HealthCheckConfig.Inverted --output text; }
if [[ ${1:-} == route53 && ${2:-} == test-dns-answer ]]; then
  name=$(arg record-name "$@")
  case $name in
    us-east-1.api.*) echo 192.0.2.1 ;;
    eu-central-1.api.*) echo 192.0.2.2 ;;
    ap-northeast-1.api.*) echo 192.0.2.3 ;;
    api.*)
      id=$("$real_aws" route53 list-health-checks --query "HealthChecks[?HealthCheckConfig.FullyQualifiedDomainName=='eu-central-1.$name'].Id | [0]" --output text)
      if [[ ${SHIM_STUCK_ANSWER:-0} != 1 && $(inverted "$id") == True ]]; then echo 192.0.2.1; else echo 192.0.2.2; fi ;;
    *) echo "shim: no answer for $name" >&2; exit 1 ;;
  esac
elif [[ ${1:-} == route53 && ${2:-} == get-health-check-status ]]; then
  if [[ $(inverted "$(arg health-check-id "$@")") == True ]]; then echo '["Failure: inverted"]'; else echo '["Success: HTTP Status Code 200"]'; fi
else
  exec "$real_aws" "$@"
fi
