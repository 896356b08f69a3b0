// The page's pure helpers (web/src/search.js) in Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topK, formatBytes, formatMs, sha256Hex } from '../src/search.js';

test('topK ranks by dot product, best first, ties in corpus order', () => {
  const m = new Float32Array([1, 0, 0, 1, 0.6, 0.8, 1, 0, -1, 0]);
  const hits = topK(m, 2, new Float32Array([1, 0]), 3);
  assert.deepEqual(
    hits.map((h) => h.index),
    [0, 3, 2],
  );
  assert.equal(hits[0].score, 1);
  assert.ok(Math.abs(hits[2].score - 0.6) < 1e-6);
  assert.equal(topK(m, 2, new Float32Array([0, 1]), 10).length, 5);
  assert.throws(() => topK(m, 2, new Float32Array(3), 1), /3 dimensions/);
});

test('topK agrees with a full sort on random data', () => {
  const dim = 8;
  const n = 500;
  const m = Float32Array.from({ length: n * dim }, () => Math.random() - 0.5);
  const q = Float32Array.from({ length: dim }, () => Math.random() - 0.5);
  const all = Array.from({ length: n }, (_, i) => ({
    index: i,
    score: m.subarray(i * dim, (i + 1) * dim).reduce((s, x, j) => s + x * q[j], 0),
  })).sort((a, b) => b.score - a.score);
  assert.deepEqual(
    topK(m, dim, q, 7).map((h) => h.index),
    all.slice(0, 7).map((h) => h.index),
  );
});

test('formatting', () => {
  assert.equal(formatBytes(12), '12 B');
  assert.equal(formatBytes(4567), '4.6 kB');
  assert.equal(formatBytes(466247), '466 kB');
  assert.equal(formatBytes(23394866), '23.4 MB');
  assert.equal(formatBytes(undefined), '–');
  assert.equal(formatMs(0.42), '0.4 ms');
  assert.equal(formatMs(23.4), '23 ms');
  assert.equal(formatMs(1240), '1.24 s');
});

test('sha256Hex', async () => {
  assert.equal(await sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
