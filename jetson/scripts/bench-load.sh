#!/usr/bin/env bash
# The load of scripts/bench-serve.sh, runnable wherever wrk is (here, or a board: bench-cluster.sh sends it
# over ssh): POST URL/v1/embed with BODY at concurrency 1, 8 and 64, SECONDS each after an unrecorded 2 s
# warm-up at the same concurrency; one markdown table row per level.
#   bench-load.sh URL SECONDS BODY
set -euo pipefail
url=$1 secs=$2 body=$3
lua=$(mktemp --suffix=.lua)
trap 'rm -f "$lua"' EXIT
cat >"$lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$body]]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.2f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
echo "| concurrency | QPS | p50 ms | p95 ms | p99 ms | non-2xx | socket errors |"
echo "|---|---|---|---|---|---|---|"
for c in 1 8 64; do
  threads=$((c < 2 ? 1 : 2))
  wrk -t"$threads" -c"$c" -d2s --timeout 10s -s "$lua" "$url/v1/embed" >/dev/null
  read -r q p50 p95 p99 non2xx errors < <(wrk -t"$threads" -c"$c" -d"${secs}s" --timeout 10s -s "$lua" "$url/v1/embed" |
    grep ^RESULT | cut -d' ' -f2-)
  echo "| $c | $q | $p50 | $p95 | $p99 | $non2xx | $errors |"
done
