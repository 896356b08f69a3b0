#!/usr/bin/env python3
"""Where onnxruntime (1 thread) spends a single sentence's time, per op type (issue #18).

Not a test: a measurement behind akidb-core/PERF.md ("Native single-sentence profile"), the peer's side
of the breakdown `scripts/profile-single.sh` makes for akidb. Runs the bench's single sentence
(akidb-native/src/bench_sentences.json) `--runs` times with onnxruntime's profiler on, drops the first
`--warmup` runs, and prints per op type the summed kernel time per run, the number of nodes, and the
whole `session.run` time per run (tokenisation and pooling are not in it; they are timed apart).

    /tmp/v/bin/python akidb-core/benches/ort_profile.py --bundle models/all-MiniLM-L6-v2/int8
"""
import argparse
import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    bundle = Path(args.bundle)
    text = json.loads((ROOT / "akidb-native/src/bench_sentences.json").read_text())["single"]
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)

    # Tokenisation and pooling, timed apart from the model (the same work scripts/bench_peers.py does).
    t = time.perf_counter()
    for _ in range(args.runs):
        enc = tok.encode_batch([text])
    tok_us = (time.perf_counter() - t) / args.runs * 1e6
    ids = np.array([enc[0].ids], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}

    plain = ort.SessionOptions()
    plain.intra_op_num_threads = 1
    plain.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(bundle / "model.onnx"), plain, providers=["CPUExecutionProvider"])
    for _ in range(args.warmup):
        sess.run(None, feed)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        hidden = sess.run(None, feed)[0]
        times.append(time.perf_counter() - t)
    run_us = float(np.median(times)) * 1e6
    t = time.perf_counter()
    for _ in range(args.runs):
        m = np.ones((1, ids.shape[1], 1), dtype=np.float32)
        pooled = (hidden * m).sum(1) / m.sum(1)
        pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    pool_us = (time.perf_counter() - t) / args.runs * 1e6

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(str(bundle / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        for _ in range(args.warmup + args.runs):
            sess.run(None, feed)
        events = json.load(open(sess.end_profiling()))
    per_op = collections.defaultdict(float)
    nodes = collections.defaultdict(set)
    model_runs = [e for e in events if e.get("name") == "model_run"][args.warmup:]
    start = model_runs[0]["ts"]
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
            continue
        op = e["args"].get("op_name", "?")
        per_op[op] += e["dur"]
        nodes[op].add(e["name"])
    runs = len(model_runs)
    total = sum(per_op.values()) / runs
    print(f"onnxruntime {ort.__version__}, 1 thread, {ids.shape[1]} tokens, {runs} profiled runs")
    print(f"session.run median (profiler off): {run_us:.0f} us; tokenise {tok_us:.0f} us; "
          f"pool + normalise (numpy) {pool_us:.0f} us")
    print(f"sum of node kernel times per run (profiler on): {total:.0f} us; profiled model_run median "
          f"{np.median([e['dur'] for e in model_runs]):.0f} us")
    print("| op type | nodes | us per run | share of node time |")
    print("|---|---|---|---|")
    for op, us in sorted(per_op.items(), key=lambda kv: -kv[1]):
        print(f"| {op} | {len(nodes[op])} | {us / runs:.0f} | {us / runs / total:.1%} |")


if __name__ == "__main__":
    main()
