#!/usr/bin/env python3
"""Accuracy of an int8 x int8 -> i32 path for all-MiniLM-L6-v2, simulated with onnxruntime (issue #18).

Not a test and not part of the build: a measurement behind akidb-core/PERF.md ("Integer path").

The int8 model keeps its layer weights as int8 with one f32 scale per output column (`Mul(Cast(q),
scale)`, scale shape [1, n]). An integer matmul computes `sum_k p[m,k] * q[k,n]` exactly in i32 and
multiplies by `a[m] * s[n]`, where `x[m,k] ~ a[m] * p[m,k]` is the activation quantised at run time.
So the only new error is the activation rounding, and it is simulated here exactly: before every weight
MatMul the activation is replaced by its fake-quantised value `round(x / a) * a` (ONNX Round: half to
even), then the graph runs in f32 as before (f32 accumulation of those products differs from the exact
i32 sum by ~1e-7 relative, far below the rounding simulated). Modes:

- `none`:            the model as shipped (the exact path today);
- `row-sym`:         per row (per token), symmetric int8, a = max|x| / 127 (what #18 proposes);
- `row-sym-noffn2`:  the same, but the FFN down projection (input: GELU output) kept in f32;
- `tensor-asym-u8`:  one scale and zero point for the whole activation, u8, as onnxruntime's
                     DynamicQuantizeLinear / quantize_dynamic do (scale = (max - min) / 255, range
                     widened to include 0);
- `row-asym-u8`:     per row, u8 with a zero point (the same rule per row);
- `row-mixed`:       `row-sym`, but `row-asym-u8` for the FFN down projection;
- `*-outl`:          the same, but each activation's outlier channels (absmax over the 33 sentences of
                     akidb-native/src/bench_sentences.json, not the golden ones, > OUTLIER_RATIO x the
                     median channel's) stay f32 and are left out of the row's scale: an integer matmul
                     over the other channels plus a small f32 one over these (LLM.int8()'s decomposition
                     with a fixed channel set).
A mode may end in `@class+class` (of qkv, attn_out, ffn_up, ffn_down): only those MatMuls quantised.

Each of the 200 golden sentences runs alone (batch 1, no padding), mean-pooled and L2-normalised as
sentence-transformers does, and is compared with ../shared/golden by cosine. Token ids are checked
against the golden ids.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install onnxruntime onnx tokenizers numpy
    /tmp/v/bin/python akidb-core/benches/int8_dynamic_sim.py [--model models/src/model-int8.onnx]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT.parent / "shared" / "golden"
MODES = ["none", "row-sym", "row-sym-noffn2", "tensor-asym-u8", "row-asym-u8", "row-mixed",
         "row-sym-outl", "row-asym-u8-outl"]
# An outlier channel: its absmax over the calibration sentences is this many times the median channel's.
OUTLIER_RATIO = 6.0
# The four kinds of weight MatMul in each layer, by what feeds them.
CLASSES = ["qkv", "attn_out", "ffn_up", "ffn_down"]


def weight_matmuls(model: onnx.ModelProto):
    """MatMul nodes whose right operand is `Mul(Cast(int8 initializer), scale)`: the 36 layer weights."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    found = []
    for n in g.node:
        if n.op_type != "MatMul":
            continue
        mul = producer.get(n.input[1])
        if mul is None or mul.op_type != "Mul":
            continue
        casts = [producer.get(i) for i in mul.input]
        if any(c is not None and c.op_type == "Cast" and c.input[0] in inits
               and inits[c.input[0]].data_type == TensorProto.INT8 for c in casts):
            found.append(n)
    return found, producer


def fake_quant_nodes(x: str, tag: str, mode: str, outliers=None, width=None):
    """Nodes computing round(x / a) * a (symmetric) or the zero-point variant; returns (nodes, output).

    With `outliers` (channel indices of the last axis, of `width`), those channels pass through
    unquantised and take no part in the scale."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
        np.array(v, dtype=np.float32), name))
    o = lambda s: f"{tag}.{s}"
    per_row = mode.startswith("row")
    keep = 1
    axes = [-1] if per_row else None
    if outliers:
        keep_mask = np.ones(width, dtype=np.float32)
        keep_mask[list(outliers)] = 0.0
        nodes = [c(o("keep"), keep_mask), c(o("drop"), 1.0 - keep_mask),
                 helper.make_node("Mul", [x, o("keep")], [o("xin")]),
                 helper.make_node("Mul", [x, o("drop")], [o("xout")])]
        inner, out = fake_quant_nodes(o("xin"), tag + ".in", mode)
        return nodes + inner + [helper.make_node("Add", [out, o("xout")], [o("y")])], o("y")
    nodes = [c(o("eps"), 1e-12)]

    def reduce(op, inp, out):
        if axes is None:
            return helper.make_node(op, [inp], [out], keepdims=keep)
        return helper.make_node(op, [inp], [out], keepdims=keep, axes=axes)

    if mode == "row-sym":
        nodes += [c(o("qmax"), 127.0),
                  helper.make_node("Abs", [x], [o("abs")]),
                  reduce("ReduceMax", o("abs"), o("absmax")),
                  helper.make_node("Div", [o("absmax"), o("qmax")], [o("s0")]),
                  helper.make_node("Max", [o("s0"), o("eps")], [o("s")]),
                  helper.make_node("Div", [x, o("s")], [o("xs")]),
                  helper.make_node("Round", [o("xs")], [o("r")]),
                  helper.make_node("Mul", [o("r"), o("s")], [o("y")])]
        return nodes, o("y")
    # asymmetric u8: range widened to include 0, scale = (max - min) / 255, zp = round(-min / scale)
    nodes += [c(o("zero"), 0.0), c(o("u8max"), 255.0),
              reduce("ReduceMax", x, o("mx0")), reduce("ReduceMin", x, o("mn0")),
              helper.make_node("Max", [o("mx0"), o("zero")], [o("mx")]),
              helper.make_node("Min", [o("mn0"), o("zero")], [o("mn")]),
              helper.make_node("Sub", [o("mx"), o("mn")], [o("rng")]),
              helper.make_node("Div", [o("rng"), o("u8max")], [o("s0")]),
              helper.make_node("Max", [o("s0"), o("eps")], [o("s")]),
              helper.make_node("Div", [o("mn"), o("s")], [o("mns")]),
              helper.make_node("Neg", [o("mns")], [o("zp0")]),
              helper.make_node("Round", [o("zp0")], [o("zp1")]),
              helper.make_node("Clip", [o("zp1"), o("zero"), o("u8max")], [o("zp")]),
              helper.make_node("Div", [x, o("s")], [o("xs")]),
              helper.make_node("Round", [o("xs")], [o("r0")]),
              helper.make_node("Add", [o("r0"), o("zp")], [o("r1")]),
              helper.make_node("Clip", [o("r1"), o("zero"), o("u8max")], [o("q")]),
              helper.make_node("Sub", [o("q"), o("zp")], [o("r")]),
              helper.make_node("Mul", [o("r"), o("s")], [o("y")])]
    return nodes, o("y")


def matmul_class(model: onnx.ModelProto, node, producer) -> str:
    """Which of CLASSES a weight MatMul is, from its weight's shape and what feeds its activation."""
    inits = {i.name: i for i in model.graph.initializer}
    mul = producer[node.input[1]]
    q = next(inits[producer[i].input[0]] for i in mul.input if i in producer)
    k, n = q.dims
    if (k, n) == (384, 1536):
        return "ffn_up"
    if (k, n) == (1536, 384):
        return "ffn_down"
    src = producer.get(node.input[0])
    return "qkv" if src is not None and src.op_type == "LayerNormalization" else "attn_out"


def outlier_channels(model: onnx.ModelProto, activations):
    """For each activation: (outlier channel indices, channel count), from the bench sentences."""
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    names = list(dict.fromkeys(activations))
    for a in names:
        probe.graph.output.append(helper.make_tensor_value_info(a, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    bench = json.loads((ROOT / "akidb-native/src/bench_sentences.json").read_text())
    tok = Tokenizer.from_file(str(ROOT / "models/src/tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    absmax = {}
    for text in [bench["single"], *bench["batch"]]:
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        outs = sess.run(names, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                "token_type_ids": np.zeros_like(ids)})
        for a, v in zip(names, outs):
            m = np.abs(v.reshape(-1, v.shape[-1])).max(0)
            absmax[a] = np.maximum(absmax.get(a, m), m)
    found = {}
    for a, m in absmax.items():
        found[a] = ([int(i) for i in np.nonzero(m > OUTLIER_RATIO * np.median(m))[0]], len(m))
    return found


def with_fake_quant(model: onnx.ModelProto, mode: str) -> onnx.ModelProto:
    """The model with its weight MatMuls' activations fake-quantised as `mode` says.

    `mode` is one of MODES, optionally followed by `@class+class` to quantise only those CLASSES
    (the others stay f32). `row-mixed` is `row-sym` everywhere but `row-asym-u8` for ffn_down, whose
    input (a GELU output, >= -0.17) is one-sided.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    mode, _, only = mode.partition("@")
    classes = set(only.split("+")) if only else set(CLASSES)
    assert classes <= set(CLASSES), f"unknown classes in {only}"
    if mode == "none":
        return model
    matmuls, producer = weight_matmuls(model)
    assert len(matmuls) == 36, f"expected 36 weight MatMuls, found {len(matmuls)}"
    g = model.graph
    done = {}  # one quantisation per activation, shared by the Q, K and V projections
    new_nodes = []
    targets = {id(n): matmul_class(model, n, producer) for n in matmuls}
    outl = mode.endswith("-outl")
    mode = mode.removesuffix("-outl")
    channels = outlier_channels(model, [n.input[0] for n in matmuls]) if outl else {}
    for n in g.node:
        cls = targets.get(id(n))
        if cls is not None and cls in classes and not (mode == "row-sym-noffn2" and cls == "ffn_down"):
            scheme = {"row-sym-noffn2": "row-sym",
                      "row-mixed": "row-asym-u8" if cls == "ffn_down" else "row-sym"}.get(mode, mode)
            src = n.input[0]
            if src not in done:
                ch, width = channels.get(src, ([], None))
                nodes, out = fake_quant_nodes(src, f"fq{len(done)}", scheme, ch, width)
                new_nodes += nodes
                done[src] = out
            n.input[0] = done[src]
        new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/src/model-int8.onnx"))
    ap.add_argument("--tokenizer", default=str(ROOT / "models/src/tokenizer.json"))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--outlier-ratio", type=float, default=OUTLIER_RATIO)
    args = ap.parse_args()
    globals()["OUTLIER_RATIO"] = args.outlier_ratio
    sentences = json.loads((GOLDEN / "sentences.json").read_text())
    golden = np.fromfile(GOLDEN / "embeddings.f32", dtype="<f4").reshape(len(sentences), -1)
    golden_ids = json.loads((GOLDEN / "token_ids.json").read_text())["token_ids"]
    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    tok.enable_truncation(256)
    encs = [tok.encode(s) for s in sentences]
    ids_equal = sum(e.ids == g for e, g in zip(encs, golden_ids))
    base = onnx.load(args.model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # the outlier modes leave an unused constant: not worth a warning
    print(f"token ids identical: {ids_equal}/{len(sentences)}")
    print("| mode | min cosine | mean cosine | worst sentence (index, tokens) | below 0.99 | f32 channels |")
    print("|---|---|---|---|---|---|")
    for mode in args.modes.split(","):
        f32_channels = "-"
        if mode.partition("@")[0].endswith("-outl"):
            matmuls, _ = weight_matmuls(base)
            found = outlier_channels(base, [n.input[0] for n in matmuls])
            f32_channels = f"{sum(len(c) for c, _ in found.values())} of {sum(w for _, w in found.values())}"
        sess = ort.InferenceSession(with_fake_quant(base, mode).SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        cos = []
        for e, ref in zip(encs, golden):
            ids = np.array([e.ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                    "token_type_ids": np.zeros_like(ids)}
            h = sess.run(None, feed)[0][0]
            v = h.mean(0)
            v = v / max(np.linalg.norm(v), 1e-12)
            cos.append(float(v @ ref / max(np.linalg.norm(ref), 1e-12)))
        cos = np.array(cos)
        w = int(cos.argmin())
        print(f"| {mode} | {cos.min():.6f} | {cos.mean():.6f} | {w} ({len(encs[w].ids)}) | "
              f"{int((cos < 0.99).sum())} | {f32_channels} |", flush=True)


if __name__ == "__main__":
    main()
