#!/usr/bin/env bats
# The scripts' real-run paths against moto (run.sh starts it and deploys the stacks first; MOTO_ENDPOINT and
# MOTO_CONFIG name them). Where moto lacks an API, tests/route53-shim.sh answers from moto's own state.

setup() {
  [[ -n ${MOTO_ENDPOINT:-} && -f ${MOTO_CONFIG:-} ]] || { echo "MOTO_ENDPOINT and MOTO_CONFIG must be set (run tests/run.sh)" >&2; return 1; }
  SCRIPTS="$BATS_TEST_DIRNAME/../scripts"
  export AKIDB_POLL_S=1 AWS_ENDPOINT_URL=$MOTO_ENDPOINT AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
  DOMAIN=$(jq -r .domain "$MOTO_CONFIG")
}

hc_id() { aws route53 list-health-checks --query "HealthChecks[?HealthCheckConfig.FullyQualifiedDomainName=='$1.api.$DOMAIN'].Id | [0]" --output text; }
hc_state() { aws route53 get-health-check --health-check-id "$1" --query '[HealthCheck.HealthCheckConfig.Inverted, HealthCheck.HealthCheckConfig.Disabled]' --output text; }

@test "rollback dns puts inverted and disabled health checks back" {
  eu=$(hc_id eu-central-1); ap=$(hc_id ap-northeast-1)
  aws route53 update-health-check --health-check-id "$eu" --inverted >/dev/null
  aws route53 update-health-check --health-check-id "$ap" --disabled >/dev/null
  [ "$(hc_state "$eu")" = $'True\tFalse' ]
  [ "$(hc_state "$ap")" = $'False\tTrue' ]
  run "$SCRIPTS/rollback.sh" --config "$MOTO_CONFIG" dns
  [ "$status" -eq 0 ]
  [[ $output == *"verified: eu-central-1"* ]]
  [ "$(hc_state "$eu")" = $'False\tFalse' ]
  [ "$(hc_state "$ap")" = $'False\tFalse' ]
}

@test "failover drill against moto: the answer moves to us-east-1 and back, and the check is restored" {
  SHIM_DIR="$BATS_TEST_TMPDIR/shim"; mkdir -p "$SHIM_DIR"
  REAL_AWS=$(command -v aws); export REAL_AWS
  ln -s "$BATS_TEST_DIRNAME/route53-shim.sh" "$SHIM_DIR/aws"
  PATH="$SHIM_DIR:$PATH" run "$SCRIPTS/failover-drill.sh" --config "$MOTO_CONFIG" --region eu-central-1 --timeout 30
  [ "$status" -eq 0 ]
  [[ $output == *"the answer moved from eu-central-1 to us-east-1"* ]]
  [[ $output == *"drill passed"* ]]
  [ "$(hc_state "$(hc_id eu-central-1)")" = $'False\tFalse' ]
}

@test "a failing drill restores the health check it inverted" {
  SHIM_DIR="$BATS_TEST_TMPDIR/shim"; mkdir -p "$SHIM_DIR"
  REAL_AWS=$(command -v aws); export REAL_AWS
  ln -s "$BATS_TEST_DIRNAME/route53-shim.sh" "$SHIM_DIR/aws"
  # The answer for api.<domain> never moves, so the drill must give up after inverting the check.
  SHIM_STUCK_ANSWER=1 PATH="$SHIM_DIR:$PATH" run "$SCRIPTS/failover-drill.sh" --config "$MOTO_CONFIG" --region eu-central-1 --timeout 6
  [ "$status" -ne 0 ]
  [[ $output == *"did not change as expected"* ]]
  [[ $output == *"--inverted"*"--no-inverted"* ]]
  [ "$(hc_state "$(hc_id eu-central-1)")" = $'False\tFalse' ]
}

@test "deploy --only invalidate creates an invalidation of the alias paths" {
  id=$(aws cloudfront create-distribution --distribution-config "{
    \"CallerReference\": \"bats-$$\", \"Comment\": \"\", \"Enabled\": true,
    \"Origins\": {\"Quantity\": 1, \"Items\": [{\"Id\": \"o\", \"DomainName\": \"api.$DOMAIN\",
      \"CustomOriginConfig\": {\"HTTPPort\": 80, \"HTTPSPort\": 443, \"OriginProtocolPolicy\": \"https-only\"}}]},
    \"DefaultCacheBehavior\": {\"TargetOriginId\": \"o\", \"ViewerProtocolPolicy\": \"https-only\",
      \"CachePolicyId\": \"4135ea2d-6df8-44a3-9df3-4b5a84be39ad\"}}" --query Distribution.Id --output text)
  AKIDB_DISTRIBUTION_ID=$id run "$SCRIPTS/deploy.sh" --config "$MOTO_CONFIG" --only invalidate
  [ "$status" -eq 0 ]
  inv=$(aws cloudfront list-invalidations --distribution-id "$id" --query 'InvalidationList.Items[0].Id' --output text)
  paths=$(aws cloudfront get-invalidation --distribution-id "$id" --id "$inv" --query 'Invalidation.InvalidationBatch.Paths.Items' --output text)
  [ "$(tr '\t' '\n' <<<"$paths" | sort | tr '\n' ' ')" = "/v1/models /v1/models/all-MiniLM-L6-v2 /v1/models/all-MiniLM-L6-v2/latest/manifest.json " ]
}

@test "rollback image moves an ECS service back one task definition revision and verifies it" {
  aws ecs create-cluster --cluster-name bats >/dev/null
  for tag in 0.1.0 0.2.0; do
    aws ecs register-task-definition --family akidb-serve-bats --requires-compatibilities FARGATE --network-mode awsvpc \
      --cpu 2048 --memory 4096 --container-definitions "[{\"name\": \"akidb-serve\", \"essential\": true, \"image\": \"123456789012.dkr.ecr.us-east-1.amazonaws.com/akidb-serve:$tag\"}]" >/dev/null
  done
  aws ecs create-service --cluster bats --service-name akidb --task-definition akidb-serve-bats:2 --desired-count 0 >/dev/null
  run "$SCRIPTS/rollback.sh" --config "$MOTO_CONFIG" image --region us-east-1 --service akidb-serve --cluster bats --service-name akidb
  [ "$status" -eq 0 ]
  [[ $output == *"from akidb-serve-bats:2 to akidb-serve-bats:1 (123456789012.dkr.ecr.us-east-1.amazonaws.com/akidb-serve:0.1.0)"* ]]
  [[ $output == *"verified: akidb runs akidb-serve-bats:1"* ]]
  [[ $(aws ecs describe-services --cluster bats --services akidb --query 'services[0].taskDefinition' --output text) == *"akidb-serve-bats:1" ]]
  # Nothing before revision 1: refused, and the service is left alone.
  run "$SCRIPTS/rollback.sh" --config "$MOTO_CONFIG" image --region us-east-1 --service akidb-serve --cluster bats --service-name akidb
  [ "$status" -ne 0 ]
  [[ $output == *"first revision"* ]]
}

@test "deploy --only site uploads the site and its .br/.gz variants into the edge stack's bucket" {
  command -v brotli >/dev/null || { echo "brotli is not installed (run.sh installs it)" >&2; return 1; }
  site="$BATS_TEST_TMPDIR/site"; mkdir -p "$site/pkg"
  echo '<h1>demo</h1>' > "$site/index.html"; head -c 100000 /dev/zero > "$site/pkg/akidb_wasm_bg.wasm"; echo png > "$site/logo.png"
  run "$SCRIPTS/deploy.sh" --config "$MOTO_CONFIG" --only site --site "$site"
  [ "$status" -eq 0 ]
  bucket=$(aws cloudformation describe-stacks --stack-name AkidbEdge --query "Stacks[0].Outputs[?OutputKey=='SiteBucketName'].OutputValue | [0]" --output text)
  [ "$(aws s3api head-object --bucket "$bucket" --key pkg/akidb_wasm_bg.wasm.br --query '[ContentEncoding, ContentType]' --output text)" = $'br\tapplication/wasm' ]
  [ "$(aws s3api head-object --bucket "$bucket" --key pkg/akidb_wasm_bg.wasm.gz --query '[ContentEncoding, ContentType]' --output text)" = $'gzip\tapplication/wasm' ]
  aws s3 cp --quiet "s3://$bucket/pkg/akidb_wasm_bg.wasm.br" "$BATS_TEST_TMPDIR/w.br"
  brotli -d -c "$BATS_TEST_TMPDIR/w.br" | cmp - "$site/pkg/akidb_wasm_bg.wasm"
  run aws s3api head-object --bucket "$bucket" --key logo.png.br
  [ "$status" -ne 0 ]
}

@test "deploy --only publish: the bundle lands in the primary bucket, idempotently, and model-server --read-only serves it back" {
  repo="$BATS_TEST_DIRNAME/../.."
  model_server=${MODEL_SERVER:-$repo/target/release/model-server}
  bundle="$repo/models/all-MiniLM-L6-v2/int8-dynamic" # deploy.sh's default
  if [[ ! -x $model_server || ! -f $bundle/manifest.json ]]; then
    skip "needs $model_server (cargo build --release -p model-server) and $bundle (scripts/fetch-models.sh)"
  fi
  bucket="akidb-models-123456789012-us-east-1"
  export AKIDB_SKIP_ROLL=1 MODEL_SERVER=$model_server
  run "$SCRIPTS/deploy.sh" --config "$MOTO_CONFIG" --only publish
  [ "$status" -eq 0 ]
  [[ $output == *"alias latest -> "* ]]
  first=$(aws s3 ls --recursive "s3://$bucket/model-server/" | awk '{print $3, $4}' | sort)
  [[ $first == *"model-server/registry.sqlite"* ]]
  run "$SCRIPTS/deploy.sh" --config "$MOTO_CONFIG" --only publish
  [ "$status" -eq 0 ]
  [ "$(aws s3 ls --recursive "s3://$bucket/model-server/" | awk '{print $3, $4}' | sort)" = "$first" ]
  # What the task's init container does, then model-server as the task runs it.
  data="$BATS_TEST_TMPDIR/data"
  aws s3 sync --only-show-errors "s3://$bucket/model-server/" "$data/"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$model_server" serve --data "$data" --addr "127.0.0.1:$port" --read-only > "$BATS_TEST_TMPDIR/ms.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  manifest=$(curl -sf "http://127.0.0.1:$port/v1/models/all-MiniLM-L6-v2/latest/manifest.json")
  kill "$pid"
  [ "$(jq -r .version <<<"$manifest")" = "$(jq -r .version "$bundle/manifest.json")" ]
}
