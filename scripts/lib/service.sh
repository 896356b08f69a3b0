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

# Background services, stopped together: start_service records each pid in service_pids, stop_services
# (for the script's EXIT trap) ends them all and waits for them.
service_pids=()
service_pid=
moto_url=

# start_service LOG CMD...: runs CMD in the background, stdout and stderr to LOG; sets service_pid. Call it
# in the script's own shell, not in $(...): a pid recorded in a subshell is lost, and its process outlives
# the script.
start_service() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  service_pid=$!
  service_pids+=("$service_pid")
}

# stop_services: SIGTERM to every service started by start_service, then waits for each to exit.
stop_services() {
  local p
  for p in "${service_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${service_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

# start_moto DIR BUCKET...: moto_server, a real S3 API in Python (scripts/install-moto.sh's, or
# $MOTO_SERVER), on a free loopback port with its log in DIR/moto.log; waits until it answers, then creates
# each BUCKET (an unsigned PUT, which moto accepts). Sets moto_url (http://127.0.0.1:PORT).
start_moto() {
  local dir=$1 moto=${MOTO_SERVER:-$(dirname "${BASH_SOURCE[0]}")/../../target/tools/moto-venv/bin/moto_server}
  shift
  [[ -x $moto ]] || { echo "$moto missing: run scripts/install-moto.sh" >&2; return 1; }
  local port bucket
  port=$(free_port)
  start_service "$dir/moto.log" "$moto" -H 127.0.0.1 -p "$port"
  moto_url=http://127.0.0.1:$port
  wait_ready "$moto_url/" 30 "$service_pid" "$dir/moto.log" || return 1
  for bucket in "$@"; do curl -fsS -X PUT "$moto_url/$bucket" >/dev/null || return 1; done
}
