#!/usr/bin/env bash
# Failover drill for one region: force its Route 53 health check unhealthy (inverted), check with Route 53's
# TestDNSAnswer that api.<domain> stops answering that region for a client there and answers another region,
# then restore the check and see the answer come back. The check is restored on any exit, failed or not.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
usage: failover-drill.sh [--dry-run] [--config FILE] --region REGION [--client-ip IP] [--timeout SECONDS]
  --client-ip  the EDNS client-subnet address TestDNSAnswer asks for (default: an address of that region)
  --timeout    how long to wait for each change to show (default 180; health checks need 3 × 10 s + propagation)
USAGE
}

# An EC2 address range of each region (AWS ip-ranges.json), so that geolocation places the client in it.
default_client_ip() {
  case $1 in
    us-east-1) echo 3.80.0.1 ;;
    eu-central-1) echo 3.120.0.1 ;;
    ap-northeast-1) echo 3.112.0.1 ;;
    *) die "no default client address for $1: pass --client-ip" ;;
  esac
}

REGION="" CLIENT_IP="" TIMEOUT=180
POLL_S=${AKIDB_POLL_S:-5} # seconds between two looks at a changing state
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --config) [[ $# -ge 2 ]] || die "--config needs a file"; CONFIG=$2; shift ;;
    --region) [[ $# -ge 2 ]] || die "--region needs a region"; REGION=$2; shift ;;
    --client-ip) [[ $# -ge 2 ]] || die "--client-ip needs an address"; CLIENT_IP=$2; shift ;;
    --timeout) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--timeout needs seconds"; TIMEOUT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument $1" ;;
  esac
  shift
done
require jq aws
load_config
[[ -n $REGION ]] || { usage >&2; die "--region is required"; }
is_region "$REGION" || die "$REGION is not a configured region (${REGIONS[*]})"
CLIENT_IP=${CLIENT_IP:-$(default_client_ip "$REGION")}
API="api.$DOMAIN"

# answer NAME: the sorted A records Route 53 answers for NAME to a client at CLIENT_IP.
# shellcheck disable=SC2016  # the backticks are a JMESPath literal, not a shell expansion
answer() {
  query "<answer for $1>" aws route53 test-dns-answer --hosted-zone-id "$ZONE_ID" --record-name "$1" --record-type A \
    --edns0-client-subnet-ip "$CLIENT_IP" --edns0-client-subnet-mask 24 --query 'sort(RecordData) | join(`,`, @)' --output text
}

# wait_status WANT: until every Route 53 checker reports WANT (Success or Failure) for the health check.
wait_status() {
  show aws route53 get-health-check-status --health-check-id "$HC" --query 'HealthCheckObservations[].StatusReport.Status' >&2
  [[ $DRY_RUN -eq 1 ]] && return 0
  local deadline=$((SECONDS + TIMEOUT)) statuses
  while (( SECONDS < deadline )); do
    statuses=$(aws route53 get-health-check-status --health-check-id "$HC" --query 'HealthCheckObservations[].StatusReport.Status' --output json)
    if jq -e --arg want "$1" 'length > 0 and all(.[]; startswith($want))' <<<"$statuses" >/dev/null; then return 0; fi
    sleep "$POLL_S"
  done
  die "the health check of $REGION did not report $1 within $TIMEOUT s"
}

# wait_answer CMP VALUE: until the answer for api.<domain> is (CMP = eq) or is not (CMP = ne) VALUE; prints it.
wait_answer() {
  [[ $DRY_RUN -eq 1 ]] && { answer "$API"; return 0; }
  local deadline=$((SECONDS + TIMEOUT)) now
  while (( SECONDS < deadline )); do
    now=$(answer "$API" 2>/dev/null)
    if [[ ($1 == eq && $now == "$2") || ($1 == ne && $now != "$2") ]]; then printf '%s\n' "$now"; return 0; fi
    sleep "$POLL_S"
  done
  die "the answer for $API did not change as expected within $TIMEOUT s (still $now)"
}

HC=$(health_check_id "$REGION")
restore() {
  call aws route53 update-health-check --health-check-id "$HC" --no-inverted --query HealthCheck.Id --output text >/dev/null \
    || log "warning: could not restore health check $HC; run: rollback.sh dns"
}

log "== before: $API for a client at $CLIENT_IP"
BEFORE=$(answer "$API")
HOME_ANSWER=$(answer "$REGION.api.$DOMAIN")
[[ $DRY_RUN -eq 1 || $BEFORE == "$HOME_ANSWER" ]] || die "$API does not answer $REGION for $CLIENT_IP before the drill ($BEFORE vs $HOME_ANSWER)"

log "== force $REGION unhealthy (health check $HC inverted)"
trap restore EXIT
call aws route53 update-health-check --health-check-id "$HC" --inverted --query HealthCheck.Id --output text >/dev/null
wait_status Failure
AFTER=$(wait_answer ne "$BEFORE")
MOVED_TO=""
for other in "${REGIONS[@]}"; do
  [[ $other == "$REGION" ]] && continue
  if [[ $(answer "$other.api.$DOMAIN") == "$AFTER" ]]; then MOVED_TO=$other; fi
done
[[ $DRY_RUN -eq 1 || -n $MOVED_TO ]] || die "$API now answers $AFTER, which is no other region's answer"
log "the answer moved from $REGION to ${MOVED_TO:-<another region>}"

log "== restore $REGION"
trap - EXIT
restore
wait_status Success
wait_answer eq "$BEFORE" >/dev/null
if [[ $DRY_RUN -eq 1 ]]; then log 'drill: dry run done, nothing was changed'; else log "drill passed: $REGION failed over to $MOVED_TO and came back"; fi
