#!/usr/bin/env python3
"""The make bench-wasm tables, from the raw samples akidb-wasm/tests/js/bench.mjs wrote.

Every figure comes from scripts/lib/benchstats.py (nearest-rank percentiles; median = p50, the lower middle
sample for an even count), the one definition all of the repository's benchmarks use.

  bench_table.py SAMPLES.jsonl     (reads SAMPLES.meta.json beside it)

Prints: @akidb/wasm against onnxruntime-web where each ran (Node, then each browser engine), and the engines
side by side (warm single-sentence latency, batch throughput, cold starts) in one table.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/lib"))
import benchstats  # noqa: E402


def main(samples_path: str) -> int:
    samples = benchstats.read_files([samples_path])
    with open(samples_path[: -len(".jsonl")] + ".meta.json", encoding="utf-8") as f:
        meta = json.load(f)
    where = list(meta["engines"])  # node, then the browser engines, in the order they ran

    def get(subject: str, metric: str, name: str = "median"):
        xs = samples.get(("wasm", subject, metric))
        return benchstats.stat(xs, name) if xs else None

    def fmt(x, digits=1):
        return "–" if x is None else f"{x:.{digits}f}"

    def ratio(a, o):
        return f"{a / o:.2f}×" if a is not None and o else "–"

    short = {w: meta["engines"][w].split(" (")[0] for w in where}
    print(
        f"@akidb/wasm vs onnxruntime-web 1.30 (wasm SIMD, 1 thread), int8 all-MiniLM-L6-v2, "
        f"{meta['rounds']} interleaved rounds; {', '.join(meta['engines'].values())}"
    )
    print(f"min cosine akidb vs ORT on the batch: {meta['minCosine']:.6f}; akidb matmul kernels: {', '.join(meta['kernels'])}\n")

    rows = []

    def row(label, metric, name="median", digits=1):
        a, o = get(f"{w}/akidb", metric, name), get(f"{w}/ort", metric, name)
        if a is not None or o is not None:
            rows.append([f"{short[w]}: {label}", fmt(a, digits), fmt(o, digits), ratio(a, o)])

    for w in where:
        cold = "disk" if w == "node" else "network"
        row(f"warm single, {meta['singleTokens']} tokens, p50 (ms)", "single_ms", "p50")
        row("warm single, p95 (ms)", "single_ms", "p95")
        row(
            f"batch of {meta['batchSentences']}, {meta['batchTokens']} tokens, ORT pads to "
            f"{meta['batchSentences']}×{meta['longest']}, median (ms)",
            "batch32_ms",
        )
        row("batch throughput, median (sentences/s)", "batch_sentences_per_s")
        row(f"cold start, {cold} → first embedding (ms)", "cold_ms", digits=0)
        if w != "node":
            a, o = get(f"{w}/akidb", "idb_first_embedding_ms"), get(f"{w}/ort", "first_session_ms")
            rows.append([f"{short[w]}: akidb IndexedDB → first embedding vs ORT first session creation (ms)", fmt(a, 0), fmt(o, 0), ratio(a, o)])
        row("RSS growth after the runs (MB)", "rss_growth_mb", digits=0)
        row("wasm linear memory after the runs (MB)", "wasm_memory_mb", digits=0)
    for k, label in (("raw", "raw"), ("gzip", "gzip -9")):
        a, o = meta["wasm"]["akidb"][k], meta["wasm"]["ort"][k]
        rows.append([f".wasm {label} (MB)", fmt(a, 2), fmt(o, 2), ratio(a, o)])
    print(benchstats.markdown_table(["", "@akidb/wasm", "onnxruntime-web", "ratio"], rows))

    browsers = [w for w in where if w != "node"]
    print(f"\nThe engines side by side (same run, same machine; medians unless said)\n")
    side = []
    for label, subject, metric, name, digits in (
        (f"@akidb/wasm: warm single, {meta['singleTokens']} tokens, p50 (ms)", "akidb", "single_ms", "p50", 1),
        ("@akidb/wasm: warm single, p95 (ms)", "akidb", "single_ms", "p95", 1),
        (f"@akidb/wasm: batch throughput, {meta['batchSentences']} sentences (sentences/s)", "akidb", "batch_sentences_per_s", "median", 1),
        ("onnxruntime-web: warm single, p50 (ms)", "ort", "single_ms", "p50", 1),
        ("onnxruntime-web: batch throughput (sentences/s)", "ort", "batch_sentences_per_s", "median", 1),
        ("@akidb/wasm: cold start, network → first embedding (ms)", "akidb", "cold_ms", "median", 0),
        ("@akidb/wasm: IndexedDB → first embedding (ms)", "akidb", "idb_first_embedding_ms", "median", 0),
    ):
        side.append([label] + [fmt(get(f"{w}/{subject}", metric, name), digits) for w in browsers])
    print(benchstats.markdown_table([""] + [short[w] for w in browsers], side))

    for w in browsers:
        phase = {m: fmt(get(f"{w}/akidb", m), 0) for m in (
            "idb_fetch_ms", "idb_wasm_ready_ms", "idb_model_ms", "idb_first_embed_ms",
            "net_fetch_ms", "net_wasm_ready_ms", "net_model_ms", "net_first_embed_ms")}
        print(
            f"\n{short[w]}, where the time goes (ms, medians). From IndexedDB: bundle read and hashed (WebCrypto) "
            f"{phase['idb_fetch_ms']} and .wasm ready {phase['idb_wasm_ready_ms']} (in parallel), fromHashedBundle "
            f"{phase['idb_model_ms']}, first embedding (compiles its plan) {phase['idb_first_embed_ms']}. From the network "
            f"(a first visit): bundle downloaded, verified and cached {phase['net_fetch_ms']}, .wasm ready "
            f"{phase['net_wasm_ready_ms']}, fromHashedBundle {phase['net_model_ms']}, first embedding {phase['net_first_embed_ms']}."
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].endswith(".jsonl"):
        sys.exit("usage: bench_table.py SAMPLES.jsonl (with SAMPLES.meta.json beside it)")
    sys.exit(main(sys.argv[1]))
