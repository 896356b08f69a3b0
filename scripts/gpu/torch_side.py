"""The PyTorch side of the GPU run: sentence-transformers on the same GPU, the same sentences and the
same (int8-derived) weights as akidb, in fp32 and fp16.

The model is a sentence-transformers pipeline (Transformer -> mean Pooling -> Normalize) over a Hugging
Face BertModel directory written here: config.json, model.safetensors from minilm_weights (the bundle's
int8 weights dequantised, checked on the CPU by check_weights.py), and the bundle's tokenizer.json.
Writes one JSON object (--out) with the golden checks and the timings, and the fp32 vectors of the golden
sentences (--vectors, float32 rows) for run.sh to compare with akidb's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import minilm_weights  # noqa: E402

INT8_MIN, INT8_MEAN = 0.995, 0.999


def write_model_dir(bundle: str, out: str) -> None:
    from safetensors.torch import save_file

    os.makedirs(out, exist_ok=True)
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in minilm_weights.state_dict(f"{bundle}/model.onnx").items()}
    save_file(sd, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(minilm_weights.CONFIG, f)
    shutil.copy(os.path.join(bundle, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    special = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512, **special}, f)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump(special, f)


def load_model(model_dir: str, device: str):
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(model_dir, max_seq_length=256)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device=device)


def timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return sorted(times)


def pct(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round((len(sorted_ms) - 1) * p))]


def bench(model, sentences: dict, single_runs: int, rounds: int) -> dict:
    single = [sentences["single"]]
    batch = sentences["batch"]
    big = (batch * 8)[:256]
    encode = lambda texts, bs: model.encode(texts, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)  # noqa: E731
    for _ in range(10):
        encode(single, 1)
    singles = timed(lambda: encode(single, 1), single_runs)
    encode(batch, 32)
    b32 = statistics.median(timed(lambda: encode(batch, 32), rounds))
    encode(big, 256)
    b256 = statistics.median(timed(lambda: encode(big, 256), rounds))
    return {
        "single_p50_ms": pct(singles, 0.5),
        "single_p95_ms": pct(singles, 0.95),
        "batch32_ms": b32,
        "batch32_sentences_per_s": len(batch) / (b32 / 1e3),
        "batch256_ms": b256,
        "batch256_sentences_per_s": len(big) / (b256 / 1e3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--sentences", required=True, help="akidb-native/src/bench_sentences.json")
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--single-runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()

    model_dir = os.path.join(args.work, "st-minilm-int8-dequantised")
    write_model_dir(args.bundle, model_dir)
    golden = json.load(open(os.path.join(args.golden, "sentences.json")))
    texts = golden["sentences"] if isinstance(golden, dict) else golden
    golden_ids = json.load(open(os.path.join(args.golden, "token_ids.json")))["token_ids"]
    reference = np.fromfile(os.path.join(args.golden, "embeddings.f32"), dtype="<f4").reshape(len(texts), -1)
    sentences = json.load(open(args.sentences))

    result: dict = {"torch": torch.__version__, "device": args.device}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    model = load_model(model_dir, args.device)
    ids = model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    result["token_ids_identical"] = sum(a == b for a, b in zip(ids, golden_ids))
    vectors = model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    vectors.tofile(args.vectors)
    cos = (vectors * reference).sum(1) / np.linalg.norm(reference, axis=1)
    result["golden_min_cosine"] = float(cos.min())
    result["golden_mean_cosine"] = float(cos.mean())
    result["golden_pass"] = bool(cos.min() >= INT8_MIN and cos.mean() >= INT8_MEAN)
    result["fp32"] = bench(model, sentences, args.single_runs, args.rounds)
    if args.device == "cuda":
        model.half()
        half = model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        result["fp16_max_abs_diff_vs_fp32"] = float(np.abs(half - vectors).max())
        result["fp16"] = bench(model, sentences, args.single_runs, args.rounds)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
