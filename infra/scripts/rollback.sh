#!/usr/bin/env bash
# Three independent rollbacks, each checked after it is made:
#   image          a regional service back to its previous task definition revision (= the previous image tag)
#   edge-function  the CloudFront embed routes back to the previous Lambda@Edge version
#   dns            every region back into the Route 53 answers (health checks neither inverted nor disabled,
#                  as a failover drill or a manual drain leaves them)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
usage: rollback.sh [--dry-run] [--config FILE] image --region REGION --service akidb-serve|model-server [--to-revision N]
                   [--cluster NAME --service-name NAME]   (default: the regional stack's outputs)
       rollback.sh [--dry-run] [--config FILE] edge-function [--to-version N] [--distribution-id ID]
       rollback.sh [--dry-run] [--config FILE] dns
USAGE
}

ACTION="" REGION="" SERVICE="" TO="" CLUSTER="" SERVICE_NAME="" DISTRIBUTION=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --config) [[ $# -ge 2 ]] || die "--config needs a file"; CONFIG=$2; shift ;;
    --region) [[ $# -ge 2 ]] || die "--region needs a region"; REGION=$2; shift ;;
    --service) [[ $# -ge 2 ]] || die "--service needs a name"; SERVICE=$2; shift ;;
    --to-revision|--to-version) [[ $# -ge 2 ]] || die "$1 needs a number"; TO=$2; shift ;;
    --cluster) [[ $# -ge 2 ]] || die "--cluster needs a name"; CLUSTER=$2; shift ;;
    --service-name) [[ $# -ge 2 ]] || die "--service-name needs a name"; SERVICE_NAME=$2; shift ;;
    --distribution-id) [[ $# -ge 2 ]] || die "--distribution-id needs an id"; DISTRIBUTION=$2; shift ;;
    image|edge-function|dns) [[ -z $ACTION ]] || die "one action at a time"; ACTION=$1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument $1" ;;
  esac
  shift
done
[[ -n $ACTION ]] || { usage >&2; die "name an action: image, edge-function or dns"; }
[[ -z $TO || $TO =~ ^[1-9][0-9]*$ ]] || die "--to-revision/--to-version must be a positive number, not $TO"
require jq aws
load_config

rollback_image() {
  [[ -n $REGION ]] || die "image needs --region"
  is_region "$REGION" || die "$REGION is not a configured region (${REGIONS[*]})"
  local output
  case $SERVICE in
    akidb-serve) output=AkidbServeService ;;
    model-server) output=ModelServerService ;;
    *) die "image needs --service akidb-serve or model-server" ;;
  esac
  local cluster=${CLUSTER:-$(stack_output "AkidbRegional-$REGION" "$REGION" ClusterName)}
  local service=${SERVICE_NAME:-$(stack_output "AkidbRegional-$REGION" "$REGION" "$output")}
  local current family revision target
  current=$(query "arn:aws:ecs:$REGION:$ACCOUNT:task-definition/<family>:<n>" aws ecs describe-services --region "$REGION" \
    --cluster "$cluster" --services "$service" --query 'services[0].taskDefinition' --output text)
  [[ $current =~ (^|task-definition/)([^:/]+):([0-9]+|<n>)$ ]] || die "cannot read the task definition of $service: $current"
  family=${BASH_REMATCH[2]}
  revision=${BASH_REMATCH[3]}
  if [[ -n $TO ]]; then target=$TO
  elif [[ $DRY_RUN -eq 1 ]]; then target='<n-1>'
  else
    (( revision > 1 )) || die "$family:$revision is the first revision; there is nothing to roll back to"
    target=$((revision - 1))
  fi
  [[ $DRY_RUN -eq 1 || $target != "$revision" ]] || die "$service already runs $family:$target"
  local image
  image=$(query '<image of the target revision>' aws ecs describe-task-definition --region "$REGION" \
    --task-definition "$family:$target" --query 'taskDefinition.containerDefinitions[?essential].image | [0]' --output text)
  log "rolling $service back from $family:$revision to $family:$target ($image)"
  call aws ecs update-service --region "$REGION" --cluster "$cluster" --service "$service" \
    --task-definition "$family:$target" --query 'service.taskDefinition' --output text
  call aws ecs wait services-stable --region "$REGION" --cluster "$cluster" --services "$service"
  if [[ $DRY_RUN -eq 0 ]]; then
    local now
    now=$(aws ecs describe-services --region "$REGION" --cluster "$cluster" --services "$service" --query 'services[0].taskDefinition' --output text)
    # ECS answers an ARN (moto echoes family:revision as sent).
    [[ $now == *"task-definition/$family:$target" || $now == "$family:$target" ]] || die "verification failed: $service runs $now, not $family:$target"
    log "verified: $service runs $family:$target"
  fi
}

# The Lambda@Edge ARNs the distribution's behaviours use (one, unless a rollout is half done).
edge_arns() { jq -r '[.DistributionConfig.CacheBehaviors.Items[]?.LambdaFunctionAssociations.Items[]?.LambdaFunctionARN] | unique | .[]' "$1"; }

rollback_edge_function() {
  local distribution=${DISTRIBUTION:-$(stack_output AkidbEdge us-east-1 DistributionId)}
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  show aws cloudfront get-distribution-config --id "$distribution" >&2
  if [[ $DRY_RUN -eq 1 ]]; then
    log "(dry run) would point every LambdaFunctionARN ...:function:<name>:<v> at version ${TO:-<v-1>} and then run:"
    call aws lambda get-function --region us-east-1 --function-name "<name>:${TO:-<v-1>}" --query Configuration.Version --output text
    call aws cloudfront update-distribution --id "$distribution" --if-match '<ETag>' --distribution-config "file://$work/rolled-back.json"
    call aws cloudfront wait distribution-deployed --id "$distribution"
    call aws cloudfront get-distribution-config --id "$distribution" --query 'DistributionConfig.CacheBehaviors.Items[].LambdaFunctionAssociations.Items[].LambdaFunctionARN'
    return
  fi
  aws cloudfront get-distribution-config --id "$distribution" > "$work/current.json"
  local arns
  mapfile -t arns < <(edge_arns "$work/current.json")
  [[ ${#arns[@]} -eq 1 ]] || die "expected one Lambda@Edge version on $distribution, found ${#arns[@]}: ${arns[*]}"
  [[ ${arns[0]} =~ ^(arn:aws:lambda:us-east-1:[0-9]+:function:[^:]+):([0-9]+)$ ]] || die "not a numbered version: ${arns[0]}"
  local function=${BASH_REMATCH[1]} version=${BASH_REMATCH[2]}
  local target=${TO:-$((version - 1))}
  (( target >= 1 && target != version )) || die "no earlier version to roll back to from $version"
  call aws lambda get-function --region us-east-1 --function-name "$function:$target" --query Configuration.Version --output text \
    >/dev/null || die "version $target of $function does not exist"
  jq --arg from "${arns[0]}" --arg to "$function:$target" \
    '.DistributionConfig | (.. | objects | select(.LambdaFunctionARN? == $from) | .LambdaFunctionARN) |= $to' \
    "$work/current.json" > "$work/rolled-back.json"
  log "rolling the embed routes back from version $version to $target"
  call aws cloudfront update-distribution --id "$distribution" --if-match "$(jq -r .ETag "$work/current.json")" \
    --distribution-config "file://$work/rolled-back.json" --query Distribution.Status --output text
  call aws cloudfront wait distribution-deployed --id "$distribution"
  aws cloudfront get-distribution-config --id "$distribution" > "$work/after.json"
  [[ $(edge_arns "$work/after.json") == "$function:$target" ]] || die "verification failed: the distribution uses $(edge_arns "$work/after.json")"
  log "verified: every Lambda@Edge association uses $function:$target"
}

rollback_dns() {
  local region id
  for region in "${REGIONS[@]}"; do
    id=$(health_check_id "$region")
    call aws route53 update-health-check --health-check-id "$id" --no-inverted --no-disabled --query HealthCheck.Id --output text
    if [[ $DRY_RUN -eq 0 ]]; then
      [[ $(aws route53 get-health-check --health-check-id "$id" --query '[HealthCheck.HealthCheckConfig.Inverted, HealthCheck.HealthCheckConfig.Disabled]' --output text) == $'False\tFalse' ]] \
        || die "verification failed: the health check of $region is still inverted or disabled"
      log "verified: $region ($id) answers by its real health again"
    fi
  done
}

case $ACTION in
  image) rollback_image ;;
  edge-function) rollback_edge_function ;;
  dns) rollback_dns ;;
esac
