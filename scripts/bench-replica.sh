#!/usr/bin/env bash
# Benchmark (not a test): registry replication on loopback, against moto_server (a real S3 API).
#  1. publish -> visible on a replica, over PUBLISHES publishes, twice in the same run:
#     push path  = `serve --snapshot-to` pushes on each publish and announces it at /v1/registry/events;
#                  the replica follows the events (--primary) and polls only hourly;
#     poll alone = the same primary, a replica without --primary polling latest.json every POLL.
#     Clock: from the moment `publish` exits (the version is recorded on the primary) to the first
#     answer 200 for its manifest on the replica (polled every 5 ms). Target: push-path p95 < 1 s.
#  2. `snapshot push` time and snapshot size for a registry of VERSIONS versions.
# Statistics: scripts/lib/benchstats.py (nearest-rank percentiles).
# Needs: models/ (scripts/fetch-models.sh), target/release/model-server, moto (scripts/install-moto.sh).
# Every process it starts (moto, the primary, both replicas) is stopped when it exits.
# Env: PUBLISHES (default 20), POLL (default 1s), VERSIONS (default 1000), MODEL_SERVER_BIN.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1 # scripts/lib is imported: leave no __pycache__ in the tree
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR/.. source=scripts/lib/service.sh
source scripts/lib/service.sh
PUBLISHES=${PUBLISHES:-20}
POLL=${POLL:-1s}
VERSIONS=${VERSIONS:-1000}

bin=${MODEL_SERVER_BIN:-$root/target/release/model-server}
[[ -x $bin ]] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }
bundle=$root/models/all-MiniLM-L6-v2/int8
[[ -f $bundle/manifest.json ]] || { echo "run scripts/fetch-models.sh first" >&2; exit 1; }

work=$(mktemp -d)
trap 'stop_services; rm -rf "$work"' EXIT

start_moto "$work" bench bench-big
export AWS_ENDPOINT_URL=$moto_url AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export MODEL_SERVER_TOKEN=bench-token
echo "$MODEL_SERVER_TOKEN" >"$work/token"

# A distinct, loadable bundle per publish: the int8 bundle with N spaces after its tokenizer.json.
make_bundle() { # DIR VERSION N
  mkdir -p "$1"
  cp "$bundle/model.onnx" "$1/"
  python3 - "$bundle" "$1" "$2" "$3" <<'PY'
import hashlib, json, sys
src, dst, version, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tok = open(f"{src}/tokenizer.json", "rb").read() + b" " * n
open(f"{dst}/tokenizer.json", "wb").write(tok)
m = json.load(open(f"{src}/manifest.json"))
m["version"] = version
for f in m["files"]:
    if f["path"] == "tokenizer.json":
        f["size"], f["sha256"] = len(tok), hashlib.sha256(tok).hexdigest()
open(f"{dst}/manifest.json", "w").write(json.dumps(m, indent=2))
PY
}

primary=$work/primary
"$bin" publish --data "$primary" "$bundle" --alias latest >/dev/null
p_port=$(free_port)
start_service "$work/primary.log" "$bin" serve --data "$primary" --addr "127.0.0.1:$p_port" \
  --snapshot-to s3://bench/registry
wait_ready "http://127.0.0.1:$p_port/readyz" 30 "$service_pid" "$work/primary.log"

# Starts a replica and waits for it; sets replica_port. Runs in this shell (not in $(...)), so that
# stop_services ends it with the rest.
start_replica() { # NAME EXTRA-ARGS...
  local name=$1
  shift
  replica_port=$(free_port)
  start_service "$work/$name.log" "$bin" replica --from s3://bench/registry --data "$work/$name" \
    --store "$primary/blobs" --addr "127.0.0.1:$replica_port" "$@"
  wait_ready "http://127.0.0.1:$replica_port/readyz" 30 "$service_pid" "$work/$name.log"
}
start_replica push --every 1h --primary "http://127.0.0.1:$p_port" --primary-token-file "$work/token"
push_port=$replica_port
start_replica poll --every "$POLL"
poll_port=$replica_port

samples=$work/samples.jsonl
# Measures each publish -> visible on the replica at PORT, as samples of SUBJECT.
measure() { # SUBJECT PORT FIRST
  local subject=$1 port=$2 first=$3 i v
  for ((i = first; i < first + PUBLISHES; i++)); do
    v=bench-$i
    make_bundle "$work/b/$v" "$v" "$i"
    "$bin" publish --data "$primary" "$work/b/$v" --alias latest >/dev/null
    python3 - "$port" "$v" "$subject" >>"$samples" <<'PY'
import http.client, sys, time
sys.path.insert(0, "scripts/lib")
import benchstats
port, version, subject = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.monotonic()
while True:
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
    c.request("GET", f"/v1/models/all-MiniLM-L6-v2/{version}/manifest.json")
    status = c.getresponse().status
    c.close()
    if status == 200:
        break
    if time.monotonic() - start > 120:
        sys.exit(f"{version} not visible on the replica after 120 s")
    time.sleep(0.005)
print(benchstats.sample_line("replica", subject, "visible_ms", (time.monotonic() - start) * 1000))
PY
  done
}
measure "push path (events)" "$push_port" 0
measure "poll alone (every $POLL)" "$poll_port" "$PUBLISHES"

# Snapshot of a registry of VERSIONS versions: copies of one version's rows (the snapshot holds metadata
# only: manifests and file rows, no blobs).
big=$work/big
"$bin" publish --data "$big" "$bundle" >/dev/null
sqlite3 "$big/registry.sqlite" <<SQL
WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < $VERSIONS)
INSERT INTO versions (model, version, manifest, manifest_sha256, total_size, published_at)
  SELECT model, 'v' || i, manifest, manifest_sha256, total_size, published_at + i FROM versions, n;
INSERT INTO files (model, version, path, role, size, sha256)
  SELECT f.model, v.version, f.path, f.role, f.size, f.sha256
  FROM files f JOIN versions v ON v.version LIKE 'v%' AND f.version = '1.0.0-int8';
UPDATE meta SET value = value + 1 WHERE key = 'generation';
SQL
count=$(sqlite3 "$big/registry.sqlite" 'SELECT count(*) FROM versions')
t0=$(date +%s%N)
out=$("$bin" snapshot push --data "$big" --to s3://bench-big/registry)
t1=$(date +%s%N)
push_ms=$(((t1 - t0) / 1000000))
echo "$out" >&2

echo
echo "## publish -> visible on a replica ($PUBLISHES publishes each, loopback, moto_server)"
echo
python3 scripts/lib/benchstats.py table "$samples" \
  --columns "visible_ms:p50:p50 ms,visible_ms:p95:p95 ms,visible_ms:max:max ms,visible_ms:n:n"
python3 - "$samples" <<'PY'
import sys
sys.path.insert(0, "scripts/lib")
import benchstats
s = benchstats.read_files([sys.argv[1]])
push = [v for (b, subj, m), v in s.items() if subj.startswith("push")][0]
p95 = benchstats.percentile(push, 95)
print(f"\npush-path p95 = {p95:.0f} ms (target < 1000 ms: {'met' if p95 < 1000 else 'NOT met'})")
PY
echo
echo "## snapshot push, registry of $count versions"
echo
echo "$out" | python3 -c '
import re, sys
line = sys.stdin.read()
m = re.search(r"\((\d+) bytes, (\d+) bytes uncompressed\) in (\d+) ms", line)
size, raw, ms = (int(g) for g in m.groups())
print("| versions | database | snapshot (gzip) | push (CLI, wall) | push (in process) |")
print("|---|---|---|---|---|")
print(f"| '"$count"' | {raw / 1e6:.2f} MB | {size / 1e6:.2f} MB | '"$push_ms"' ms | {ms} ms |")
'
