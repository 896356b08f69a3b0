"""Summary of a scripts/gpu/run.sh run: reads its outputs in OUT and prints (and writes OUT/summary.md) the
figures issue #20 asks for, with the golden bars checked. Exit 1 if a bar fails or a step failed.
Usage: report.py OUT GOLDEN_DIR DEVICE [FAILED_STEP ...]
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

INT8_MIN, INT8_MEAN = 0.995, 0.999


def load_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def jsonl_vectors(path: str, key: str):
    try:
        with open(path) as f:
            return [json.loads(line)[key] for line in f if line.strip()]
    except (OSError, ValueError):
        return None


def main() -> int:
    out, golden_dir, device, *failed = sys.argv[1:]
    lines = [f"# GPU run ({device})", ""]
    ok = not failed
    if failed:
        lines.append(f"FAILED steps: {', '.join(failed)}")
    golden_ids = json.load(open(os.path.join(golden_dir, "token_ids.json")))["token_ids"]
    reference = np.fromfile(os.path.join(golden_dir, "embeddings.f32"), dtype="<f4").reshape(len(golden_ids), -1)

    ids = jsonl_vectors(os.path.join(out, "akidb-token-ids.jsonl"), "ids")
    if ids is not None:
        same = sum(a == b for a, b in zip(ids, golden_ids))
        ok &= same == len(golden_ids) and len(ids) == len(golden_ids)
        lines.append(f"- token ids identical to golden: {same}/{len(golden_ids)}")
    gpu = jsonl_vectors(os.path.join(out, "akidb-gpu.jsonl"), "embedding")
    cpu = jsonl_vectors(os.path.join(out, "akidb-cpu.jsonl"), "embedding")
    if gpu is not None and len(gpu) == len(reference):
        g = np.array(gpu, dtype=np.float32)
        cos = (g * reference).sum(1) / np.linalg.norm(g, axis=1) / np.linalg.norm(reference, axis=1)
        bar = cos.min() >= INT8_MIN and cos.mean() >= INT8_MEAN
        ok &= bool(bar)
        lines.append(f"- akidb on {device} vs golden: min cosine {cos.min():.6f}, mean {cos.mean():.6f} "
                     f"(bars {INT8_MIN} / {INT8_MEAN}: {'PASS' if bar else 'FAIL'})")
        if cpu is not None and len(cpu) == len(gpu):
            lines.append(f"- akidb {device} vs cpu: max abs diff {np.abs(g - np.array(cpu, dtype=np.float32)).max():.3g}")
        st = os.path.join(out, "st-fp32.f32")
        if os.path.exists(st):
            s = np.fromfile(st, dtype=np.float32).reshape(len(reference), -1)
            lines.append(f"- akidb {device} vs sentence-transformers fp32 (same int8-derived weights): max abs diff {np.abs(g - s).max():.3g}")
    else:
        ok = False
        lines.append(f"- akidb on {device}: no vectors")

    bench = load_json(os.path.join(out, "akidb-bench.json"))
    torch = load_json(os.path.join(out, "torch.json"))
    lines += ["", "| engine | single p50 ms | single p95 ms | batch 32 sent/s | batch 256 sent/s |", "|---|---|---|---|---|"]
    if bench:
        lines.append(f"| akidb ({bench['device']}, {bench['device_name']}) | {bench['single_p50_ms']:.2f} | {bench['single_p95_ms']:.2f} "
                     f"| {bench['sentences_per_s']:.0f} | {bench.get('big_batch_sentences_per_s') or float('nan'):.0f} |")
    for precision in ("fp32", "fp16"):
        t = (torch or {}).get(precision)
        if t:
            lines.append(f"| sentence-transformers {precision} ({torch['device']}) | {t['single_p50_ms']:.2f} | {t['single_p95_ms']:.2f} "
                         f"| {t['batch32_sentences_per_s']:.0f} | {t['batch256_sentences_per_s']:.0f} |")
    if bench:
        lines.append("")
        lines.append(f"- akidb load {bench['load_s']:.2f} s, first embedding {bench['first_ms']:.0f} ms, peak RSS {bench['peak_rss_mb']:.0f} MB")
        lines.append(f"- ops tract-cuda left on the CPU: {', '.join(bench['host_ops']) or 'none'}")
        if torch and torch.get("fp32") and bench.get("big_batch_sentences_per_s"):
            ratio = bench["big_batch_sentences_per_s"] / torch["fp32"]["batch256_sentences_per_s"]
            lines.append(f"- batch 256: akidb / sentence-transformers fp32 = {ratio:.2f}x (goal >= 1)")
        lines.append(f"- single-sentence p95 {bench['single_p95_ms']:.2f} ms (goal <= 2 ms)")
    if torch:
        lines.append(f"- sentence-transformers (torch {torch['torch']}): token ids identical {torch['token_ids_identical']}/{len(golden_ids)}, "
                     f"golden min cosine {torch['golden_min_cosine']:.6f}, mean {torch['golden_mean_cosine']:.6f}"
                     + (f", fp16 vs fp32 max abs diff {torch['fp16_max_abs_diff_vs_fp32']:.3g}" if "fp16_max_abs_diff_vs_fp32" in torch else ""))
    load = load_json(os.path.join(out, "serve-load.json"))
    if load:
        lines.append(f"- akidb serve --device {device}, concurrency {load['concurrency']}, {load['duration_s']} s: "
                     f"{load['qps']:.0f} QPS, p50 {load['p50_ms']:.2f} ms, p95 {load['p95_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms, "
                     f"errors {load['errors']} {load['error_kinds']}")
        ok &= load["errors"] == 0 and load["requests"] > 0
    for name in ("readyz.txt", "device-metric.txt", "batch-metric.txt"):
        path = os.path.join(out, name)
        if os.path.exists(path):
            lines.append(f"- {name}: {open(path).read().strip()}")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
