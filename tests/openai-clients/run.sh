#!/usr/bin/env bash
# The OpenAI-compatible route as its users meet it: the official `openai` clients for Python and for
# Node, in their default configuration (which asks for base64 vectors), against a real `akidb serve` on
# loopback. Each client's vectors must equal the service's own /v1/embed vectors.
# Installs the clients into target/tools (pinned; reruns skip it). Needs target/release/akidb and the
# int8 bundle (make test builds both first).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tools="$root/target/tools/openai-clients"
py_version=3.51.0
node_version=7.55.0
mkdir -p "$tools"
if [ ! -x "$tools/venv/bin/python" ]; then
  python3 -m venv "$tools/venv"
fi
if [ "$("$tools/venv/bin/python" -c 'import openai; print(openai.__version__)' 2>/dev/null)" != "$py_version" ]; then
  "$tools/venv/bin/pip" install -q "openai==$py_version"
fi
if [ "$(node -p "require('$tools/node_modules/openai/package.json').version" 2>/dev/null)" != "$node_version" ]; then
  (cd "$tools" && npm install --silent --no-audit --no-fund --prefix "$tools" "openai@$node_version" >/dev/null)
fi

# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/service.sh
source scripts/lib/service.sh
port=$(free_port)
log=$(mktemp)
target/release/akidb serve --bundle models/all-MiniLM-L6-v2/int8 --addr "127.0.0.1:$port" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
wait_ready "http://127.0.0.1:$port/readyz" 30 "$server" "$log"

export AKIDB_BASE="http://127.0.0.1:$port"
"$tools/venv/bin/python" tests/openai-clients/client_test.py
NODE_PATH="$tools/node_modules" node tests/openai-clients/client_test.mjs
echo "2 passed, 0 failed"
