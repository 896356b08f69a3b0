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

/** The corpus file's format and the one version this page reads (web/README.md, "The corpus"). */
export const CORPUS_FORMAT = 'akidb-demo-corpus';
export const CORPUS_VERSION = 1;

/**
 * Checks a parsed corpus.json and returns `{documents, examples, texts}`, `texts[i]` being what is embedded
 * for `documents[i]` (see documentText). Throws naming the first problem: another format or version, a
 * document without a title or text, a title used twice.
 */
export function parseCorpus(json) {
  const where = 'corpus.json';
  if (json?.format !== CORPUS_FORMAT || json?.version !== CORPUS_VERSION) {
    throw new Error(
      `${where}: format ${JSON.stringify(json?.format)} version ${JSON.stringify(json?.version)}, ` +
        `this page reads ${CORPUS_FORMAT} version ${CORPUS_VERSION}`,
    );
  }
  if (!Array.isArray(json.documents) || json.documents.length === 0) throw new Error(`${where}: no documents`);
  const titles = new Set();
  json.documents.forEach((d, i) => {
    for (const key of ['title', 'text']) {
      if (typeof d?.[key] !== 'string' || d[key].trim() === '') {
        throw new Error(`${where}: document ${i} has no ${key}`);
      }
    }
    if (titles.has(d.title)) {
      throw new Error(`${where}: document ${i}: the title ${JSON.stringify(d.title)} is used twice`);
    }
    titles.add(d.title);
  });
  const examples = Array.isArray(json.examples) ? json.examples.filter((x) => typeof x === 'string') : [];
  return { documents: json.documents, examples, texts: json.documents.map(documentText) };
}

/** What is embedded for a document: its title and its text, so a query can match either. */
export function documentText(doc) {
  return `${doc.title}. ${doc.text}`;
}
