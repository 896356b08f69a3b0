"""A minimal ONNX reader: the graph's nodes and initializers from model.onnx, with numpy only.

The GPU machine has torch, sentence-transformers and numpy but maybe not the `onnx` package, so the
PyTorch side reads the int8 bundle's own model.onnx with this (protobuf wire format, the few fields
needed) instead of carrying a second copy of the weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# TensorProto.DataType values used by the int8 MiniLM export.
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}


@dataclasses.dataclass
class Node:
    op_type: str
    name: str
    inputs: list[str]
    outputs: list[str]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview):
    """Yields (field number, wire type, value) of one message: ints for varints, memoryviews otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            value = buf[pos : pos + 4]
            pos += 4
        elif wire == 1:
            value = buf[pos : pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _packed_varints(buf: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v - (1 << 64) if v >= 1 << 63 else v)
    return out


def _tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    name, dtype, raw = "", 0, None
    floats: list[memoryview] = []
    ints: list[int] = []
    for field, wire, value in _fields(buf):
        if field == 1:
            dims.extend(_packed_varints(value) if wire == 2 else [value])
        elif field == 2:
            dtype = value
        elif field == 4:
            floats.append(value)
        elif field in (5, 7):
            ints.extend(_packed_varints(value) if wire == 2 else [value])
        elif field == 8:
            name = bytes(value).decode()
        elif field == 9:
            raw = bytes(value)
    if dtype not in _DTYPES:
        raise ValueError(f"initializer {name}: unsupported ONNX data type {dtype}")
    np_type = _DTYPES[dtype]
    if raw is not None:
        array = np.frombuffer(raw, dtype=np_type)
    elif floats:
        array = np.frombuffer(b"".join(bytes(f) for f in floats), dtype=np.float32)
    else:
        array = np.array(ints, dtype=np_type)
    return name, array.reshape(dims).copy()


def read(path: str) -> tuple[list[Node], dict[str, np.ndarray]]:
    """The graph's nodes (in file order) and its initializers by name."""
    with open(path, "rb") as f:
        model = memoryview(f.read())
    graph = next(value for field, _, value in _fields(model) if field == 7)
    nodes: list[Node] = []
    inits: dict[str, np.ndarray] = {}
    for field, _, value in _fields(graph):
        if field == 1:
            parts: dict[int, list] = {1: [], 2: [], 3: [], 4: []}
            for f, _, v in _fields(value):
                if f in parts:
                    parts[f].append(bytes(v).decode())
            nodes.append(Node(op_type=parts[4][0], name=(parts[3] or [""])[0], inputs=parts[1], outputs=parts[2]))
        elif field == 5:
            name, array = _tensor(value)
            inits[name] = array
    return nodes, inits
