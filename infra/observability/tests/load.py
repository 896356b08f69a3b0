#!/usr/bin/env python3
"""A short mixed load on live services, so every series the dashboards and rules query exists:
embeddings (both APIs) on the regional and device `akidb serve`, invalid requests (422), bursts past the
regional queue (429), manifests, blob ranges and a missing blob (404) on model-server.

    load.py --regional URL --device URL --model-server URL --seconds S
Exits non-zero if a kind of response the checks depend on never came back."""

import argparse
import collections
import json
import sys
import threading
import time
import urllib.error
import urllib.request

TEXTS = ["the edge answers in milliseconds", "a model bundle is content addressed", "offline search in the browser",
         "Jetson devices embed on site", "regional replicas serve the same bundle"]


def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            payload = r.read()
            return r.status, payload
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regional", required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--model-server", required=True)
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--seconds", type=float, default=15)
    a = ap.parse_args()
    seen = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + a.seconds

    def record(kind, status):
        with lock:
            seen[(kind, status)] += 1

    status, manifest = call("GET", f"{a.model_server}/v1/models/{a.model}/latest/manifest.json")
    if status != 200:
        print(f"load: manifest answered {status}", file=sys.stderr)
        return 1
    files = json.loads(manifest)["files"]
    blob = (files[0] if isinstance(files, list) else next(iter(files.values())))["sha256"]

    def embedder(base, kind):
        i = 0
        while time.monotonic() < deadline:
            i += 1
            texts = TEXTS[: 1 + i % 4]
            record(kind + " embed", call("POST", f"{base}/v1/embed", {"texts": texts})[0])
            if i % 3 == 0:
                record(kind + " embeddings", call("POST", f"{base}/v1/embeddings", {"input": texts, "model": a.model})[0])
            if i % 5 == 0:
                record(kind + " invalid", call("POST", f"{base}/v1/embed", {"texts": []})[0])

    def burster():
        # Eight texts per request, eight at once, into a queue of 16 texts: some must be refused with 429.
        while time.monotonic() < deadline:
            threads = [threading.Thread(target=lambda: record("regional burst", call(
                "POST", f"{a.regional}/v1/embed", {"texts": (TEXTS * 2)[:8]})[0])) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(1)

    def model_client():
        while time.monotonic() < deadline:
            record("manifest", call("GET", f"{a.model_server}/v1/models/{a.model}/latest/manifest.json")[0])
            record("blob range", call("GET", f"{a.model_server}/v1/blobs/sha256/{blob}", headers={"Range": "bytes=0-65535"})[0])
            record("missing blob", call("GET", f"{a.model_server}/v1/blobs/sha256/{'0' * 64}")[0])
            time.sleep(0.05)

    workers = [threading.Thread(target=embedder, args=(a.regional, "regional")),
               threading.Thread(target=embedder, args=(a.device, "device")),
               threading.Thread(target=burster), threading.Thread(target=model_client)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for (kind, status), n in sorted(seen.items()):
        print(f"load: {kind} {status} x{n}")
    needed = [("regional embed", 200), ("regional embeddings", 200), ("regional invalid", 422), ("regional burst", 429),
              ("device embed", 200), ("manifest", 200), ("blob range", 206), ("missing blob", 404)]
    missing = [k for k in needed if seen[k] == 0]
    if missing:
        print(f"load: never got {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
