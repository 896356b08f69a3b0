// The page's pure helpers (web/src/search.js) and its corpus (web/src/corpus.json) in Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { topK, formatBytes, formatMs, sha256Hex, parseCorpus, documentText } from '../src/search.js';

const corpusJson = JSON.parse(fs.readFileSync(new URL('../src/corpus.json', import.meta.url), 'utf8'));

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

test('corpus.json: 300+ titled documents on many topics, read by the page\'s own parser', () => {
  const c = parseCorpus(corpusJson);
  assert.ok(c.documents.length >= 300, `${c.documents.length} documents`);
  assert.equal(c.texts.length, c.documents.length);
  assert.equal(c.texts[0], `${c.documents[0].title}. ${c.documents[0].text}`);
  const topics = new Set(c.documents.map((d) => d.topic));
  assert.ok(topics.size >= 10, `topics: ${[...topics]}`);
  for (const t of topics) assert.ok(c.documents.filter((d) => d.topic === t).length >= 10, `topic ${t} has 10+ documents`);
  assert.equal(corpusJson.license, 'Apache-2.0');
  // The page shows at most 5 example chips of 60 characters or fewer; the e2e test checks all examples.
  assert.ok(c.examples.length >= 5 && c.examples.slice(0, 5).every((x) => x.length <= 60));
  // No test strings left over from the golden set: every text is a real sentence.
  for (const d of c.documents) {
    assert.match(d.text, /^[A-Z0-9].{40,}[.]$/s, `document ${JSON.stringify(d.title)}: a sentence of 40+ characters`);
    assert.doesNotMatch(d.text, /[\u0000-\u001f]/, `document ${JSON.stringify(d.title)}: no control characters`);
  }
});

test('parseCorpus refuses what the page cannot search, naming the problem', () => {
  const doc = (title, text = 'Some text.') => ({ title, text });
  const ok = { format: 'akidb-demo-corpus', version: 1, documents: [doc('A'), doc('B')] };
  assert.deepEqual(parseCorpus(ok).texts, ['A. Some text.', 'B. Some text.']);
  assert.deepEqual(parseCorpus(ok).examples, []);
  assert.throws(() => parseCorpus({ ...ok, version: 2 }), /version 2, this page reads akidb-demo-corpus version 1/);
  assert.throws(() => parseCorpus({ sentences: ['a'] }), /format undefined/);
  assert.throws(() => parseCorpus({ ...ok, documents: [] }), /no documents/);
  assert.throws(() => parseCorpus({ ...ok, documents: [doc('A'), doc(' ')] }), /document 1 has no title/);
  assert.throws(() => parseCorpus({ ...ok, documents: [doc('A', '')] }), /document 0 has no text/);
  assert.throws(() => parseCorpus({ ...ok, documents: [doc('A'), doc('A')] }), /document 1: the title "A" is used twice/);
  assert.equal(documentText({ title: 'T', text: 'x.' }), 'T. x.');
});
