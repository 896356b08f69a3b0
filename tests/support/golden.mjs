// The golden data (sentence-transformers' all-MiniLM-L6-v2 on 200 sentences, ../shared/golden) and the
// checks every JS suite makes against it: cosine to a sentence's golden row, the bars over all rows, and
// the largest element-wise difference between two sets of vectors.
//
//   const golden = loadGolden();
//   const bars = cosineBars(flat, golden);          // { min, mean, cosines }
//   cosine(v, golden.rowOf('The quick brown fox jumps over the lazy dog.'));
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { GOLDEN_DIR } from './paths.mjs';

/** The bars the real model meets (../shared/golden/README.md): int8 min/mean, fp32 min; and the integer
 * path's (`int8-dynamic` bundles: activations quantised at run time): issue #18 asked for 0.99 / 0.998, and
 * with the outlier channels the bundle is calibrated with it gives 0.9951 / 0.9991, which these hold
 * (akidb-testkit's INT8_DYNAMIC_BARS, the same). */
export const BARS = { int8: { min: 0.995, mean: 0.999 }, fp32: { min: 0.99999 }, int8Dynamic: { min: 0.994, mean: 0.999 } };

/**
 * How close the integer path's vectors are held to another engine's (wasm vs native): a cosine per sentence,
 * not the exact paths' 1e-4 per element. Rounding activations to 255 levels before each weight product turns
 * a last-bit difference in an f32 op before it (3.9e-7 on the exact path, wasm vs x86) into a whole level
 * for the values it moves across a rounding boundary, and the layers after carry that on: measured wasm vs
 * native (2026-12-04, all 200 golden sentences, Node 20 against x86-64 on tract's VNNI kernel): 128 within 1e-4,
 * the worst at cosine 0.99864; both met the golden bars with the same min and mean to six digits.
 */
export const INTEGER_PATH_AGREEMENT = 0.995;

/** The smallest per-row cosine between two sets of `dim`-wide rows (row-major, equal lengths). */
export function minRowCosine(a, b, dim) {
  assert.equal(a.length, b.length, 'minRowCosine of sets of different lengths');
  let worst = 1;
  for (let i = 0; i < a.length; i += dim) worst = Math.min(worst, cosine(a.subarray(i, i + dim), b.subarray(i, i + dim)));
  return worst;
}

/**
 * Reads the golden data from `dir` (default $AKIDB_GOLDEN or ../shared/golden). Throws naming the missing
 * file. `embeddings` is the flat row-major [n][dim] Float32Array; `row(i)` and `rowOf(sentence)` views.
 */
export function loadGolden(dir = GOLDEN_DIR) {
  const read = (name) => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new Error(`golden data: ${file} is missing (AKIDB_GOLDEN points elsewhere)`);
    return fs.readFileSync(file);
  };
  const sentences = JSON.parse(read('sentences.json').toString('utf8'));
  const { token_ids: tokenIds, max_seq_length: maxSeqLength } = JSON.parse(read('token_ids.json').toString('utf8'));
  const bytes = read('embeddings.f32');
  // A copy: the Buffer's pool offset need not be 4-aligned.
  const embeddings = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const dim = embeddings.length / sentences.length;
  assert.ok(Number.isInteger(dim) && dim > 0, `embeddings.f32 is not [${sentences.length}][dim]`);
  assert.equal(tokenIds.length, sentences.length, 'token_ids.json and sentences.json disagree in length');
  const row = (i) => embeddings.subarray(i * dim, (i + 1) * dim);
  const rowOf = (sentence) => {
    const i = sentences.indexOf(sentence);
    assert.ok(i >= 0, `not a golden sentence: ${JSON.stringify(sentence)}`);
    return row(i);
  };
  return { dir, sentences, tokenIds, maxSeqLength, embeddings, dim, row, rowOf };
}

/** Cosine similarity of two equal-length vectors. */
export function cosine(a, b) {
  assert.equal(a.length, b.length, 'cosine of vectors of different lengths');
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

/** Cosine of each row of `flat` (row-major, one row per golden sentence) to its golden row: min, mean, all. */
export function cosineBars(flat, golden) {
  const { dim, sentences } = golden;
  assert.equal(flat.length, sentences.length * dim, `${flat.length} numbers for ${sentences.length} × ${dim}`);
  const cosines = sentences.map((_, i) => cosine(flat.subarray(i * dim, (i + 1) * dim), golden.row(i)));
  return { min: Math.min(...cosines), mean: cosines.reduce((a, b) => a + b, 0) / cosines.length, cosines };
}

/** The largest |a[i] - b[i]|; the lengths must agree. */
export function maxAbsDiff(a, b) {
  assert.equal(a.length, b.length, 'maxAbsDiff of vectors of different lengths');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
