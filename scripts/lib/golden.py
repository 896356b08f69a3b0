"""The golden reference data (sentence-transformers' embeddings of 200 sentences, ../shared/golden) for
the repository's Python checks: the Jetson smoke test, deploy.sh's smoke test and its fake curl. The
Rust suites have the same in akidb-testkit (golden.rs), the JS suites in tests/support/golden.mjs.

  sys.path.insert(0, "<repo>/scripts/lib"); import golden
  ref = golden.load(DIR)              # DIR: $AKIDB_GOLDEN-style directory with sentences.json, embeddings.f32
  ref.sentences, ref.dim, ref.row(i)  # row: the reference embedding of sentence i (a tuple of floats)
  golden.cosine(a, b)
  golden.check(ref, indices, vectors, min_bar=golden.INT8_MIN)  -> (min, mean) cosine, or GoldenMismatch
                                                                   naming the worst sentence
  golden.min_bar(manifest["quantization"])                       # INT8_DYNAMIC_MIN or INT8_MIN

Standard library only: it runs on any machine with python3.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import List, Sequence, Tuple

# The int8 bundle's bar for its worst sentence, as in akidb-testkit (INT8_BARS.min).
INT8_MIN = 0.995
# The integer path's (int8-dynamic bundles, activations quantised at run time), as in akidb-testkit
# (INT8_DYNAMIC_BARS.min) and tests/support/golden.mjs (BARS.int8Dynamic.min).
INT8_DYNAMIC_MIN = 0.994


def min_bar(quantization: str) -> float:
    """The worst-sentence bar of a bundle whose manifest says `quantization`."""
    return INT8_DYNAMIC_MIN if quantization == "int8-dynamic" else INT8_MIN


class GoldenMismatch(AssertionError):
    """Vectors that do not match the reference; the message says which and by how much."""


class Golden:
    def __init__(self, sentences: List[str], raw: bytes):
        if not sentences or len(raw) % (4 * len(sentences)):
            raise ValueError(f"embeddings.f32 ({len(raw)} bytes) is not {len(sentences)} sentences x dim x 4 bytes")
        self.sentences = sentences
        self.dim = len(raw) // 4 // len(sentences)
        self._raw = raw

    def row(self, i: int) -> Tuple[float, ...]:
        return struct.unpack_from(f"<{self.dim}f", self._raw, i * self.dim * 4)


def load(directory) -> Golden:
    d = Path(directory)
    return Golden(json.loads((d / "sentences.json").read_text(encoding="utf-8")), (d / "embeddings.f32").read_bytes())


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def check(ref: Golden, indices: Sequence[int], vectors: Sequence[Sequence[float]],
          min_bar: float = INT8_MIN) -> Tuple[float, float]:
    """The vectors served for sentences `indices`, against the reference: (min, mean) cosine."""
    if len(vectors) != len(indices):
        raise GoldenMismatch(f"{len(vectors)} embeddings for {len(indices)} sentences")
    for i, v in zip(indices, vectors):
        if len(v) != ref.dim:
            raise GoldenMismatch(f"sentence {i}: an embedding of {len(v)} dimensions, the reference has {ref.dim}")
    cosines = [cosine(v, ref.row(i)) for i, v in zip(indices, vectors)]
    worst = min(range(len(cosines)), key=cosines.__getitem__)
    low, mean = cosines[worst], sum(cosines) / len(cosines)
    if low < min_bar:
        raise GoldenMismatch(f"min cosine {low:.6f} < {min_bar} at sentence {indices[worst]} "
                             f"{ref.sentences[indices[worst]][:60]!r}")
    return low, mean
