#!/usr/bin/env python3
"""The make bench-wasm tables, from the raw samples akidb-wasm/tests/js/bench.mjs wrote.

Every figure comes from scripts/lib/benchstats.py (nearest-rank percentiles; median = p50, the lower middle
sample for an even count), the one definition all of the repository's benchmarks use.

  bench_table.py SAMPLES.jsonl     (reads SAMPLES.meta.json beside it)

Prints: each @akidb/wasm build (wasm-threads, wasm-relaxed-simd, wasm-simd: those the runtime runs) beside
onnxruntime-web where each ran (Node, then each browser engine), with wasm memory and the .wasm sizes per
build, and the engines side by side (warm single-sentence latency, batch throughput, cold starts).
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
    # The @akidb/wasm builds, best first; each runtime ran those it supports (meta["variants"]).
    variants = [
        v for v in ("wasm-threads", "wasm-relaxed-simd", "wasm-simd") if any(v in meta["variants"][w] for w in where)
    ]
    akidb = {v: f"akidb:{v}" for v in variants}
    print(
        f"@akidb/wasm (each build the runtime runs) on the {meta.get('bundle', 'int8')} bundle vs onnxruntime-web "
        f"1.30 (wasm SIMD, 1 thread) on the int8 bundle's model file, all-MiniLM-L6-v2, {meta['rounds']} "
        f"interleaved rounds; {', '.join(meta['engines'].values())}; "
        f"wasm-threads in worker mode on {meta['threads']} threads"
    )
    print(
        "builds run: " + "; ".join(f"{short[w]}: {', '.join(meta['variants'][w])}" for w in where)
        + f"\nmin cosine akidb vs ORT on the batch: {meta['minCosine']:.6f}; akidb matmul kernels: "
        f"{', '.join(meta['kernels'])}\n"
    )

    rows = []

    def row(label, metric, name="median", digits=1, ort_metric=None):
        a = {v: get(f"{w}/{akidb[v]}", metric, name) for v in variants}
        o = get(f"{w}/ort", ort_metric or metric, name)
        if any(x is not None for x in a.values()) or o is not None:
            rows.append(
                [f"{short[w]}: {label}"] + [fmt(a[v], digits) for v in variants] + [fmt(o, digits)]
                + [ratio(a[v], o) for v in variants]
            )

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
            row(
                "akidb IndexedDB → first embedding vs ORT first session creation (ms)",
                "idb_first_embedding_ms", digits=0, ort_metric="first_session_ms",
            )
        row("RSS growth after the runs (MB)", "rss_growth_mb", digits=0)
        row("wasm linear memory after the runs (MB)", "wasm_memory_mb", digits=0)
    for k, label in (("raw", "raw"), ("gzip", "gzip -9")):
        a = {v: meta["wasm"][akidb[v]][k] for v in variants}
        o = meta["wasm"]["ort"][k]
        rows.append([f".wasm {label} (MB)"] + [fmt(a[v], 2) for v in variants] + [fmt(o, 2)] + [ratio(a[v], o) for v in variants])
    print(
        benchstats.markdown_table(
            [""] + [f"@akidb/wasm {v}" for v in variants] + ["onnxruntime-web"] + [f"{v} / ORT" for v in variants],
            rows,
        )
    )

    browsers = [w for w in where if w != "node"]
    # The threads build against the same code on one thread (wasm-simd: simd128 kernels, no relaxed SIMD).
    for w in browsers:
        t = get(f"{w}/akidb:wasm-threads", "batch_sentences_per_s")
        one = get(f"{w}/akidb:wasm-simd", "batch_sentences_per_s")
        if t is not None and one:
            print(
                f"\n{short[w]}: wasm-threads on {meta['threads']} threads, batch throughput {t:.1f} sentences/s = "
                f"{t / one:.2f}× wasm-simd's {one:.1f} on one thread (target ≥ 1.7× at 2 threads)"
            )
    print("\nThe engines side by side (same run, same machine; medians unless said; – where a build does not run)\n")
    side = []
    for v in variants:
        for label, metric, name, digits in (
            (f"warm single, {meta['singleTokens']} tokens, p50 (ms)", "single_ms", "p50", 1),
            ("warm single, p95 (ms)", "single_ms", "p95", 1),
            (f"batch throughput, {meta['batchSentences']} sentences (sentences/s)", "batch_sentences_per_s", "median", 1),
            ("cold start, network → first embedding (ms)", "cold_ms", "median", 0),
            ("IndexedDB → first embedding (ms)", "idb_first_embedding_ms", "median", 0),
        ):
            side.append([f"@akidb/wasm {v}: {label}"] + [fmt(get(f"{w}/{akidb[v]}", metric, name), digits) for w in browsers])
    for label, metric, name in (
        ("onnxruntime-web: warm single, p50 (ms)", "single_ms", "p50"),
        ("onnxruntime-web: batch throughput (sentences/s)", "batch_sentences_per_s", "median"),
    ):
        side.append([label] + [fmt(get(f"{w}/ort", metric, name)) for w in browsers])
    print(benchstats.markdown_table([""] + [short[w] for w in browsers], side))

    for w in browsers:
        for v in meta["variants"][w]:
            phase = {m: fmt(get(f"{w}/{akidb[v]}", m), 0) for m in (
                "idb_fetch_ms", "idb_wasm_ready_ms", "idb_model_ms", "idb_first_embed_ms",
                "net_fetch_ms", "net_wasm_ready_ms", "net_model_ms", "net_first_embed_ms")}
            print(
                f"\n{short[w]} {v}, where the time goes (ms, medians). From IndexedDB: bundle read and hashed (WebCrypto) "
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
