// AkiDB Edge demo: semantic search over a built-in corpus with @akidb/wasm, used as any web app would
// (bare import through the page's import map). The model comes from the model-server that serves this
// page; the loader caches it in IndexedDB, this page keeps the corpus vectors in its own IndexedDB
// database (store.js), and sw.js keeps the app shell and the .wasm, so a later visit works offline.
//
// Configuration, later wins: built-in defaults, config.json next to this page (scripts/demo.sh writes it),
// query parameters `?model=URL` and `?fallback=URL`.

import { loadEmbedder } from '@akidb/wasm';
import { topK, formatBytes, formatMs, sha256Hex, parseCorpus } from './search.js';
import * as store from './store.js';

const DEFAULTS = {
  modelUrl: '/v1/models/all-MiniLM-L6-v2/latest/manifest.json',
  fallbackUrl: 'http://127.0.0.1:8080/v1/embed',
};
const TOP_K = 5;
const BATCH = 16;
const FORCE_KEY = 'akidb-demo:force-server';
const MODEL_DB = 'akidb-cache'; // @akidb/wasm's default cacheName

const $ = (id) => document.getElementById(id);

/** What the page did, for the console and the e2e tests (read-only for them). */
const diag = {
  state: 'starting',
  config: null,
  backend: null,
  /** The @akidb/wasm build the embedder runs (null on the server backend). */
  variant: null,
  /** Whether the page is cross-origin isolated (model-server sends COOP/COEP with the static site). */
  crossOriginIsolated: null,
  model: null,
  stats: null,
  corpusSource: null,
  corpusSize: 0,
  progressEvents: 0,
  warnings: [],
  lastSearch: null,
};
// The page's embedder, for the console and the e2e tests' golden check: `await akidbDemo.embed(['text'])`
// gives plain arrays (one per text) from the backend in use. Not enumerable: diag stays JSON.
Object.defineProperty(diag, 'embed', {
  value: async (texts) => {
    if (!current) throw new Error('no embedder yet (the page is not ready)');
    const flat = await current.embedder.embed(texts);
    return texts.map((_, i) => Array.from(flat.subarray(i * current.dim, (i + 1) * current.dim)));
  },
});
window.akidbDemo = diag;

let config;
let corpus; // {documents, texts, examples, sha256} (search.js parseCorpus)
let current = null; // {embedder, vectors, dim}
let generation = 0; // bumped to abandon a load in progress
let searchSeq = 0;

function setState(state, message) {
  diag.state = state;
  document.body.dataset.state = state;
  if (message !== undefined) $('status').textContent = message;
  const ready = state === 'ready';
  $('q').disabled = !ready;
  $('go').disabled = !ready;
  for (const b of $('examples').querySelectorAll('button')) b.disabled = !ready;
  $('clear').disabled = state === 'loading' || state === 'indexing' || state === 'clearing';
  $('force-server').disabled =
    state === 'loading' || state === 'indexing' || state === 'clearing' || state === 'cleared';
  $('corpus-hint').textContent = ready
    ? `(${corpus.documents.length} documents)`
    : '(available once the corpus is embedded)';
}

function fail(message) {
  setState('error', message);
  $('status').setAttribute('role', 'alert');
}

// ---------------------------------------------------------------------------------------------------
// Configuration and static data.

async function loadConfig() {
  let file = {};
  try {
    const res = await fetch('config.json', { cache: 'no-cache' });
    if (res.ok) file = await res.json();
  } catch {
    // No config.json (or offline with no cached copy): the defaults hold.
  }
  const q = new URLSearchParams(location.search);
  const pick = (param, key) => q.get(param) || file[key] || DEFAULTS[key];
  return {
    modelUrl: new URL(pick('model', 'modelUrl'), location.href).href,
    fallbackUrl: new URL(pick('fallback', 'fallbackUrl'), location.href).href,
  };
}

async function loadCorpus() {
  const res = await fetch('corpus.json');
  if (!res.ok) throw new Error(`corpus.json: HTTP ${res.status}`);
  const text = await res.text();
  return { ...parseCorpus(JSON.parse(text)), sha256: await sha256Hex(text) };
}

// ---------------------------------------------------------------------------------------------------
// The cache panel.

/** The model's manifest, from the network when reachable, else the copy saved on the last visit. */
async function modelManifest() {
  try {
    const res = await fetch(config.modelUrl, { cache: 'no-cache' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const json = await res.json();
    store.put('meta', { key: 'manifest', url: config.modelUrl, json }).catch(() => {});
    return json;
  } catch {
    const saved = await store.get('meta', 'manifest').catch(() => null);
    return saved?.url === config.modelUrl ? saved.json : null;
  }
}

async function showManifest() {
  const m = await modelManifest();
  if (!m) {
    $('m-name').textContent = 'unknown (model server unreachable, nothing saved)';
    return;
  }
  const size = m.files.reduce((n, f) => n + f.size, 0);
  $('m-name').textContent = `${m.name} (${m.dim} dimensions, ${m.pooling} pooling)`;
  $('m-version').textContent = `${m.version}${m.quantization ? ` · ${m.quantization}` : ''}`;
  $('m-size').textContent = `${formatBytes(size)} in ${m.files.length} files`;
}

async function showStorage() {
  try {
    const { usage } = await navigator.storage.estimate();
    const persisted = await navigator.storage.persisted?.();
    $('m-storage').textContent = `${formatBytes(usage)}${persisted ? ' (persistent)' : ''}`;
  } catch {
    $('m-storage').textContent = 'unknown';
  }
}

async function showShell() {
  if (!('serviceWorker' in navigator)) {
    $('m-shell').textContent = 'not available (no service worker support)';
    return;
  }
  const reg = await navigator.serviceWorker.getRegistration();
  if (!reg) {
    $('m-shell').textContent = 'none';
    return;
  }
  const names = (await caches.keys()).filter((k) => k.startsWith('akidb-demo-shell-'));
  let files = 0;
  for (const n of names) files += (await (await caches.open(n)).keys()).length;
  const active = reg.active ? 'ready' : 'installing';
  $('m-shell').textContent = `${active}: ${files} files cached by the service worker`;
}

function showBackend(e) {
  const where =
    e.backend === 'server' ? `server (${config.fallbackUrl})` : `${e.variant ?? e.backend} build in a Web Worker`;
  $('m-backend').textContent = e.reason ? `${where}; ${e.reason}` : where;
  $('backend-pill').textContent = `backend: ${e.backend}`;
  $('backend-pill').dataset.backend = e.backend;
  if (e.backend === 'server') {
    $('m-files').textContent = 'not used (the server embeds)';
  } else {
    const s = e.stats ?? {};
    const parts = [];
    if (s.fromCache?.length) parts.push(`${s.fromCache.length} from IndexedDB`);
    if (s.fetched?.length) parts.push(`${s.fetched.length} downloaded`);
    const ms = s.loadMs ? `, ready in ${formatMs(s.loadMs)}` : '';
    $('m-files').textContent = `${parts.join(', ') || 'none'}${ms}`;
  }
}

function refreshPanel() {
  showStorage();
  showShell().catch(() => {});
}

// ---------------------------------------------------------------------------------------------------
// Loading: the model (download progress), then the corpus vectors (embedding progress or IndexedDB).

function onProgress({ loaded, total, fraction }) {
  diag.progressEvents++;
  $('dl').value = fraction;
  $('dl-text').textContent = `${formatBytes(loaded)} / ${formatBytes(total)}`;
}

function onWarning(message) {
  diag.warnings.push(message);
  console.warn(message);
}

async function start() {
  const gen = ++generation;
  current?.embedder.free();
  current = null;
  const force = $('force-server').checked;
  $('results').replaceChildren();
  $('meta').textContent = '';
  $('status').setAttribute('role', 'status');
  $('dl').value = 0;
  $('ix').value = 0;
  $('dl-text').textContent = '–';
  $('ix-text').textContent = '–';
  setState('loading', force ? 'Using the server fallback…' : 'Loading the model…');
  showManifest().catch(() => {});

  let e;
  try {
    e = await loadEmbedder({
      url: config.modelUrl,
      cache: 'indexeddb',
      worker: true,
      fallbackUrl: config.fallbackUrl,
      pretendNoSimd: force,
      onProgress,
      onWarning,
    });
  } catch (err) {
    if (gen === generation) fail(`Could not load the model: ${err.message ?? err}`);
    return;
  }
  if (gen !== generation) {
    e.free();
    return;
  }
  diag.backend = e.backend;
  diag.variant = e.variant ?? null;
  diag.crossOriginIsolated = self.crossOriginIsolated === true;
  diag.model = e.model ?? null;
  diag.stats = e.stats;
  showBackend(e);
  if (e.backend === 'server') $('dl-text').textContent = 'not needed';

  try {
    const { vectors, dim, source } = await corpusVectors(e, gen);
    if (gen !== generation) return;
    current = { embedder: e, vectors, dim };
    diag.corpusSource = source;
    diag.corpusSize = corpus.documents.length;
  } catch (err) {
    if (gen === generation) fail(`Could not embed the corpus: ${err.message ?? err}`);
    return;
  }
  const how = {
    indexeddb: 'loaded from IndexedDB',
    embedded: 'embedded in this browser and saved to IndexedDB',
    server: 'embedded by the server (not saved)',
  }[diag.corpusSource];
  $('m-vectors').textContent = `${corpus.documents.length} × ${current.dim}, ${how}`;
  setState('ready', `Ready: ${corpus.documents.length} documents, backend ${e.backend}.`);
  refreshPanel();
  const q = $('q').value.trim();
  if (q) search(q);
}

/** The corpus vectors: from IndexedDB when this model already embedded this corpus, else embedded now. */
async function corpusVectors(e, gen) {
  const n = corpus.texts.length;
  const key = `${e.model}|${corpus.sha256}`;
  const local = e.backend !== 'server';
  if (local) {
    const rec = await store.get('vectors', key).catch(() => null);
    if (rec && rec.count === n && rec.vectors.byteLength === n * rec.dim * 4) {
      $('ix').value = 1;
      $('ix-text').textContent = `${n} / ${n} (IndexedDB)`;
      return { vectors: new Float32Array(rec.vectors), dim: rec.dim, source: 'indexeddb' };
    }
  }
  setState('indexing', `Embedding ${n} corpus documents (${e.backend})…`);
  // Similar lengths together: the core pads each batch to its longest text's bucket.
  const order = [...Array(n).keys()].sort((a, b) => corpus.texts[a].length - corpus.texts[b].length);
  let out = null;
  let dim = 0;
  for (let i = 0; i < n; i += BATCH) {
    const idx = order.slice(i, i + BATCH);
    const v = await e.embed(idx.map((j) => corpus.texts[j]));
    if (gen !== generation) throw new Error('abandoned');
    dim ||= v.length / idx.length;
    out ??= new Float32Array(n * dim);
    idx.forEach((j, k) => out.set(v.subarray(k * dim, (k + 1) * dim), j * dim));
    const done = Math.min(i + BATCH, n);
    $('ix').value = done / n;
    $('ix-text').textContent = `${done} / ${n}`;
  }
  if (!local) return { vectors: out, dim, source: 'server' };
  try {
    await store.replaceVectors({ key, model: e.model, corpus: corpus.sha256, dim, count: n, vectors: out.buffer });
  } catch (err) {
    onWarning(`corpus vectors not saved: ${err}`);
  }
  return { vectors: out, dim, source: 'embedded' };
}

// ---------------------------------------------------------------------------------------------------
// Search.

async function search(query) {
  if (!current) return;
  const seq = ++searchSeq;
  const { embedder, vectors, dim } = current;
  const t0 = performance.now();
  let qv;
  try {
    qv = await embedder.embed([query]);
  } catch (err) {
    if (seq === searchSeq) $('meta').textContent = `Search failed: ${err.message ?? err}`;
    return;
  }
  const t1 = performance.now();
  const hits = topK(vectors, dim, qv, TOP_K);
  const t2 = performance.now();
  if (seq !== searchSeq || current?.embedder !== embedder) return;
  diag.lastSearch = { query, backend: embedder.backend, embedMs: t1 - t0, rankMs: t2 - t1, hits };
  render(query, hits, t1 - t0, t2 - t1, embedder.backend);
}

function render(query, hits, embedMs, rankMs, backend) {
  const list = $('results');
  list.dataset.query = query;
  list.dataset.backend = backend;
  list.replaceChildren(
    ...hits.map(({ index, score }) => {
      const li = document.createElement('li');
      li.dataset.index = String(index);
      li.dataset.score = score.toFixed(6);
      const s = document.createElement('span');
      s.className = 'score';
      s.textContent = score.toFixed(3);
      const bar = document.createElement('span');
      bar.className = 'score-bar';
      bar.setAttribute('aria-hidden', 'true');
      bar.style.setProperty('--w', `${Math.max(0, Math.min(1, score)) * 100}%`);
      const doc = corpus.documents[index];
      li.dataset.title = doc.title;
      const body = document.createElement('div');
      body.className = 'doc';
      const title = document.createElement('span');
      title.className = 'title';
      title.textContent = doc.title;
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = doc.text;
      text.title = doc.text;
      body.append(title);
      if (doc.topic) {
        const topic = document.createElement('span');
        topic.className = 'topic';
        topic.textContent = doc.topic;
        body.append(' ', topic);
      }
      body.append(text);
      li.append(s, bar, body);
      return li;
    }),
  );
  $('meta').textContent =
    `Top ${hits.length} of ${corpus.documents.length} in ${formatMs(embedMs + rankMs)} ` +
    `(query embedding ${formatMs(embedMs)}, ranking ${formatMs(rankMs)}) · backend ${backend}`;
}

let debounce;
function onInput() {
  clearTimeout(debounce);
  const q = $('q').value.trim();
  if (!q) {
    searchSeq++;
    $('results').replaceChildren();
    delete $('results').dataset.query;
    $('meta').textContent = '';
    return;
  }
  debounce = setTimeout(() => search(q), 250);
}

// ---------------------------------------------------------------------------------------------------
// Clear cache: the model files and corpus vectors (IndexedDB) and the service worker's cache.

async function clearCache() {
  generation++;
  searchSeq++;
  current?.embedder.free(); // ends the worker and its IndexedDB connection
  current = null;
  setState('clearing', 'Clearing the cache…');
  store.close();
  const names = new Set([MODEL_DB, store.DB_NAME]);
  for (const db of (await indexedDB.databases?.()) ?? []) if (db.name) names.add(db.name);
  await Promise.all([...names].map((n) => store.deleteDatabase(n)));
  if ('caches' in self) for (const k of await caches.keys()) await caches.delete(k);
  if ('serviceWorker' in navigator) {
    for (const reg of await navigator.serviceWorker.getRegistrations()) await reg.unregister();
  }
  $('results').replaceChildren();
  $('meta').textContent = '';
  $('dl').value = 0;
  $('ix').value = 0;
  $('dl-text').textContent = '–';
  $('ix-text').textContent = '–';
  $('m-files').textContent = 'none';
  $('m-vectors').textContent = 'none';
  $('reload').hidden = false;
  setState(
    'cleared',
    'Cache cleared: the model files, the corpus vectors and the offline copy of this page are gone. ' +
      'Reload to download them again.',
  );
  refreshPanel();
}

// ---------------------------------------------------------------------------------------------------

function showNetwork() {
  $('net').textContent = navigator.onLine ? 'online' : 'offline';
  $('net').dataset.online = String(navigator.onLine);
}

async function main() {
  showNetwork();
  addEventListener('online', showNetwork);
  addEventListener('offline', showNetwork);

  $('force-server').checked = localStorage.getItem(FORCE_KEY) === '1';
  $('force-server').addEventListener('change', () => {
    localStorage.setItem(FORCE_KEY, $('force-server').checked ? '1' : '0');
    start();
  });
  $('clear').addEventListener('click', () => clearCache().catch((err) => fail(`Clearing failed: ${err}`)));
  $('reload').addEventListener('click', () => location.reload());
  $('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearTimeout(debounce);
    const q = $('q').value.trim();
    if (q) search(q);
  });
  $('q').addEventListener('input', onInput);

  if ('serviceWorker' in navigator) {
    navigator.serviceWorker
      .register('sw.js')
      .then(() => navigator.serviceWorker.ready)
      .then(() => showShell())
      .catch((err) => {
        $('m-shell').textContent = `service worker failed: ${err.message ?? err}`;
      });
  } else {
    $('m-shell').textContent = 'not available (no service worker support)';
  }
  navigator.storage?.persist?.().catch(() => {});

  config = await loadConfig();
  diag.config = config;
  $('m-fallback').textContent = config.fallbackUrl;
  try {
    corpus = await loadCorpus();
  } catch (err) {
    fail(`Could not load the corpus: ${err.message ?? err}`);
    return;
  }
  $('examples').replaceChildren(
    ...corpus.examples
      .filter((x) => x.length <= 60)
      .slice(0, 5)
      .map((x) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'chip';
        b.textContent = x;
        b.disabled = true;
        b.addEventListener('click', () => {
          $('q').value = x;
          search(x);
        });
        return b;
      }),
  );
  await start();
}

main().catch((err) => fail(`Unexpected error: ${err.message ?? err}`));
