#!/usr/bin/env bash
# Property-based API test of model-server against its own /openapi.json (schemathesis, from PyPI).
# Starts the server on 127.0.0.1 with the int8 bundle published (and a write token, so the write
# operations are exercised too), runs a bounded schemathesis session, and fails on any 5xx or any
# response that does not match the document (status, content type, headers, body schema).
# Needs: models/ (scripts/fetch-models.sh); builds the release binary if it is out of date.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/service.sh
source scripts/lib/service.sh
# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh

if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet 'schemathesis>=4,<5'
fi
st=$(command -v schemathesis || echo "python3 -m schemathesis.cli")

# Same command and features as scripts/test.sh's test step: nothing to rebuild there.
cargo test --release --workspace --features "$workspace_features" --no-run
bin=target/release/model-server
bundle=models/all-MiniLM-L6-v2/int8
[[ -f $bundle/manifest.json ]] || { echo "missing $bundle: run scripts/fetch-models.sh" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The bundle is signed (a key made here) and the server checks signatures, so the signature route answers
# 200 for the published version and every HTTP publish schemathesis makes is held to the signature rule.
mkdir "$work/bundle"
cp "$bundle"/manifest.json "$bundle"/model.onnx "$bundle"/tokenizer.json "$work/bundle/"
target/release/akidb keygen --out "$work" --name schemathesis >/dev/null
target/release/akidb bundle sign --key "$work/schemathesis.key" "$work/bundle" >/dev/null
printf '{"keys":[%s]}' "$(cat "$work/schemathesis.pub")" >"$work/trusted.json"
"$bin" publish --data "$work/data" "$work/bundle" --alias latest --trusted-keys "$work/trusted.json" >/dev/null
echo "schemathesis-token" > "$work/token"
port=$(free_port)
RUST_LOG=warn "$bin" serve --data "$work/data" --addr "127.0.0.1:$port" --token-file "$work/token" --trusted-keys "$work/trusted.json" 2>"$work/server.log" &
server_pid=$!
wait_ready "http://127.0.0.1:$port/readyz" 30 "$server_pid" "$work/server.log"

# One worker: with two, CPython 3.11's ast.parse (which hypothesis calls to describe strategies) fails
# now and then with "AST constructor recursion depth mismatch" when two threads use it at once.
$st run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --header "Authorization: Bearer schemathesis-token" \
  --phases examples,coverage,fuzzing \
  --max-examples 40 \
  --max-time 90 \
  --seed 4 \
  --workers 1 \
  --request-timeout 10

# The server survived and still serves the published bundle unchanged.
curl -fsS "http://127.0.0.1:$port/v1/models/all-MiniLM-L6-v2/1.0.0-int8/manifest.json" | cmp - "$bundle/manifest.json"
echo "schemathesis: ok"
