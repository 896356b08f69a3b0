"""Tests of scripts/lib/golden.py on a small reference written here (run by test-stats.sh)."""

import os
import struct
import sys
import tempfile
import unittest
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden  # noqa: E402


class GoldenTest(unittest.TestCase):
    def setUp(self):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        with open(os.path.join(d.name, "sentences.json"), "w") as f:
            json.dump(["a b", "c d", "e f"], f)
        with open(os.path.join(d.name, "embeddings.f32"), "wb") as f:
            f.write(struct.pack("<6f", 1, 0, 0, 1, 0.6, 0.8))
        self.ref = golden.load(d.name)

    def test_rows_are_read_little_endian_per_sentence(self):
        self.assertEqual((self.ref.dim, self.ref.row(1)), (2, (0.0, 1.0)))
        self.assertAlmostEqual(self.ref.row(2)[1], 0.8, places=6)

    def test_the_reference_passes_and_a_wrong_sentence_is_named(self):
        low, mean = golden.check(self.ref, [0, 2], [[2, 0], [0.6, 0.8]])
        self.assertAlmostEqual(low, 1.0, places=9)
        # Sentence 2 answered with sentence 1's vector: cosine 0.8.
        with self.assertRaisesRegex(golden.GoldenMismatch, r"min cosine 0.800000 < 0.995 at sentence 2 'e f'"):
            golden.check(self.ref, [0, 2], [[1, 0], [0, 1]])

    def test_wrong_counts_and_dimensions_are_errors(self):
        with self.assertRaisesRegex(golden.GoldenMismatch, "1 embeddings for 2 sentences"):
            golden.check(self.ref, [0, 1], [[1, 0]])
        with self.assertRaisesRegex(golden.GoldenMismatch, "3 dimensions, the reference has 2"):
            golden.check(self.ref, [0], [[1, 0, 0]])

    def test_a_truncated_embeddings_file_is_refused(self):
        with self.assertRaisesRegex(ValueError, "is not 3 sentences"):
            golden.Golden(["a", "b", "c"], b"\0" * 20)


if __name__ == "__main__":
    unittest.main()
