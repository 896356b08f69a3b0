#!/usr/bin/env bash
# From an empty (bootstrapped) account to the whole edge deployment, in dependency order:
#   synth → diff → registries → images → regional stacks (secondaries, then the primary) → edge → dns
#   → publish the model bundle to the primary bucket (replicated to the others) and roll the services
#   → upload the demo site (--site DIR) with precompressed .br/.gz variants
#   → invalidate the alias paths (nothing else: blobs and version manifests never change meaning; site files
#     are cached five minutes).
# Idempotent: CloudFormation deploys are no-ops when nothing changed, an image tag already in ECR is not pushed
# again (tags are immutable), publishing identical bytes is a no-op.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STEPS=(synth diff registries images regional edge dns publish site invalidate)

usage() {
  cat <<USAGE
usage: deploy.sh [--dry-run] [--only STEP]... [--config FILE] [--edge-zip ZIP] [--images DIR] [--bundle DIR]
  --dry-run     print every call instead of making it
  --only STEP   run only this step (repeatable): ${STEPS[*]}
  --config      app config (default infra/config/default.json)
  --edge-zip    Lambda@Edge package (default infra/lambda-edge/dist/akidb-edge.zip, from infra/lambda-edge/build.sh)
  --images      folder of the OCI archives (default target/images, from jetson/images/build.sh)
  --bundle      model bundle to publish (default models/<model.name>/int8-dynamic, the integer path)
  --site        folder of the demo page and its .wasm to upload (the site step is skipped without it)
environment: MODEL_SERVER (the model-server binary, default target/release/model-server),
  AKIDB_SITE_BUCKET / AKIDB_DISTRIBUTION_ID (instead of the edge stack's outputs)
USAGE
}

ONLY=()
EDGE_ZIP="$INFRA_DIR/lambda-edge/dist/akidb-edge.zip"
IMAGES_DIR="$REPO_DIR/target/images"
BUNDLE=""
SITE_DIR=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --only) [[ $# -ge 2 ]] || die "--only needs a step"; ONLY+=("$2"); shift ;;
    --config) [[ $# -ge 2 ]] || die "--config needs a file"; CONFIG=$2; shift ;;
    --edge-zip) [[ $# -ge 2 ]] || die "--edge-zip needs a file"; EDGE_ZIP=$2; shift ;;
    --images) [[ $# -ge 2 ]] || die "--images needs a folder"; IMAGES_DIR=$2; shift ;;
    --bundle) [[ $# -ge 2 ]] || die "--bundle needs a folder"; BUNDLE=$2; shift ;;
    --site) [[ $# -ge 2 && -d $2 ]] || die "--site needs an existing folder"; SITE_DIR=$(cd "$2" && pwd); shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument $1" ;;
  esac
  shift
done
for step in "${ONLY[@]}"; do
  [[ " ${STEPS[*]} " == *" $step "* ]] || die "unknown step $step (steps: ${STEPS[*]})"
done
wanted() { [[ ${#ONLY[@]} -eq 0 || " ${ONLY[*]} " == *" $1 "* ]]; }

require jq aws
load_config
BUNDLE=${BUNDLE:-$REPO_DIR/models/$MODEL_NAME/int8-dynamic}
MODEL_SERVER=${MODEL_SERVER:-$REPO_DIR/target/release/model-server}
cd "$INFRA_DIR"
CDK=(npx --no-install cdk --no-notices)

cdk_deploy() {
  # The assembly synthesized (and diffed) above is exactly what gets deployed.
  call "${CDK[@]}" deploy --app cdk.out --exclusively --require-approval never "$@"
}

if wanted synth; then
  log "== synth"
  [[ $DRY_RUN -eq 1 || -f $EDGE_ZIP ]] || die "Lambda@Edge package $EDGE_ZIP is missing: run infra/lambda-edge/build.sh first"
  call npm run --silent build
  call "${CDK[@]}" synth --quiet -c "config=$CONFIG" -c "edgeZip=$EDGE_ZIP"
fi

if wanted diff; then
  log "== diff (what will change)"
  call "${CDK[@]}" diff --app cdk.out
fi

if wanted registries; then
  log "== registries"
  for region in "${REGIONS[@]}"; do cdk_deploy "AkidbRegistry-$region"; done
fi

image_exists() { # REGION REPOSITORY TAG
  show aws ecr describe-images --region "$1" --repository-name "$2" --image-ids "imageTag=$3" >&2
  [[ $DRY_RUN -eq 0 ]] && aws ecr describe-images --region "$1" --repository-name "$2" --image-ids "imageTag=$3" >/dev/null 2>&1
}

if wanted images; then
  log "== images (OCI archives → ECR, every region)"
  AUTH_FILE=$(mktemp)
  trap 'rm -f "$AUTH_FILE"' EXIT
  for region in "${REGIONS[@]}"; do
    registry="$ACCOUNT.dkr.ecr.$region.amazonaws.com"
    show aws ecr get-login-password --region "$region" '|' skopeo login --authfile "$AUTH_FILE" --username AWS --password-stdin "$registry" >&2
    if [[ $DRY_RUN -eq 0 ]]; then
      require skopeo
      aws ecr get-login-password --region "$region" | skopeo login --authfile "$AUTH_FILE" --username AWS --password-stdin "$registry"
    fi
    for image in akidb-serve model-server; do
      key=$([[ $image == akidb-serve ]] && echo akidbServe || echo modelServer)
      tag=$(cfg ".services.$key.imageTag")
      archive="$IMAGES_DIR/$image-amd64.oci.tar"
      if image_exists "$region" "$image" "$tag"; then
        log "$image:$tag is already in $region"
        continue
      fi
      [[ $DRY_RUN -eq 1 || -f $archive ]] || die "$archive is missing: run jetson/images/build.sh first"
      call skopeo copy --authfile "$AUTH_FILE" "oci-archive:$archive" "docker://$registry/$image:$tag"
    done
  done
fi

if wanted regional; then
  log "== regional stacks (replica buckets before the primary's replication rules)"
  for region in "${SECONDARIES[@]}" "$PRIMARY"; do cdk_deploy "AkidbRegional-$region"; done
fi

if wanted edge; then
  log "== edge stack"
  cdk_deploy AkidbEdge
fi

if wanted dns; then
  log "== dns stack"
  cdk_deploy AkidbDns
fi

if wanted publish; then
  log "== publish $BUNDLE to the primary bucket"
  [[ $DRY_RUN -eq 1 || -f $BUNDLE/manifest.json ]] || die "no model bundle at $BUNDLE (scripts/fetch-models.sh makes it)"
  [[ $DRY_RUN -eq 1 || -x $MODEL_SERVER ]] || die "model-server binary $MODEL_SERVER is missing: cargo build --release -p model-server"
  bucket="akidb-models-$ACCOUNT-$PRIMARY"
  data=$(mktemp -d)
  # The bucket holds model-server's data directory; publish into a copy of it so earlier versions and aliases stay.
  call aws s3 sync --only-show-errors --region "$PRIMARY" "s3://$bucket/model-server/" "$data/"
  call "$MODEL_SERVER" publish --data "$data" "$BUNDLE" --alias "$MODEL_ALIAS"
  call aws s3 sync --only-show-errors --region "$PRIMARY" "$data/" "s3://$bucket/model-server/"
  rm -rf "$data"
  if [[ ${AKIDB_SKIP_ROLL:-0} != 1 ]]; then
    etag=$(query '<etag>' aws s3api head-object --region "$PRIMARY" --bucket "$bucket" --key model-server/registry.sqlite --query ETag --output text)
    for region in "${REGIONS[@]}"; do
      if [[ $region != "$PRIMARY" ]]; then
        # Replication Time Control: 99.99 % of objects within 15 minutes.
        replica="akidb-models-$ACCOUNT-$region"
        show aws s3api head-object --region "$region" --bucket "$replica" --key model-server/registry.sqlite --query ETag --output text >&2
        log "  (every 10 s until the replica's ETag is the primary's, 15 minutes at most)"
      fi
      if [[ $region != "$PRIMARY" && $DRY_RUN -eq 0 ]]; then
        for _ in $(seq 90); do
          [[ $(aws s3api head-object --region "$region" --bucket "$replica" --key model-server/registry.sqlite --query ETag --output text 2>/dev/null || true) == "$etag" ]] && break
          sleep 10
        done
        [[ $(aws s3api head-object --region "$region" --bucket "$replica" --key model-server/registry.sqlite --query ETag --output text) == "$etag" ]] \
          || die "the registry did not replicate to $replica within 15 minutes"
      fi
      cluster=$(stack_output "AkidbRegional-$region" "$region" ClusterName)
      for service in ModelServerService AkidbServeService; do
        name=$(stack_output "AkidbRegional-$region" "$region" "$service")
        # model-server first: akidb serve loads the bundle from it when it starts.
        call aws ecs update-service --region "$region" --cluster "$cluster" --service "$name" --force-new-deployment --query service.serviceName --output text
        call aws ecs wait services-stable --region "$region" --cluster "$cluster" --services "$name"
      done
    done
  fi
fi

# Files the CloudFront Function (lib/functions/precompressed.js) serves a .br/.gz variant of: keep in step.
compressible() { [[ $1 =~ \.(wasm|js|mjs|html|css|json|svg|txt)$ ]]; }
content_type() {
  case $1 in
    *.html) echo 'text/html; charset=utf-8' ;;
    *.js|*.mjs) echo 'text/javascript; charset=utf-8' ;;
    *.wasm) echo application/wasm ;;
    *.json) echo application/json ;;
    *.css) echo 'text/css; charset=utf-8' ;;
    *.svg) echo image/svg+xml ;;
    *.txt) echo 'text/plain; charset=utf-8' ;;
    *.png) echo image/png ;;
    *.ico) echo image/x-icon ;;
    *) echo application/octet-stream ;;
  esac
}

if wanted site; then
  if [[ -z $SITE_DIR ]]; then
    log "== site: skipped (no --site DIR)"
  else
    log "== site: $SITE_DIR → the site bucket, compressible files also as .br and .gz"
    [[ $DRY_RUN -eq 1 ]] || require brotli gzip
    bucket=${AKIDB_SITE_BUCKET:-$(stack_output AkidbEdge us-east-1 SiteBucketName)}
    staging=$(mktemp -d)
    while IFS= read -r -d '' file; do
      rel=${file#"$SITE_DIR"/}
      type=$(content_type "$rel")
      meta=(--only-show-errors --region us-east-1 --content-type "$type" --cache-control 'public, max-age=300')
      call aws s3 cp "${meta[@]}" "$file" "s3://$bucket/$rel"
      if compressible "$rel"; then
        # CloudFront compresses nothing above 10 MB (the .wasm is 12.8 MB); these are made at the highest levels.
        call mkdir -p "$(dirname "$staging/$rel")"
        call brotli --quality=11 --force --output="$staging/$rel.br" "$file"
        show gzip -9 --no-name --stdout "$file" '>' "$staging/$rel.gz" >&2
        [[ $DRY_RUN -eq 1 ]] || gzip -9 --no-name --stdout "$file" > "$staging/$rel.gz"
        call aws s3 cp "${meta[@]}" --content-encoding br "$staging/$rel.br" "s3://$bucket/$rel.br"
        call aws s3 cp "${meta[@]}" --content-encoding gzip "$staging/$rel.gz" "s3://$bucket/$rel.gz"
      fi
    done < <(find "$SITE_DIR" -type f ! -name '*.br' ! -name '*.gz' -print0 | sort -z)
    rm -rf "$staging"
  fi
fi

if wanted invalidate; then
  log "== invalidate the alias paths"
  distribution=${AKIDB_DISTRIBUTION_ID:-$(stack_output AkidbEdge us-east-1 DistributionId)}
  call aws cloudfront create-invalidation --distribution-id "$distribution" \
    --paths /v1/models "/v1/models/$MODEL_NAME" "/v1/models/$MODEL_NAME/$MODEL_ALIAS/manifest.json" \
    --query Invalidation.Id --output text
fi
if [[ $DRY_RUN -eq 1 ]]; then log 'deploy: dry run done, nothing was changed'; else log 'deploy: done'; fi
