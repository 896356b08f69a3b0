# shellcheck shell=bash
# Starting a service under a script, written once for the scripts that do it (benchmarks, smoke tests,
# demos): a free loopback port, and waiting for readiness with the service's log on failure.
#   source "$root/scripts/lib/service.sh"
# Needs curl and python3 (for the port: the kernel picks it, as the Rust and JS test kits do).

# free_port: prints a loopback TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL SECONDS PID [LOG]: polls GET URL every 0.1 s until it answers 2xx. Returns 1, with LOG on
# stderr and a line saying why, when process PID exits first or SECONDS pass. Without LOG (a service that
# writes to the terminal, as the demo's do) its output is already on screen and only the line is printed.
wait_ready() {
  local url=$1 secs=$2 pid=$3 log=${4:-} tries where
  tries=$((secs * 10))
  where="its output is above"
  if [[ -n $log ]]; then where="its log is above"; fi
  for _ in $(seq "$tries"); do
    curl -fs -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      if [[ -n $log ]]; then cat "$log" >&2; fi
      echo "process $pid exited before $url was ready ($where)" >&2
      return 1
    fi
    sleep 0.1
  done
  if [[ -n $log ]]; then cat "$log" >&2; fi
  echo "$url not ready after $secs s (process $pid; $where)" >&2
  return 1
}
