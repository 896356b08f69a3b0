#!/usr/bin/env python3
"""onnxruntime (Python) on the same bundle and the same sentences as `akidb bench`.

Prints one JSON object with the fields `akidb bench --json` prints, so scripts/bench-core.sh can put
them side by side: the raw samples (single_samples_ms, batch32_samples_ms) and figures computed from
them by scripts/lib/benchstats.py (nearest-rank percentiles, the one definition). End to end like akidb:
tokenize, run, mean-pool over the mask, L2-normalise; the batch is padded to its longest sentence, as onnxruntime users (and sentence-transformers) do.
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts/lib"))
import benchstats  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--single-runs", type=int, default=200)
    ap.add_argument("--batch-rounds", type=int, default=10)
    args = ap.parse_args()
    bundle = Path(args.bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    sentences = json.loads((ROOT / "akidb-native/src/bench_sentences.json").read_text())

    t0 = time.perf_counter()
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(manifest["max_seq_length"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(bundle / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    names = {i.name for i in sess.get_inputs()}

    def embed(texts):
        encs = tok.encode_batch(texts)
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, e in enumerate(encs):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(1) / m.sum(1)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    single = [sentences["single"]]
    t = time.perf_counter()
    embed(single)
    first_ms = (time.perf_counter() - t) * 1e3
    for _ in range(5):
        embed(single)
    times = []
    for _ in range(args.single_runs):
        t = time.perf_counter()
        embed(single)
        times.append((time.perf_counter() - t) * 1e3)
    batch = sentences["batch"]
    embed(batch)
    btimes = []
    for _ in range(args.batch_rounds):
        t = time.perf_counter()
        embed(batch)
        btimes.append((time.perf_counter() - t) * 1e3)
    batch_ms = benchstats.median(btimes)
    print(json.dumps({
        "model": f"onnxruntime {ort.__version__} threads={args.threads}",
        "load_s": load_s,
        "first_ms": first_ms,
        "single_tokens": len(tok.encode(single[0]).ids),
        "single_p50_ms": benchstats.percentile(times, 50),
        "single_p95_ms": benchstats.percentile(times, 95),
        "batch_tokens": sum(len(e.ids) for e in tok.encode_batch(batch)),
        "batch32_ms": batch_ms,
        "sentences_per_s": len(batch) / (batch_ms / 1e3),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "single_samples_ms": times,
        "batch32_samples_ms": btimes,
    }))


if __name__ == "__main__":
    main()
