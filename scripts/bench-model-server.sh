#!/usr/bin/env bash
# Benchmark (not a test): model-server against nginx, and model-server's two blob stores against each other,
# on loopback, in the same run, with wrk:
#  1. concurrent downloads of the 23 MB int8 model blob (throughput, MB/s) from nginx, from model-server with
#     the local store (DATA/blobs) and from model-server with the S3 store (`--store s3://bench/blobs`) on
#     moto_server;
#  2. manifest requests per second and p99 latency, nginx against model-server (local store; a manifest
#     comes from the registry, never from the blob store, so the store makes no difference there).
# nginx serves the very same files at the very same URLs from a plain directory (sendfile on).
# Targets (issue 4): blob throughput >= 0.8x nginx's; manifest p99 <= 2x nginx's. The S3 column has no
# target (issue 15 asks for the figure).
# moto_server is an emulator, in Python (one process, objects in memory): the S3 store's figure is bounded
# by moto, not by the store. It is a lower bound of what the store achieves against a faster endpoint, and
# says nothing about AWS S3 (other latency, per-connection throughput and limits, never on loopback).
# Needs: models/ (scripts/fetch-models.sh); target/release/model-server (built with the CI feature set when
# missing); moto (scripts/install-moto.sh, run here); installs nginx and wrk from Debian if missing.
# Env: DURATION (default 10s), BLOB_CONN (default 8), MANIFEST_CONN (default 32).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/service.sh
source scripts/lib/service.sh
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/prereqs.sh
source scripts/lib/prereqs.sh
DURATION=${DURATION:-10s}
BLOB_CONN=${BLOB_CONN:-8}
MANIFEST_CONN=${MANIFEST_CONN:-32}

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk >/dev/null
fi
bundle=$root/models/all-MiniLM-L6-v2/int8
[[ -f $bundle/manifest.json ]] || bash scripts/fetch-models.sh >&2
[[ -x target/release/model-server ]] || build_workspace >&2
bash scripts/install-moto.sh >&2
bin=$root/target/release/model-server
name=all-MiniLM-L6-v2
version=1.0.0-int8

work=$(mktemp -d)
cleanup() {
  stop_services
  # nginx daemonises (not a child of this shell): its pid file.
  if [[ -f $work/nginx.pid ]]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; sleep 0.3; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The S3 store: moto on loopback with a bucket `bench`, test credentials, the endpoint given by flags.
start_moto "$work" bench
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
s3_args=(--store s3://bench/blobs --s3-endpoint "$moto_url" --s3-region us-east-1 --s3-allow-http)

"$bin" publish --data "$work/data" "$bundle" --alias latest >/dev/null
"$bin" publish --data "$work/s3-data" "${s3_args[@]}" "$bundle" --alias latest >/dev/null
model_sha=$(python3 -c "import json,sys; m=json.load(open('$bundle/manifest.json')); print([f['sha256'] for f in m['files'] if f['role']=='model'][0])")
blob_path=/v1/blobs/sha256/$model_sha
manifest_path=/v1/models/$name/$version/manifest.json

# nginx: same URLs, same bytes.
mkdir -p "$work/www/v1/blobs/sha256" "$work/www/v1/models/$name/$version" "$work/nginx-tmp"
cp "$bundle/model.onnx" "$work/www$blob_path"
cp "$bundle/manifest.json" "$work/www$manifest_path"
ms_port=$(free_port)
s3_port=$(free_port)
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
export RUST_LOG=warn
start_service "$work/ms.log" "$bin" serve --data "$work/data" --addr "127.0.0.1:$ms_port" --read-only
wait_ready "http://127.0.0.1:$ms_port/readyz" 30 "$service_pid" "$work/ms.log"
start_service "$work/s3.log" "$bin" serve --data "$work/s3-data" "${s3_args[@]}" --addr "127.0.0.1:$s3_port" \
  --read-only
wait_ready "http://127.0.0.1:$s3_port/readyz" 30 "$service_pid" "$work/s3.log"
for port in "$ms_port" "$s3_port" "$ng_port"; do
  curl -fsS "http://127.0.0.1:$port$blob_path" | cmp - "$bundle/model.onnx"
  curl -fsS "http://127.0.0.1:$port$manifest_path" | cmp - "$bundle/manifest.json"
done

# wrk counts a request slower than its timeout (default 2 s) as an error and leaves it out of the latency:
# a 23 MB download from moto at 8 connections can take that long, so the timeout is 60 s.
run() { # port path connections name -> $work/wrk-NAME.txt
  wrk -t2 -c"$3" -d"$DURATION" --timeout 60s --latency "http://127.0.0.1:$1$2" > "$work/wrk-$4.txt"
}
echo "wrk: $DURATION per run; blob: $BLOB_CONN connections; manifest: $MANIFEST_CONN connections; $(nproc) cores" >&2
run "$ng_port" "$blob_path" "$BLOB_CONN" nginx-blob
run "$ms_port" "$blob_path" "$BLOB_CONN" ms-blob
run "$s3_port" "$blob_path" "$BLOB_CONN" s3-blob
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
nb, mb, sb = parse("nginx-blob"), parse("ms-blob"), parse("s3-blob")
nm, mm = parse("nginx-manifest"), parse("ms-manifest")
print("| benchmark | nginx | model-server, local store | local / nginx | target | model-server, S3 store (moto) | S3 / local |")
print("|---|---:|---:|---:|---|---:|---:|")
r = mb[1] / nb[1]
print(f"| 23 MB blob, throughput (MB/s) | {nb[1]:.0f} | {mb[1]:.0f} | {r:.2f}x | >= 0.8x {'PASS' if r >= 0.8 else 'MISS'} "
      f"| {sb[1]:.0f} | {sb[1] / mb[1]:.2f}x |")
print(f"| 23 MB blob, downloads/s | {nb[0]:.1f} | {mb[0]:.1f} | {mb[0]/nb[0]:.2f}x | | {sb[0]:.1f} | {sb[0] / mb[0]:.2f}x |")
print(f"| 23 MB blob, p99 latency (ms) | {nb[2]:.1f} | {mb[2]:.1f} | {mb[2]/nb[2]:.2f}x | | {sb[2]:.1f} | {sb[2] / mb[2]:.2f}x |")
print(f"| manifest, requests/s | {nm[0]:.0f} | {mm[0]:.0f} | {mm[0]/nm[0]:.2f}x | | | |")
r = mm[2] / nm[2]
print(f"| manifest, p99 latency (ms) | {nm[2]:.2f} | {mm[2]:.2f} | {r:.2f}x | <= 2x {'PASS' if r <= 2 else 'MISS'} | | |")
PY
