#!/usr/bin/env bash
# The main job on one machine: fetch the model, publish its bundles to a model-server, start the
# embedding service on the model-server's bundle, and show both working. Ctrl-C stops everything.
#   MODEL_SERVER_ADDR (default 127.0.0.1:8081), EMBED_ADDR (default 127.0.0.1:8080)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ms_addr=${MODEL_SERVER_ADDR:-127.0.0.1:8081}
embed_addr=${EMBED_ADDR:-127.0.0.1:8080}
data="$root/target/demo-data"

bash scripts/fetch-models.sh
bin="$root/target/release"
for v in int8 fp32; do
  [ -f "models/all-MiniLM-L6-v2/$v/manifest.json" ] || continue
  alias_args=(); [ $v = int8 ] && alias_args=(--alias latest)
  "$bin/model-server" publish --data "$data" "models/all-MiniLM-L6-v2/$v" "${alias_args[@]}"
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
"$bin/model-server" serve --data "$data" --addr "$ms_addr" --read-only &
pids+=($!)
wait_ready() {
  for _ in $(seq 600); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: $1 never became ready" >&2; return 1
}
wait_ready "http://$ms_addr/readyz"
manifest_url="http://$ms_addr/v1/models/all-MiniLM-L6-v2/latest/manifest.json"
"$bin/akidb" serve --bundle-url "$manifest_url" --addr "$embed_addr" &
pids+=($!)
wait_ready "http://$embed_addr/readyz"

echo
echo "model-server     http://$ms_addr/v1/models   (bundle: $manifest_url)"
echo "embedding API    http://$embed_addr/v1/embed  (OpenAI-compatible: /v1/embeddings)"
echo
echo "curl -s http://$embed_addr/v1/embed -H 'content-type: application/json' -d '{\"texts\": [\"hello world\"]}'"
curl -s "http://$embed_addr/v1/embed" -H 'content-type: application/json' -d '{"texts": ["hello world"]}' | cut -c1-160
echo "..."
echo
echo "Both services run until Ctrl-C."
wait
