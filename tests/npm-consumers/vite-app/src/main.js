// The bundler target, imported the way a webpack/Vite user would: the .wasm comes in through the module
// graph (vite-plugin-wasm), so there is no init call. The model bundle is fetched by hand and handed to
// the low-level Embedder.
//
// Query: ?text=...&text=... (the sentences to embed; default one) and ?model=<bundle dir URL>
// (default /models/). The result goes to window.result for the tests and to the page for a person.
import { Embedder } from '@akidb/wasm/bundler';

const params = new URLSearchParams(location.search);
const texts = params.getAll('text');
if (texts.length === 0) texts.push('The quick brown fox jumps over the lazy dog.');
const modelDir = new URL(params.get('model') ?? '/models/', location.href);

/** @param {string} name a path relative to the bundle directory */
async function get(name) {
  const url = new URL(name, modelDir);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function main() {
  const t0 = performance.now();
  const manifestBytes = await get('manifest.json');
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  /** @type {Record<string, Uint8Array>} */
  const files = { 'manifest.json': manifestBytes };
  for (const f of manifest.files) files[f.path] = await get(f.path);
  const embedder = Embedder.fromBundle(files);
  const t1 = performance.now();
  const flat = embedder.embed(texts);
  const t2 = performance.now();
  const { dim, model } = embedder;
  embedder.free();
  const vectors = texts.map((_, i) => Array.from(flat.subarray(i * dim, (i + 1) * dim)));
  return { entry: '@akidb/wasm/bundler', model, dim, texts, vectors, loadMs: t1 - t0, embedMs: t2 - t1 };
}

/** @param {string} id an element the page has */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const status = byId('status');
main().then(
  (result) => {
    window.result = result;
    const ms = `${result.embedMs.toFixed(0)} ms (load ${result.loadMs.toFixed(0)} ms)`;
    status.textContent = `${result.model}: ${texts.length} × ${result.dim} in ${ms}`;
    byId('out').textContent = result.vectors
      .map((v, i) => `${JSON.stringify(texts[i])}: [${v.slice(0, 4).map((x) => x.toFixed(4)).join(', ')}, …]`)
      .join('\n');
  },
  (err) => {
    window.result = { error: String(err?.stack ?? err) };
    status.textContent = `error: ${err}`;
  },
);
