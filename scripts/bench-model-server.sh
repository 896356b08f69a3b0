#!/usr/bin/env bash
# Benchmark (not a test): model-server against nginx on loopback, in the same run, with wrk.
#  1. concurrent downloads of the 23 MB int8 model blob (throughput, MB/s);
#  2. manifest requests per second and p99 latency.
# nginx serves the very same files at the very same URLs from a plain directory (sendfile on).
# Targets (issue 4): blob throughput >= 0.8x nginx's; manifest p99 <= 2x nginx's.
# Needs: models/ (scripts/fetch-models.sh); installs nginx and wrk from Debian if missing.
# Env: DURATION (default 10s), BLOB_CONN (default 8), MANIFEST_CONN (default 32).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
DURATION=${DURATION:-10s}
BLOB_CONN=${BLOB_CONN:-8}
MANIFEST_CONN=${MANIFEST_CONN:-32}

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk >/dev/null
fi
[[ -x target/release/model-server ]] || cargo build --release --workspace
bin=$root/target/release/model-server
bundle=$root/models/all-MiniLM-L6-v2/int8
name=all-MiniLM-L6-v2
version=1.0.0-int8

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -f $work/nginx.pid ]]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" publish --data "$work/data" "$bundle" --alias latest >/dev/null
model_sha=$(python3 -c "import json,sys; m=json.load(open('$bundle/manifest.json')); print([f['sha256'] for f in m['files'] if f['role']=='model'][0])")
blob_path=/v1/blobs/sha256/$model_sha
manifest_path=/v1/models/$name/$version/manifest.json

# nginx: same URLs, same bytes.
mkdir -p "$work/www/v1/blobs/sha256" "$work/www/v1/models/$name/$version" "$work/nginx-tmp"
cp "$bundle/model.onnx" "$work/www$blob_path"
cp "$bundle/manifest.json" "$work/www$manifest_path"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ms_port=$(free_port)
ng_port=$(free_port)
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
daemon on;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $work/nginx-tmp; proxy_temp_path $work/nginx-tmp; fastcgi_temp_path $work/nginx-tmp;
  uwsgi_temp_path $work/nginx-tmp; scgi_temp_path $work/nginx-tmp;
  types { application/json json; application/octet-stream onnx; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$ng_port;
    root $work/www;
    add_header Cache-Control "public, max-age=31536000, immutable";
  }
}
CONF
# nginx's workers run as www-data: let them read the files (mktemp makes a private directory).
chmod -R a+rX "$work"
nginx -c "$work/nginx.conf"
RUST_LOG=warn "$bin" serve --data "$work/data" --addr "127.0.0.1:$ms_port" --read-only 2>"$work/ms.log" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$ms_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
for port in "$ms_port" "$ng_port"; do
  curl -fsS "http://127.0.0.1:$port$blob_path" | cmp - "$bundle/model.onnx"
  curl -fsS "http://127.0.0.1:$port$manifest_path" | cmp - "$bundle/manifest.json"
done

run() { # server port path connections -> wrk output file
  wrk -t2 -c"$3" -d"$DURATION" --latency "http://127.0.0.1:$1$2" > "$work/wrk-$4.txt"
}
echo "wrk: $DURATION per run; blob: $BLOB_CONN connections; manifest: $MANIFEST_CONN connections; $(nproc) cores" >&2
run "$ng_port" "$blob_path" "$BLOB_CONN" nginx-blob
run "$ms_port" "$blob_path" "$BLOB_CONN" ms-blob
run "$ng_port" "$manifest_path" "$MANIFEST_CONN" nginx-manifest
run "$ms_port" "$manifest_path" "$MANIFEST_CONN" ms-manifest

python3 - "$work" <<'PY'
import re, sys
work = sys.argv[1]
units = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
tunits = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
def parse(name):
    t = open(f"{work}/wrk-{name}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", t)
    mbs = float(m.group(1)) * units[m.group(2)] / 1e6
    m = re.search(r"99%\s+([\d.]+)(\w+)", t)
    p99 = float(m.group(1)) * tunits[m.group(2)]
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    sock = re.search(r"Socket errors: (.*)", t)
    if errs or sock:
        print(f"warning: {name}: {errs.group(0) if errs else ''} {sock.group(0) if sock else ''}", file=sys.stderr)
    return rps, mbs, p99
nb, mb = parse("nginx-blob"), parse("ms-blob")
nm, mm = parse("nginx-manifest"), parse("ms-manifest")
print("| benchmark | nginx | model-server | ratio | target |")
print("|---|---:|---:|---:|---|")
r = mb[1] / nb[1]
print(f"| 23 MB blob, throughput (MB/s) | {nb[1]:.0f} | {mb[1]:.0f} | {r:.2f}x | >= 0.8x {'PASS' if r >= 0.8 else 'MISS'} |")
print(f"| 23 MB blob, downloads/s | {nb[0]:.1f} | {mb[0]:.1f} | {mb[0]/nb[0]:.2f}x | |")
print(f"| 23 MB blob, p99 latency (ms) | {nb[2]:.1f} | {mb[2]:.1f} | {mb[2]/nb[2]:.2f}x | |")
print(f"| manifest, requests/s | {nm[0]:.0f} | {mm[0]:.0f} | {mm[0]/nm[0]:.2f}x | |")
r = mm[2] / nm[2]
print(f"| manifest, p99 latency (ms) | {nm[2]:.2f} | {mm[2]:.2f} | {r:.2f}x | <= 2x {'PASS' if r <= 2 else 'MISS'} |")
PY
