"""The int8 bundle's weights as a Hugging Face BertModel state dict (numpy arrays), dequantised.

The GPU machine cannot hold the 90 MB fp32 model next to everything else that travels (64 MiB in all), so
the PyTorch side is given the very weights akidb runs: each int8 matrix times its scale, as tract's
graph computes it at load. That also makes the comparison like for like (both sides int8-derived).

The int8 export stores a linear layer's weight as `val_N_q` (int8, [in, out]) with `val_N_scale` (f32,
[1, out]): Cast -> Mul(scale) -> MatMul(x, W) -> Add(bias). Its Hugging Face name comes from the bias
that the Add takes (`inner.encoder.layer.3.attention.self.query.bias`); the embedding tables are named
outright (`inner.embeddings.word_embeddings.weight_q`, row scales).
"""

from __future__ import annotations

import collections

import numpy as np

import onnx_lite

PREFIX = "inner."

# all-MiniLM-L6-v2's BertConfig (what sentence-transformers' config.json says).
CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}


def _dequantised(inits: dict[str, np.ndarray], base: str) -> np.ndarray:
    return inits[base + "_q"].astype(np.float32) * inits[base + "_scale"].astype(np.float32)


def state_dict(model_path: str) -> dict[str, np.ndarray]:
    """HF BertModel keys (no pooler) -> float32 arrays, from the int8 bundle's model.onnx."""
    nodes, inits = onnx_lite.read(model_path)
    consumers: dict[str, list[onnx_lite.Node]] = collections.defaultdict(list)
    for node in nodes:
        for name in node.inputs:
            consumers[name].append(node)

    def only(name: str, op: str) -> onnx_lite.Node:
        found = [n for n in consumers[name] if n.op_type == op]
        if len(found) != 1:
            raise ValueError(f"{name}: expected one {op} consumer, found {[n.op_type for n in consumers[name]]}")
        return found[0]

    sd: dict[str, np.ndarray] = {}
    for name, array in inits.items():
        if name.startswith(PREFIX) and array.dtype == np.float32 and not name.endswith("_scale"):
            sd[name[len(PREFIX) :]] = array
    for table in ("word_embeddings", "position_embeddings"):
        sd[f"embeddings.{table}.weight"] = _dequantised(inits, f"{PREFIX}embeddings.{table}.weight")
    for name in inits:
        if not (name.endswith("_q") and name.startswith("val_")):
            continue
        base = name[: -len("_q")]
        cast = only(name, "Cast")
        mul = only(cast.outputs[0], "Mul")
        matmul = only(mul.outputs[0], "MatMul")
        add = only(matmul.outputs[0], "Add")
        bias = [i for i in add.inputs if i.startswith(PREFIX) and i.endswith(".bias")]
        if len(bias) != 1:
            raise ValueError(f"{name}: the Add after its MatMul takes no named bias ({add.inputs})")
        key = bias[0][len(PREFIX) : -len(".bias")] + ".weight"
        sd[key] = np.ascontiguousarray(_dequantised(inits, base).T)  # HF Linear: [out, in]
    sd.pop("embeddings.position_ids", None)
    expected = expected_keys()
    if set(sd) != expected:
        raise ValueError(f"state dict mismatch: missing {sorted(expected - set(sd))}, extra {sorted(set(sd) - expected)}")
    return sd


def expected_keys() -> set[str]:
    keys = {f"embeddings.{t}.weight" for t in ("word_embeddings", "position_embeddings", "token_type_embeddings")}
    keys |= {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"}
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for lin in ("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense", "intermediate.dense", "output.dense"):
            keys |= {p + lin + ".weight", p + lin + ".bias"}
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            keys |= {p + ln + ".weight", p + ln + ".bias"}
    return keys
