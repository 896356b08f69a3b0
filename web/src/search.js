// Pure helpers of the demo page (no DOM): ranking, formatting, hashing.

/**
 * The `k` best rows of `matrix` (row-major `n × dim`, L2-normalised) for the normalised `query`, by cosine
 * (= dot product), best first. Ties keep corpus order.
 * @param {Float32Array} matrix
 * @param {number} dim
 * @param {Float32Array} query
 * @param {number} k
 * @returns {{index: number, score: number}[]}
 */
export function topK(matrix, dim, query, k) {
  if (query.length !== dim) throw new Error(`query has ${query.length} dimensions, the corpus ${dim}`);
  const n = Math.floor(matrix.length / dim);
  const best = [];
  for (let i = 0; i < n; i++) {
    let s = 0;
    const off = i * dim;
    for (let j = 0; j < dim; j++) s += matrix[off + j] * query[j];
    if (best.length < k || s > best[best.length - 1].score) {
      let at = best.length;
      while (at > 0 && best[at - 1].score < s) at--;
      best.splice(at, 0, { index: i, score: s });
      if (best.length > k) best.pop();
    }
  }
  return best;
}

/** "22.9 MB", "455 kB", "12 B" (decimal units, as the README's sizes). */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** Milliseconds for display: "0.4 ms", "23 ms", "1.24 s". */
export function formatMs(ms) {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Lower-case hex SHA-256 of a string's UTF-8 bytes (WebCrypto). */
export async function sha256Hex(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
