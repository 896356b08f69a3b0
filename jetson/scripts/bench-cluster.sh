#!/usr/bin/env bash
# Load benchmark for the real boards (not a test; jetson/BENCHMARK.md says how to run it and what to
# record). The load is scripts/bench-serve.sh's: single-sentence POST /v1/embed with wrk at concurrency
# 1, 8 and 64 (SECONDS each, after an unrecorded 2 s warm-up at the same concurrency).
#   bench-cluster.sh device USER@HOST [SECONDS]   on the board itself: the aarch64 akidb (target/jetson)
#       and the bundle (BUNDLE, default models/all-MiniLM-L6-v2/int8-dynamic: the integer path, what the
#       cluster's `latest` serves) copied to /tmp/akidb-bench, `akidb serve` on the board's loopback, wrk on the
#       board; before and after: power mode, clocks, temperatures. Drain the board first
#       (rollback.sh drain NODE) so its DaemonSet pod does not share the CPU.
#   bench-cluster.sh service URL [SECONDS]        from this machine through the ingress and the Service
#       (URL: http://SERVER), i.e. every ready board behind Traefik.
# Targets (the plan's): 330 QPS per device, p95 18 ms; the Service: 330 x the number of ready boards.
set -euo pipefail
# shellcheck source=jetson/scripts/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-} target=${2:-}
secs=${3:-10}
[ -n "$target" ] || die "usage: bench-cluster.sh device USER@HOST [SECONDS] | service URL [SECONDS]"
# bench-load.sh writes raw samples; the table is made here (a board needs no Python).
table() {
  python3 "$root/scripts/lib/benchstats.py" table --columns \
    'qps:median:QPS,latency_ms:p50:p50 ms,latency_ms:p95:p95 ms,latency_ms:p99:p99 ms,non2xx:max:non-2xx,socket_errors:max:socket errors'
}
sentence=$(python3 -c 'import json,sys; print(json.dumps({"texts": [json.load(open(sys.argv[1]))["single"]]}))' \
  "$root/akidb-native/src/bench_sentences.json")
# conditions HOST: what the board runs at: power mode, clocks, temperatures (degrees C x 1000 per zone).
conditions() {
  # shellcheck disable=SC2086 # SSH_OPTS is a list of options
  ssh $SSH_OPTS "$1" bash -s <<'SH'
nvpmodel -q 2>/dev/null | head -1
(sudo jetson_clocks --show 2>/dev/null || true) | grep -E '^(cpu|CPU|GPU|EMC)' | head -12
for z in /sys/class/thermal/thermal_zone*; do printf '%s=%s ' "$(cat "$z/type")" "$(cat "$z/temp")"; done
echo
SH
}

case "$mode" in
  device)
    [ -x "$root/target/jetson/akidb" ] || die "no target/jetson/akidb: run jetson/build.sh first"
    bundle=${BUNDLE:-models/all-MiniLM-L6-v2/int8-dynamic} # relative to the repository root
    [ -f "$root/$bundle/manifest.json" ] || die "no bundle at $root/$bundle: run scripts/fetch-models.sh first"
    # shellcheck disable=SC2086 # SSH_OPTS is a list of options
    tar -C "$root" -cf - target/jetson/akidb "$bundle" |
      ssh $SSH_OPTS "$target" 'rm -rf /tmp/akidb-bench && mkdir -p /tmp/akidb-bench && tar -C /tmp/akidb-bench -xf -'
    echo "## $target: before"
    conditions "$target"
    # shellcheck disable=SC2086
    # shellcheck disable=SC2029 # $bundle expanded here on purpose (a path under the repository, no spaces)
    ssh $SSH_OPTS "$target" 'command -v wrk >/dev/null || sudo apt-get install -y -qq wrk >/dev/null
      cd /tmp/akidb-bench && { setsid ./target/jetson/akidb serve --bundle '"$bundle"' --addr 127.0.0.1:18080 \
        </dev/null >/dev/null 2>serve.log & }
      echo $! >serve.pid
      for _ in $(seq 600); do curl -fs http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break; sleep 0.1; done'
    # shellcheck disable=SC2086
    # ssh joins its arguments into one remote command line: each is quoted for the remote shell.
    # shellcheck disable=SC2029 # expanded here on purpose
    ssh $SSH_OPTS "$target" "bash -s -- $(printf '%q ' http://127.0.0.1:18080 "$secs" "$sentence")" \
      <"$(dirname "$0")/bench-load.sh" >"$root/target/bench-load-$target.jsonl" ||
      status=$?
    # shellcheck disable=SC2086
    ssh $SSH_OPTS "$target" 'kill "$(cat /tmp/akidb-bench/serve.pid)"'
    [ "${status:-0}" = 0 ] || die "the load on $target failed"
    table <"$root/target/bench-load-$target.jsonl"
    echo "## $target: after"
    conditions "$target"
    ;;
  service)
    command -v wrk >/dev/null || die "wrk is missing (Debian/Ubuntu: apt-get install wrk)"
    curl -fsS -o /dev/null -H 'content-type: application/json' -d "$sentence" "$target/v1/embed" ||
      die "$target/v1/embed does not answer"
    echo "## through the Service: $target"
    bash "$(dirname "$0")/bench-load.sh" "$target" "$secs" "$sentence" | table
    ;;
  *) die "usage: bench-cluster.sh device USER@HOST [SECONDS] | service URL [SECONDS]" ;;
esac
echo
echo "targets: 330 QPS per device at concurrency 64, p95 <= 18 ms; through the Service 330 x ready boards"
