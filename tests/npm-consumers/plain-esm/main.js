// The high-level loader, imported by its bare name (the page's import map): loadEmbedder fetches the
// bundle from its manifest URL, verifies and caches it, and picks the wasm build itself.
//
// Query: ?text=...&text=... (the sentences to embed; default one), ?model=<manifest URL> (default
// /models/manifest.json), ?worker=1 (run the core in the package's worker.js). The result goes to
// window.result for the tests and to the page for a person.
import { loadEmbedder } from '@akidb/wasm';

const params = new URLSearchParams(location.search);
const texts = params.getAll('text');
if (texts.length === 0) texts.push('The quick brown fox jumps over the lazy dog.');
const url = new URL(params.get('model') ?? '/models/manifest.json', location.href);
const worker = params.get('worker') === '1';
/** @param {string} id an element the page has */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const status = byId('status');

async function main() {
  const t0 = performance.now();
  const embedder = await loadEmbedder({
    url,
    worker,
    onProgress: (p) => (status.textContent = `loading… ${Math.round(100 * p.fraction)}%`),
  });
  const t1 = performance.now();
  const flat = await embedder.embed(texts);
  const t2 = performance.now();
  const { model, backend } = embedder;
  // Known up front on the wasm backend; the server backend learns it from the first answer.
  const dim = embedder.dim ?? flat.length / texts.length;
  embedder.free();
  const vectors = texts.map((_, i) => Array.from(flat.subarray(i * dim, (i + 1) * dim)));
  return { entry: '@akidb/wasm', backend, worker, model, dim, texts, vectors, loadMs: t1 - t0, embedMs: t2 - t1 };
}

main().then(
  (result) => {
    window.result = result;
    const ms = `${result.embedMs.toFixed(0)} ms (load ${result.loadMs.toFixed(0)} ms)`;
    const backend = `${result.backend}${worker ? ', worker' : ''}`;
    status.textContent = `${result.model} (${backend}): ${texts.length} × ${result.dim} in ${ms}`;
    byId('out').textContent = result.vectors
      .map((v, i) => `${JSON.stringify(texts[i])}: [${v.slice(0, 4).map((x) => x.toFixed(4)).join(', ')}, …]`)
      .join('\n');
  },
  (err) => {
    window.result = { error: String(err?.stack ?? err) };
    status.textContent = `error: ${err}`;
  },
);
