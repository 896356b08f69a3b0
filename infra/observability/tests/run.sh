#!/usr/bin/env bash
# infra/observability's tests, end to end:
#   promtool check/test rules; tsc --noEmit and the generated dashboards compared with a fresh generation;
#   the edge dashboard's CloudWatch queries against AWS's documented names;
#   a real Prometheus (Debian's) scraping a live model-server, a regional and a device `akidb serve` and
#   node_exporter on loopback under a short load, with every PromQL of the dashboards and rules run through
#   its HTTP API and required to return data;
#   akidb-probe's unit tests, then the probe against simulated regions behind a userspace delay proxy.
# Installs what it needs (apt: prometheus, prometheus-node-exporter, shellcheck; npm ci; PyYAML) when absent.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR/../../.. source=scripts/lib/service.sh
source "$root/scripts/lib/service.sh"
# shellcheck source-path=SCRIPTDIR/../../.. source=scripts/lib/prereqs.sh
source "$root/scripts/lib/prereqs.sh"
work=$(mktemp -d)
trap 'stop_services; rm -rf "$work"' EXIT
step() { echo "== observability: $*"; }
fail() { echo "observability: $*" >&2; exit 1; }

step "tools"
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q 'PyYAML==6.0.3'
if ! cmp -s "$here/dashboards/package-lock.json" "$here/dashboards/node_modules/.package-lock.json.src" 2>/dev/null; then
  (cd "$here/dashboards" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/dashboards/package-lock.json" "$here/dashboards/node_modules/.package-lock.json.src"
fi

step "shellcheck"
shellcheck -x "$here"/tests/*.sh "$here"/probe/*.sh

step "promtool check rules, promtool test rules"
promtool check rules "$here/prometheus/rules.yml"
promtool test rules "$here/prometheus/rules.test.yml"

step "dashboards: tsc --noEmit, generation compared with generated/"
(cd "$here/dashboards" && node_modules/.bin/tsc --noEmit -p . && node_modules/.bin/tsc -p . &&
  node dist/generate.js "$work/generated")
diff -ru "$here/generated" "$work/generated" ||
  fail "generated/ differs from the TypeScript: run 'npm run build' in infra/observability/dashboards and commit"
python3 "$here/tests/check_cloudwatch.py"

step "build (the workspace, as scripts/fetch-models.sh does), the int8 bundle; akidb-probe's unit tests"
# fetch-models.sh builds the whole workspace with every target (a no-op when built) and the bundles once.
# --workspace and the same --features keep that build's feature set, so nothing is compiled twice.
"$root/scripts/fetch-models.sh"
(cd "$root" && cargo test --release --quiet --workspace --features "$workspace_features" --bin akidb-probe)
bin="$root/target/release"
bundle="$root/models/all-MiniLM-L6-v2/int8"

start() { # start LOG CMD...: runs CMD in the background, output to $work/LOG; sets service_pid
  local log=$1
  shift
  start_service "$work/$log" "$@"
}
ready() { # ready URL NAME LOG PID: scripts/lib's wait_ready (the log shown on failure), 60 s
  wait_ready "$1" 60 "$4" "$work/$3" || fail "$2 not ready at $1"
}

step "services on loopback"
ms_port=$(free_port)
regional_port=$(free_port)
device_port=$(free_port)
node_port=$(free_port)
prom_port=$(free_port)
"$bin/model-server" publish --data "$work/ms-data" "$bundle" --alias latest >"$work/publish.log" 2>&1 ||
  { cat "$work/publish.log" >&2; fail "model-server publish failed"; }
start model-server.log "$bin/model-server" serve --data "$work/ms-data" --addr "127.0.0.1:$ms_port" --read-only
ready "http://127.0.0.1:$ms_port/readyz" model-server model-server.log "$service_pid"
# The regional service loads the bundle from disk; its small queue (16 texts) lets the load's bursts get 429s.
start regional.log "$bin/akidb" serve --bundle "$bundle" --addr "127.0.0.1:$regional_port" --workers 1 --queue 16
regional_pid=$service_pid
# The device loads it from model-server, as a Jetson does.
start device.log "$bin/akidb" serve --addr "127.0.0.1:$device_port" --workers 1 \
  --bundle-url "http://127.0.0.1:$ms_port/v1/models/all-MiniLM-L6-v2/latest/manifest.json"
device_pid=$service_pid
start node-exporter.log prometheus-node-exporter --web.listen-address="127.0.0.1:$node_port" \
  --collector.disable-defaults --collector.cpu --collector.meminfo
ready "http://127.0.0.1:$regional_port/readyz" "akidb serve (regional)" regional.log "$regional_pid"
ready "http://127.0.0.1:$device_port/readyz" "akidb serve (device)" device.log "$device_pid"
ready "http://127.0.0.1:$node_port/metrics" node_exporter node-exporter.log "$service_pid"

cat >"$work/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: ["$here/prometheus/rules.yml"]
scrape_configs:
  - job_name: akidb-serve
    static_configs: [{ targets: ["127.0.0.1:$regional_port"], labels: { region: test-local, tier: regional } }]
  - job_name: model-server
    static_configs: [{ targets: ["127.0.0.1:$ms_port"], labels: { region: test-local, tier: regional } }]
  - job_name: akidb-device
    static_configs: [{ targets: ["127.0.0.1:$device_port"], labels: { region: test-local, tier: device, device: jetson-sim-1 } }]
  - job_name: node
    static_configs: [{ targets: ["127.0.0.1:$node_port"], labels: { region: test-local, tier: device, device: jetson-sim-1 } }]
YAML
promtool check config "$work/prometheus.yml" >/dev/null
start prometheus.log prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port"
ready "http://127.0.0.1:$prom_port/-/ready" prometheus prometheus.log "$service_pid"

step "load (15 s)"
python3 "$here/tests/load.py" --seconds 15 --regional "http://127.0.0.1:$regional_port" \
  --device "http://127.0.0.1:$device_port" --model-server "http://127.0.0.1:$ms_port"

step "every PromQL of the dashboards and rules against the live Prometheus"
python3 "$here/tests/check_queries.py" "http://127.0.0.1:$prom_port" --wait 30

step "akidb-probe against simulated regions (delay proxy)"
blob=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["files"][0]["sha256"])' "$bundle/manifest.json")
python3 "$here/tests/test_probe.py" --probe "$bin/akidb-probe" --blob "$blob" \
  --model-server "http://127.0.0.1:$ms_port" --regional "http://127.0.0.1:$regional_port"

step "passed"
