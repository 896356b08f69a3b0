"""Closed-loop HTTP load on `akidb serve`: CONCURRENCY clients, each POSTing one sentence per request to
/v1/embed over its own keep-alive connection for DURATION seconds; prints one JSON object (QPS, latency
percentiles, errors). Clients are spread over processes (8 threads each) so that Python's GIL does not cap
the rate. Standard library only. Usage: load.py ADDR SENTENCES_JSON CONCURRENCY DURATION_S
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import sys
import threading
import time

THREADS_PER_PROCESS = 8


def client(addr: str, texts: list[str], until: float, offset: int, out: list, errors: list) -> None:
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    i = offset
    while time.monotonic() < until:
        body = json.dumps({"texts": [texts[i % len(texts)]]})
        i += 1
        t = time.monotonic()
        try:
            conn.request("POST", "/v1/embed", body, {"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)
                continue
        except (OSError, http.client.HTTPException) as e:
            errors.append(type(e).__name__)
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            continue
        out.append(time.monotonic() - t)


def process(args) -> tuple[list[float], list]:
    addr, texts, until, threads, first = args
    latencies: list[float] = []
    errors: list = []
    workers = [
        threading.Thread(target=client, args=(addr, texts, until, first + k * 7, latencies, errors)) for k in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies, errors


def main() -> None:
    addr, sentences, concurrency, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    data = json.load(open(sentences))
    texts = [data["single"], *data["batch"]]
    start = time.monotonic()
    until = start + duration
    jobs = []
    left = concurrency
    while left > 0:
        n = min(THREADS_PER_PROCESS, left)
        jobs.append((addr, texts, until, n, concurrency - left))
        left -= n
    with multiprocessing.Pool(len(jobs)) as pool:
        results = pool.map(process, jobs)
    elapsed = time.monotonic() - start
    latencies = sorted(x for r in results for x in r[0])
    errors = [e for r in results for e in r[1]]
    pick = lambda p: latencies[min(len(latencies) - 1, round((len(latencies) - 1) * p))] * 1e3 if latencies else None  # noqa: E731
    print(json.dumps({
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "requests": len(latencies),
        "qps": len(latencies) / elapsed,
        "p50_ms": pick(0.5),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors}),
    }))


if __name__ == "__main__":
    main()
