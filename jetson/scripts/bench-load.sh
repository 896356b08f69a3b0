#!/usr/bin/env bash
# The load of scripts/bench-serve.sh, runnable wherever wrk is (here, or a board: bench-cluster.sh sends it
# over ssh): POST URL/v1/embed with BODY at concurrency 1, 8 and 64, SECONDS each after an unrecorded 2 s
# warm-up at the same concurrency. Needs only bash and wrk (no Python on a board).
#   bench-load.sh URL SECONDS BODY [BENCH]
# Writes raw samples, not statistics: JSON lines in scripts/lib/benchstats.py's format, bench BENCH
# (default "load"), subject "c1", "c8", "c64": one latency_ms line per request (wrk's record of every
# request, microsecond resolution), and per level one qps, non2xx and socket_errors line. The caller
# turns them into a table, e.g.
#   bench-load.sh URL 10 "$BODY" | python3 scripts/lib/benchstats.py table --columns \
#     'qps:median:QPS,latency_ms:p50:p50 ms,latency_ms:p95:p95 ms,latency_ms:p99:p99 ms'
set -euo pipefail
url=$1 secs=$2 body=$3 bench=${4:-load}
lua=$(mktemp --suffix=.lua)
trap 'rm -f "$lua"' EXIT
cat >"$lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$body]]
local function sample(subject, metric, value)
  io.write(string.format('{"bench": "%s", "subject": "%s", "metric": "%s", "value": %s}\n',
    "$bench", subject, metric, value))
end
done = function(summary, latency, requests)
  local subject = os.getenv("BENCH_SUBJECT")
  -- latency(i): the i-th distinct latency recorded (microseconds) and how many requests took it.
  for i = 1, #latency do
    local us, count = latency(i)
    for _ = 1, count do sample(subject, "latency_ms", string.format("%.3f", us / 1e3)) end
  end
  sample(subject, "qps", string.format("%.2f", summary.requests / (summary.duration / 1e6)))
  sample(subject, "non2xx", summary.errors.status)
  sample(subject, "socket_errors",
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout)
end
LUA
for c in 1 8 64; do
  threads=$((c < 2 ? 1 : 2))
  BENCH_SUBJECT=c$c wrk -t"$threads" -c"$c" -d2s --timeout 10s -s "$lua" "$url/v1/embed" >/dev/null
  # wrk's own report goes first on stdout; the samples are the lines that start with '{'.
  BENCH_SUBJECT=c$c wrk -t"$threads" -c"$c" -d"${secs}s" --timeout 10s -s "$lua" "$url/v1/embed" | grep '^{'
done
