#!/usr/bin/env bash
# The main job on one machine: fetch the model, build the wasm package and the offline demo page, publish
# the bundles to a model-server that also serves the page, start the embedding service (the page's server
# fallback), and print the page's URL. Ctrl-C stops everything.
#   MODEL_SERVER_ADDR (default 127.0.0.1:8081): model-server: the bundles (/v1/...) and the page (/)
#   EMBED_ADDR (default 127.0.0.1:8080): akidb serve; the page's fallback is http://$EMBED_ADDR/v1/embed,
#   written to web/dist/config.json (a visit can override it with ?fallback=URL)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ms_addr=${MODEL_SERVER_ADDR:-127.0.0.1:8081}
embed_addr=${EMBED_ADDR:-127.0.0.1:8080}
data="$root/target/demo-data"
step() { printf '\n== demo: %s\n' "$*" >&2; }

step "model bundles and release binaries"
bash scripts/fetch-models.sh
step "the @akidb/wasm package (built when missing or stale)"
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
ensure_wasm_pkg
step "the demo page (web/dist)"
bash web/build.sh
manifest_path=/v1/models/all-MiniLM-L6-v2/latest/manifest.json
printf '{\n  "modelUrl": "%s",\n  "fallbackUrl": "http://%s/v1/embed"\n}\n' "$manifest_path" "$embed_addr" \
  >web/dist/config.json

step "publish the bundles"
bin="$root/target/release"
# `latest`, which the page and akidb serve load, is the integer path (int8-dynamic: int8 × int8 weight
# products, issue #18); the exact int8 and fp32 bundles are published beside it under their versions.
for v in int8-dynamic int8 fp32; do
  [ -f "models/all-MiniLM-L6-v2/$v/manifest.json" ] || continue
  alias_args=(); [ $v = int8-dynamic ] && alias_args=(--alias latest)
  "$bin/model-server" publish --data "$data" "models/all-MiniLM-L6-v2/$v" "${alias_args[@]}"
done

step "start the servers"
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/service.sh
source scripts/lib/service.sh
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
# The services log to this terminal (no log file): wait_ready prints only why it gave up.
"$bin/model-server" serve --data "$data" --addr "$ms_addr" --read-only --static web/dist &
pids+=($!)
wait_ready "http://$ms_addr/readyz" 60 "${pids[-1]}"
manifest_url="http://$ms_addr$manifest_path"
"$bin/akidb" serve --bundle-url "$manifest_url" --addr "$embed_addr" &
pids+=($!)
wait_ready "http://$embed_addr/readyz" 60 "${pids[-1]}"

echo
echo "model-server     http://$ms_addr/v1/models   (bundle: $manifest_url)"
echo "embedding API    http://$embed_addr/v1/embed  (OpenAI-compatible: /v1/embeddings)"
echo
echo "curl -s http://$embed_addr/v1/embed -H 'content-type: application/json' -d '{\"texts\": [\"hello world\"]}'"
curl -s "http://$embed_addr/v1/embed" -H 'content-type: application/json' -d '{"texts": ["hello world"]}' | cut -c1-160
echo "..."
echo
echo "The demo page (semantic search in the browser, offline after the first visit):"
echo
echo "    http://$ms_addr/"
echo
echo "Its server fallback is http://$embed_addr/v1/embed (web/dist/config.json; ?fallback=URL overrides)."
echo "Both services run until Ctrl-C."
wait
