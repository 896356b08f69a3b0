#!/usr/bin/env bash
# Runs the akidb-probe image once in each of the plan's 10 regions, as a one-off Fargate task, and collects
# each region's JSON report from CloudWatch Logs into $OUT/REGION.json; exits non-zero if any region breached
# its budgets or did not report.
#
#   IMAGE=ACCOUNT.dkr.ecr.REGION.amazonaws.com/akidb-probe:TAG \
#   EXECUTION_ROLE_ARN=arn:aws:iam::ACCOUNT:role/ecsTaskExecutionRole \
#   SUBNETS_us_east_1=subnet-... SUBNETS_eu_west_1=subnet-... (one public subnet list per region) \
#   OUT=probe-reports infra/observability/probe/run-in-regions.sh [REGION...]
#
# Each region needs an ECS cluster named akidb-probe (created when missing) and the image readable from
# there (ECR replication, or a public image). Not run by the tests: no AWS account is reachable from CI.
set -euo pipefail

regions=("$@")
if ((${#regions[@]} == 0)); then
  regions=(us-east-1 us-west-2 sa-east-1 eu-west-1 eu-central-1 af-south-1 ap-south-1 ap-southeast-1 ap-northeast-1 ap-southeast-2)
fi
: "${IMAGE:?set IMAGE to the akidb-probe image}"
: "${EXECUTION_ROLE_ARN:?set EXECUTION_ROLE_ARN (pulls the image, writes the logs)}"
out=${OUT:-probe-reports}
mkdir -p "$out"
failed=0

for region in "${regions[@]}"; do
  subnets_var="SUBNETS_${region//-/_}"
  subnets=${!subnets_var:?set $subnets_var}
  # shellcheck disable=SC2016 # the backticks are JMESPath's, not the shell's
  aws ecs describe-clusters --region "$region" --clusters akidb-probe --query 'clusters[?status==`ACTIVE`]' \
    --output text | grep -q . || aws ecs create-cluster --region "$region" --cluster-name akidb-probe >/dev/null
  aws logs create-log-group --region "$region" --log-group-name /akidb/probe 2>/dev/null || true
  taskdef=$(aws ecs register-task-definition --region "$region" --family akidb-probe \
    --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
    --execution-role-arn "$EXECUTION_ROLE_ARN" \
    --container-definitions "$(printf '[{"name":"probe","image":"%s","essential":true,"command":["--json","--from","%s"],"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/akidb/probe","awslogs-region":"%s","awslogs-stream-prefix":"probe"}}}]' "$IMAGE" "$region" "$region")" \
    --query 'taskDefinition.taskDefinitionArn' --output text)
  task=$(aws ecs run-task --region "$region" --cluster akidb-probe --launch-type FARGATE --task-definition "$taskdef" \
    --network-configuration "awsvpcConfiguration={subnets=[$subnets],assignPublicIp=ENABLED}" \
    --query 'tasks[0].taskArn' --output text)
  echo "run-in-regions: $region: started $task" >&2
  aws ecs wait tasks-stopped --region "$region" --cluster akidb-probe --tasks "$task"
  code=$(aws ecs describe-tasks --region "$region" --cluster akidb-probe --tasks "$task" \
    --query 'tasks[0].containers[0].exitCode' --output text)
  aws logs get-log-events --region "$region" --log-group-name /akidb/probe \
    --log-stream-name "probe/probe/${task##*/}" --start-from-head --query 'events[].message' --output json |
    python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))' >"$out/$region.json"
  echo "run-in-regions: $region: exit $code, report $out/$region.json" >&2
  [ "$code" = 0 ] || failed=1
done
exit "$failed"
