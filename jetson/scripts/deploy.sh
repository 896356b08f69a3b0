#!/usr/bin/env bash
# Deploys the images built by jetson/images/build.sh to the cluster and checks them with a golden sentence.
#   1. imports the image archives of the overlay's architecture on every node (k3s ctr, over ssh), unless
#      the node already has that tag;
#   2. with --model-data DIR (a model-server data directory, `model-server publish --data DIR BUNDLE
#      --alias latest`): copies it to /var/lib/akidb/model-server on the --model-store board, unless the
#      same content is there already;
#   3. applies the overlay with the archives' tag, unless `kubectl diff` finds nothing to change;
#   4. waits for the rollouts, then POSTs a golden sentence to /v1/embed through the ingress (--url) and
#      compares the embedding with the reference (cosine >= 0.99);
#   5. when the rollout or that smoke test fails after an apply: `kubectl rollout undo` of what it applied,
#      waits for that rollout, and exits 1 saying so.
#
#   deploy.sh --url http://SERVER [--overlay jetson|jetson-gpu|origin] --node USER@HOST [--node ...]
#             [--images DIR] [--model-data DIR --model-store USER@HOST] [--golden DIR] [--timeout 300s]
#             [--dry-run]
set -euo pipefail
# shellcheck source=jetson/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)

overlay=jetson
images="$root/target/images"
golden="$root/../shared/golden"
timeout=300s
url=""
model_data=""
model_store=""
nodes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --overlay) overlay=${2:?}; shift 2 ;;
    --node) nodes+=("${2:?--node USER@HOST}"); shift 2 ;;
    --images) images=${2:?}; shift 2 ;;
    --model-data) model_data=${2:?}; shift 2 ;;
    --model-store) model_store=${2:?}; shift 2 ;;
    --golden) golden=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --url) url=${2:?}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
case "$overlay" in
  jetson | jetson-gpu) arch=arm64 workload=daemonset/akidb-serve ;;
  origin) arch=amd64 workload=deployment/akidb-serve ;;
  *) die "unknown overlay $overlay (jetson, jetson-gpu, origin)" ;;
esac
[ ${#nodes[@]} -gt 0 ] || die "give every node to import the images on: --node USER@HOST (repeatable)"
[ -n "$url" ] || die "--url http://INGRESS is required (the smoke test goes through the ingress and the Service)"
[ -z "$model_data" ] || [ -n "$model_store" ] || die "--model-data needs --model-store USER@HOST (the board labelled akidb.io/model-store)"
[ -f "$images/TAG" ] || die "no $images/TAG: build the images first (jetson/images/build.sh)"
tag=$(cat "$images/TAG")
for image in akidb-serve model-server; do
  [ -f "$images/$image-$arch.oci.tar" ] || die "no $images/$image-$arch.oci.tar: build the images first"
done
[ -f "$golden/sentences.json" ] || die "no golden sentences at $golden (GOLDEN: ../shared/golden)"
work="$root/target/jetson-deploy/$overlay"
mkdir -p "$work"

say "== images $tag ($arch) on ${#nodes[@]} node(s)"
for node in "${nodes[@]}"; do
  for image in akidb-serve model-server; do
    # shellcheck disable=SC2086 # SSH_OPTS is a list of options
    have=$(ssh $SSH_OPTS "$node" sudo k3s ctr -n k8s.io images ls -q "name==docker.io/library/$image:$tag") ||
      die "$node: cannot list its images (ssh, sudo, k3s)"
    [ -z "$have" ] || continue
    # shellcheck disable=SC2086
    act_in "$images/$image-$arch.oci.tar" ssh $SSH_OPTS "$node" sudo k3s ctr -n k8s.io images import \
      --base-name "docker.io/library/$image" -
  done
done

if [ -n "$model_data" ]; then
  say "== model data $model_data -> $model_store:/var/lib/akidb/model-server"
  [ -f "$model_data/registry.sqlite" ] || die "$model_data is not a model-server data directory (no registry.sqlite)"
  digest=$(cd "$model_data" && find . -type f ! -name '*-wal' ! -name '*-shm' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
  # The directory on the board, expanded there (single quotes); AKIDB_NODE_ROOT is unset on a board (sudo
  # drops it anyway) and lets the tests point it at a directory standing for the board.
  # shellcheck disable=SC2016
  store='${AKIDB_NODE_ROOT:-}/var/lib/akidb/model-server'
  # shellcheck disable=SC2086,SC2029
  there=$(ssh $SSH_OPTS "$model_store" "sudo sh -c 'cat $store/.akidb-content 2>/dev/null || true'") ||
    die "$model_store: cannot read $store over ssh"
  if [ "$there" != "$digest" ]; then
    tar -C "$model_data" --exclude='*-wal' --exclude='*-shm' -cf "$work/model-data.tar" .
    # shellcheck disable=SC2086
    act_in "$work/model-data.tar" ssh $SSH_OPTS "$model_store" sudo sh -c \
      "'mkdir -p $store && tar -C $store -xf - && echo $digest > $store/.akidb-content && chown -R 65532:65532 $store'"
  fi
fi

say "== apply overlay $overlay with tag $tag"
cat >"$work/kustomization.yaml" <<YAML
# Written by jetson/scripts/deploy.sh: the $overlay overlay with the images' tag.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $root/jetson/k8s/overlays/$overlay
images:
  - name: akidb-serve
    newTag: "$tag"
  - name: model-server
    newTag: "$tag"
YAML
applied=0
if ! kubectl diff -k "$work" >/dev/null 2>&1; then
  act kubectl apply -k "$work"
  applied=1
fi

rollback() {
  say "deploy failed: $1"
  if [ "$applied" = 0 ]; then
    die "nothing was applied by this run, so nothing to roll back; the cluster is as it was"
  fi
  say "rolling back $workload and deployment/model-server to their previous revisions"
  act kubectl -n akidb rollout undo "$workload" || say "no previous revision of $workload (first deploy?)"
  act kubectl -n akidb rollout undo deployment/model-server || say "no previous revision of deployment/model-server"
  act kubectl -n akidb rollout status "$workload" "--timeout=$timeout" || die "rollback of $workload did not finish: look at 'kubectl -n akidb get pods'"
  die "deploy of $tag failed and was rolled back: $1"
}

say "== rollout"
act kubectl -n akidb rollout status deployment/model-server "--timeout=$timeout" || rollback "model-server did not become ready"
act kubectl -n akidb rollout status "$workload" "--timeout=$timeout" || rollback "$workload did not become ready"

say "== smoke test: a golden sentence through $url/v1/embed"
smoke() {
  local body
  body=$(python3 - "$golden" <<'PY'
import json, sys
sentences = json.load(open(f"{sys.argv[1]}/sentences.json"))
print(json.dumps({"texts": [next(s for s in sentences if len(s.split()) >= 4)]}))
PY
  )
  curl -fsS --max-time 30 -H 'content-type: application/json' -d "$body" "$url/v1/embed" >"$work/smoke.json" ||
    { echo "POST $url/v1/embed failed"; return 1; }
  python3 - "$golden" "$work/smoke.json" "$root/scripts/lib" <<'PY'
import json, sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[3])
import golden
ref = golden.load(sys.argv[1])
i = next(i for i, s in enumerate(ref.sentences) if len(s.split()) >= 4)
try:
    emb = json.load(open(sys.argv[2]))["embeddings"][0]
except (ValueError, KeyError, IndexError, TypeError) as e:
    sys.exit(f"the answer is not an embeddings response: {e!r}")
try:
    cos, _ = golden.check(ref, [i], [emb], min_bar=0.99)
except golden.GoldenMismatch as e:
    sys.exit(f"{e}: the service answers, but not with the model's embedding")
print(f"golden sentence {i}: cosine {cos:.6f} to the reference")
PY
}
printf '+ curl -fsS %s/v1/embed (golden sentence; cosine >= 0.99 to the reference)\n' "$url"
if [ "$DRY_RUN" != 1 ]; then
  out=$(smoke 2>&1) || rollback "smoke test: $out"
  say "$out"
fi
say "deployed $tag ($overlay)"
