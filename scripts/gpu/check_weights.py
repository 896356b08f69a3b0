"""Checks, on the CPU with numpy only, that minilm_weights gives golden-correct vectors: a BERT forward
written with Hugging Face's conventions (Linear weights [out, in], post-LayerNorm, exact GELU) over the
golden token ids, mean-pooled and normalised, against sentence-transformers' reference embeddings. The
GPU run loads the same state dict into transformers' BertModel, so a wrong key, transpose or scale fails
here first, not on the GPU machine. Usage: check_weights.py MODEL_ONNX GOLDEN_DIR
"""

from __future__ import annotations

import json
import sys

import numpy as np

import minilm_weights

INT8_MIN, INT8_MEAN = 0.995, 0.999


def erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and scipy is not needed otherwise.
    s = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-x * x)
    return s * y


def layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def embed(sd: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    cfg = minilm_weights.CONFIG
    heads, hidden = cfg["num_attention_heads"], cfg["hidden_size"]
    d = hidden // heads
    n = len(ids)
    x = sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.position_embeddings.weight"][:n]
    x = x + sd["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, sd["embeddings.LayerNorm.weight"], sd["embeddings.LayerNorm.bias"])

    def lin(x, name):
        return x @ sd[name + ".weight"].T + sd[name + ".bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + "attention.self." + m).reshape(n, heads, d).transpose(1, 0, 2) for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = (scores / scores.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(1, 0, 2).reshape(n, hidden)
        x = layer_norm(lin(ctx, p + "attention.output.dense") + x, sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"])
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
        x = layer_norm(lin(h, p + "output.dense") + x, sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"])
    v = x.mean(0)
    return v / max(np.linalg.norm(v), 1e-12)


def main() -> int:
    model, golden = sys.argv[1], sys.argv[2]
    sd = {k: v.astype(np.float64) for k, v in minilm_weights.state_dict(model).items()}
    token_ids = json.load(open(f"{golden}/token_ids.json"))["token_ids"]
    reference = np.fromfile(f"{golden}/embeddings.f32", dtype="<f4").reshape(len(token_ids), -1)
    cosines = np.array([float(embed(sd, ids) @ (ref / np.linalg.norm(ref))) for ids, ref in zip(token_ids, reference)])
    worst = int(cosines.argmin())
    print(f"numpy BERT on the dequantised int8 weights vs golden: {len(cosines)} sentences, "
          f"min cosine {cosines.min():.6f} (sentence {worst}), mean {cosines.mean():.6f}")
    if cosines.min() < INT8_MIN or cosines.mean() < INT8_MEAN:
        print(f"FAIL: the bars are min >= {INT8_MIN}, mean >= {INT8_MEAN}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
