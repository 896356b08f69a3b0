#!/usr/bin/env bats
# --dry-run output of the operator scripts: every call printed, in dependency order, and nothing run.
# A shim `aws`/`npx`/`skopeo`/`npm` first on PATH records any call that a dry run would wrongly make.

setup() {
  SCRIPTS="$BATS_TEST_DIRNAME/../scripts"
  SHIMS="$BATS_TEST_TMPDIR/shims"
  CALLS="$BATS_TEST_TMPDIR/calls"
  mkdir -p "$SHIMS"
  : > "$CALLS"
  for tool in aws npx npm skopeo; do
    printf '#!/bin/sh\necho "%s $*" >> "%s"\nexit 1\n' "$tool" "$CALLS" > "$SHIMS/$tool"
    chmod +x "$SHIMS/$tool"
  done
  export PATH="$SHIMS:$PATH"
}

# line_of PATTERN: the first line number of the output matching PATTERN (fails when absent).
line_of() {
  local n
  n=$(grep -n -m1 -e "$1" <<<"$output" | cut -d: -f1)
  [[ -n $n ]] || { echo "not in output: $1" >&2; return 1; }
  echo "$n"
}

@test "deploy --dry-run prints every step in dependency order and runs nothing" {
  run "$SCRIPTS/deploy.sh" --dry-run
  [ "$status" -eq 0 ]
  [ ! -s "$CALLS" ]
  synth=$(line_of 'cdk --no-notices synth')
  diff=$(line_of 'cdk --no-notices diff')
  reg=$(line_of 'deploy .* AkidbRegistry-us-east-1')
  push=$(line_of 'skopeo copy .*oci-archive:.*/akidb-serve-amd64.oci.tar docker://111111111111.dkr.ecr.us-east-1.amazonaws.com/akidb-serve:0.1.0')
  eu=$(line_of 'deploy .* AkidbRegional-eu-central-1')
  ap=$(line_of 'deploy .* AkidbRegional-ap-northeast-1')
  us=$(line_of 'deploy .* AkidbRegional-us-east-1')
  edge=$(line_of 'deploy .* AkidbEdge')
  dns=$(line_of 'deploy .* AkidbDns')
  publish=$(line_of 'model-server publish --data .* --alias latest')
  inval=$(line_of 'aws cloudfront create-invalidation')
  (( synth < diff && diff < reg && reg < push && push < eu && eu < us && ap < us && us < edge && edge < dns && dns < publish && publish < inval ))
  [[ $output == *"nothing was changed"* ]]
}

@test "deploy pushes both images to all three regions and deploys with the synthesized assembly" {
  run "$SCRIPTS/deploy.sh" --dry-run --only images --only regional
  [ "$status" -eq 0 ]
  for region in us-east-1 eu-central-1 ap-northeast-1; do
    for image in akidb-serve model-server; do
      grep -q "skopeo copy .*$image-amd64.oci.tar docker://111111111111.dkr.ecr.$region.amazonaws.com/$image:0.1.0" <<<"$output"
    done
  done
  [ "$(grep -c 'deploy --app cdk.out --exclusively --require-approval never' <<<"$output")" -eq 3 ]
  [[ $output != *AkidbRegistry* && $output != *AkidbEdge* ]]
}

@test "deploy invalidates the alias paths only" {
  run "$SCRIPTS/deploy.sh" --dry-run --only invalidate
  [ "$status" -eq 0 ]
  line=$(grep 'create-invalidation' <<<"$output")
  [[ $line == *"--paths /v1/models /v1/models/all-MiniLM-L6-v2 /v1/models/all-MiniLM-L6-v2/latest/manifest.json --query"* ]]
  [[ $line != *'*'* ]]
  [[ $line != *"/v1/blobs"* ]]
}

@test "deploy publishes into a copy of the bucket's data directory, then rolls model-server before akidb serve" {
  run "$SCRIPTS/deploy.sh" --dry-run --only publish
  [ "$status" -eq 0 ]
  down=$(line_of 'aws s3 sync .* s3://akidb-models-111111111111-us-east-1/model-server/ /')
  pub=$(line_of 'model-server publish')
  up=$(line_of 'aws s3 sync .* s3://akidb-models-111111111111-us-east-1/model-server/$')
  replica=$(line_of 'head-object --region eu-central-1 --bucket akidb-models-111111111111-eu-central-1')
  ms=$(line_of 'update-service --region eu-central-1 .*ModelServerService')
  ak=$(line_of 'update-service --region eu-central-1 .*AkidbServeService')
  (( down < pub && pub < up && up < replica && replica < ms && ms < ak ))
}

@test "deploy refuses an unknown step and an unknown flag" {
  run "$SCRIPTS/deploy.sh" --dry-run --only everything
  [ "$status" -ne 0 ]
  [[ $output == *"unknown step everything"* ]]
  run "$SCRIPTS/deploy.sh" --frobnicate
  [ "$status" -ne 0 ]
  [[ $output == *"unknown argument --frobnicate"* ]]
}

@test "a missing config is named" {
  run "$SCRIPTS/deploy.sh" --dry-run --config /nonexistent.json
  [ "$status" -ne 0 ]
  [[ $output == *"config /nonexistent.json not found"* ]]
}

@test "rollback image --dry-run: previous task definition revision, then a stability wait" {
  run "$SCRIPTS/rollback.sh" --dry-run image --region eu-central-1 --service akidb-serve
  [ "$status" -eq 0 ]
  [ ! -s "$CALLS" ]
  desc=$(line_of 'aws ecs describe-services --region eu-central-1')
  upd=$(line_of 'aws ecs update-service --region eu-central-1 .*--task-definition .*:.*n-1')
  wait=$(line_of 'aws ecs wait services-stable --region eu-central-1')
  (( desc < upd && upd < wait ))
}

@test "rollback image checks its arguments" {
  run "$SCRIPTS/rollback.sh" --dry-run image --service akidb-serve
  [ "$status" -ne 0 ]; [[ $output == *"needs --region"* ]]
  run "$SCRIPTS/rollback.sh" --dry-run image --region mars-1 --service akidb-serve
  [ "$status" -ne 0 ]; [[ $output == *"mars-1 is not a configured region"* ]]
  run "$SCRIPTS/rollback.sh" --dry-run image --region us-east-1 --service nginx
  [ "$status" -ne 0 ]; [[ $output == *"--service akidb-serve or model-server"* ]]
  run "$SCRIPTS/rollback.sh" --dry-run image --region us-east-1 --service akidb-serve --to-revision two
  [ "$status" -ne 0 ]; [[ $output == *"positive number"* ]]
  run "$SCRIPTS/rollback.sh" --dry-run
  [ "$status" -ne 0 ]; [[ $output == *"name an action"* ]]
}

@test "rollback edge-function --dry-run: read config, check the version, update with the ETag, wait, verify" {
  run "$SCRIPTS/rollback.sh" --dry-run edge-function --to-version 4
  [ "$status" -eq 0 ]
  [ ! -s "$CALLS" ]
  get=$(line_of 'aws cloudfront get-distribution-config --id')
  fn=$(line_of 'aws lambda get-function --region us-east-1 --function-name .*:4')
  upd=$(line_of 'aws cloudfront update-distribution --id .* --if-match')
  wait=$(line_of 'aws cloudfront wait distribution-deployed')
  (( get < fn && fn < upd && upd < wait ))
}

@test "rollback dns --dry-run: every region's health check un-inverted and enabled" {
  run "$SCRIPTS/rollback.sh" --dry-run dns
  [ "$status" -eq 0 ]
  [ ! -s "$CALLS" ]
  [ "$(grep -c 'aws route53 update-health-check .*--no-inverted --no-disabled' <<<"$output")" -eq 3 ]
  for region in us-east-1 eu-central-1 ap-northeast-1; do grep -q "FullyQualifiedDomainName==.*$region.api.akidb.example.com" <<<"$output"; done
}

@test "failover drill --dry-run: answer before, invert, wait for failure, answer moved, restore, answer back" {
  run "$SCRIPTS/failover-drill.sh" --dry-run --region eu-central-1
  [ "$status" -eq 0 ]
  [ ! -s "$CALLS" ]
  before=$(line_of 'test-dns-answer .*--record-name api.akidb.example.com .*--edns0-client-subnet-ip 3.120.0.1')
  invert=$(line_of 'update-health-check --health-check-id .*eu-central-1.* --inverted')
  status_line=$(line_of 'get-health-check-status')
  restore=$(line_of 'update-health-check --health-check-id .*eu-central-1.* --no-inverted')
  (( before < invert && invert < status_line && status_line < restore ))
  after=$(grep -n 'test-dns-answer .*--record-name api.akidb.example.com' <<<"$output" | sed -n 2p | cut -d: -f1)
  (( invert < after && after < restore ))
  last=$(grep -n 'test-dns-answer .*--record-name api.akidb.example.com' <<<"$output" | tail -1 | cut -d: -f1)
  (( restore < last ))
}

@test "failover drill needs a configured region" {
  run "$SCRIPTS/failover-drill.sh" --dry-run
  [ "$status" -ne 0 ]; [[ $output == *"--region is required"* ]]
  run "$SCRIPTS/failover-drill.sh" --dry-run --region us-west-2
  [ "$status" -ne 0 ]; [[ $output == *"us-west-2 is not a configured region"* ]]
}

@test "deploy --site --dry-run: every file uploaded, compressible ones also as .br and .gz with their encoding" {
  site="$BATS_TEST_TMPDIR/site"; mkdir -p "$site/pkg"
  echo '<h1>demo</h1>' > "$site/index.html"; echo wasm > "$site/pkg/akidb_wasm_bg.wasm"; echo png > "$site/logo.png"
  run "$SCRIPTS/deploy.sh" --dry-run --only site --site "$site"
  [ "$status" -eq 0 ]
  [ ! -s "$CALLS" ]
  grep -q "content-type application/wasm .*--content-encoding br .*akidb_wasm_bg.wasm.br s3://.*/pkg/akidb_wasm_bg.wasm.br" <<<"$output"
  grep -q "content-type application/wasm .*--content-encoding gzip .*akidb_wasm_bg.wasm.gz s3://.*/pkg/akidb_wasm_bg.wasm.gz" <<<"$output"
  grep -q "brotli --quality=11 .*index.html" <<<"$output"
  grep -q "content-type image/png .*logo.png s3://.*/logo.png" <<<"$output"
  [ "$(grep -c 'logo.png' <<<"$output")" -eq 1 ]
}
