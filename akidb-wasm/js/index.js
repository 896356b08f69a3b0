// @akidb/wasm — the high-level loader. `loadEmbedder()` fetches a model bundle (manifest first, then its
// files) with one progress stream, retries and Range resume; caches the files in IndexedDB keyed by
// sha256; verifies every file's sha256 on download and again before use (WebCrypto, whose digests the
// core compares with the manifest's along with the sizes: Bundle::from_hashed_files);
// runs the wasm core on this thread or in a Web Worker; and falls back to an embedding server when wasm
// can't run. The low-level `Embedder` (akidb-core through wasm-bindgen) is re-exported.

import initWasm, { Embedder, sha256Hex } from './web/akidb_wasm.js';

export { Embedder, sha256Hex, initWasm };

const MANIFEST = 'manifest.json';
const DB_NAME = 'akidb-cache';
const DB_VERSION = 1;

// ---------------------------------------------------------------------------------------------------
// Feature detection and wasm variants. Variants are tried best-first, the way Ruffle picks its builds: a
// later relaxed-SIMD or threaded build is one more entry with its own `supported()` and module URL.

// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt))
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98,
  11,
]);

/** True when this engine can compile WebAssembly SIMD128. */
export function wasmSimdSupported() {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/** The wasm builds this package ships, best first. */
export const WASM_VARIANTS = [
  {
    name: 'wasm-simd',
    supported: () => wasmSimdSupported(),
    init: async (wasmUrl) => {
      await initWasm(wasmUrl ? { module_or_path: wasmUrl } : undefined);
      return { Embedder, sha256Hex };
    },
  },
];

function pickVariant(options) {
  if (options.pretendNoSimd) return null;
  return WASM_VARIANTS.find((v) => v.supported()) ?? null;
}

// ---------------------------------------------------------------------------------------------------
// Hashing and fetching.

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

async function sha256(bytes, wasm) {
  if (globalThis.crypto?.subtle) return hex(await crypto.subtle.digest('SHA-256', bytes));
  return (await wasm).sha256Hex(bytes);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Fetches `url` into a Uint8Array of `size` bytes, reporting each chunk through `onBytes(n)`. A broken
 * transfer is resumed with a Range request where the server answers 206, otherwise restarted.
 */
async function download(url, size, { retries, fetchImpl, onBytes, signal }) {
  let buf = new Uint8Array(size);
  let got = 0;
  let lastError;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep(Math.min(200 * 2 ** (attempt - 1), 2000));
    try {
      const headers = got > 0 ? { Range: `bytes=${got}-` } : {};
      const res = await fetchImpl(url, { headers, signal, cache: 'no-store' });
      if (got > 0 && res.status === 200) {
        onBytes(-got); // the server ignored Range: start over
        got = 0;
      } else if (!res.ok) {
        throw new Error(`GET ${url}: HTTP ${res.status}`);
      }
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (got + value.length > size) throw new Error(`GET ${url}: more than the manifest's ${size} bytes`);
        buf.set(value, got);
        got += value.length;
        onBytes(value.length);
      }
      if (got !== size) throw new Error(`GET ${url}: ${got} of ${size} bytes`);
      return buf;
    } catch (e) {
      lastError = e;
      if (signal?.aborted) throw e;
    }
  }
  throw lastError;
}

// ---------------------------------------------------------------------------------------------------
// IndexedDB cache: `files` holds {sha256, bytes, name, version} keyed by sha256, `bytes` a Blob (older
// caches hold an ArrayBuffer, which is read too); `manifests` holds the last manifest seen per URL (so a
// reload works offline).

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function txDone(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

class Cache {
  static async open(name = DB_NAME) {
    if (typeof indexedDB === 'undefined') return null;
    const open = indexedDB.open(name, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('files')) db.createObjectStore('files', { keyPath: 'sha256' });
      if (!db.objectStoreNames.contains('manifests')) db.createObjectStore('manifests', { keyPath: 'url' });
    };
    return new Cache(await req(open));
  }
  constructor(db) {
    this.db = db;
  }
  async get(store, key) {
    return req(this.db.transaction(store).objectStore(store).get(key));
  }
  async put(store, value) {
    const tx = this.db.transaction(store, 'readwrite');
    tx.objectStore(store).put(value);
    await txDone(tx);
  }
  async delete(store, key) {
    const tx = this.db.transaction(store, 'readwrite');
    tx.objectStore(store).delete(key);
    await txDone(tx);
  }
  /** Drops cached files of model `name` whose hash the current manifest no longer lists. */
  async evictOthers(name, keep) {
    const tx = this.db.transaction('files', 'readwrite');
    const store = tx.objectStore('files');
    const records = await req(store.getAll());
    const dropped = [];
    for (const r of records) {
      if (r.name === name && !keep.has(r.sha256)) {
        store.delete(r.sha256);
        dropped.push(`${r.version}:${r.path}`);
      }
    }
    await txDone(tx);
    return dropped;
  }
  close() {
    this.db.close();
  }
}

/** The `files` record of a bundle file. `bytes` is a Blob: Chromium reads a 23 MB Blob record back about
 * 70 ms faster than an ArrayBuffer one. */
const fileRecord = (entry, manifest, bytes) => ({
  sha256: entry.sha256,
  path: entry.path,
  name: manifest.name,
  version: manifest.version,
  bytes: new Blob([bytes]),
});

/** The bytes of a `files` record if it holds `size` of them (a Blob, or an older cache's ArrayBuffer). */
async function recordBytes(rec, size) {
  const bytes = rec?.bytes;
  if (bytes instanceof Blob) return bytes.size === size ? new Uint8Array(await bytes.arrayBuffer()) : null;
  return bytes?.byteLength === size ? new Uint8Array(bytes) : null;
}

const isQuota = (e) => e && (e.name === 'QuotaExceededError' || /quota/i.test(String(e.message)));

// ---------------------------------------------------------------------------------------------------
// The loader.

/** Default location of a bundle file: next to the manifest (a static directory of the bundle). */
export function siblingUrl(entry, manifestUrl) {
  return new URL(entry.path, manifestUrl).href;
}

/** Location of a bundle file on the AkiDB model server: `/v1/blobs/sha256/{hex}`. */
export function modelServerBlobUrl(entry, manifestUrl) {
  return new URL(`/v1/blobs/sha256/${entry.sha256}`, manifestUrl).href;
}

function defaultBlobUrl(manifestUrl) {
  return /\/v1\/models\/[^/]+\/[^/]+\/manifest\.json$/.test(new URL(manifestUrl).pathname)
    ? modelServerBlobUrl
    : siblingUrl;
}

const warn = (options, msg) => (options.onWarning ?? console.warn)(`@akidb/wasm: ${msg}`);

/** Fetches (or reads from cache) every file of the bundle; returns {manifest, files: Map}. */
async function fetchBundle(options, wasm, stats) {
  const base = typeof location === 'object' ? location.href : undefined;
  const manifestUrl = new URL(options.url, base).href;
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const retries = options.retries ?? 3;
  const blobUrl =
    options.blobUrl ??
    (options.blobUrlTemplate
      ? (entry) =>
          new URL(options.blobUrlTemplate.replaceAll('{path}', entry.path).replaceAll('{sha256}', entry.sha256), manifestUrl).href
      : defaultBlobUrl(manifestUrl));
  // The manifest request and opening IndexedDB overlap, and so do the reads of the cached files: on a
  // warm start they are most of the time before the model can load.
  const manifestP = fetchImpl(manifestUrl, { cache: 'no-cache' }).then(async (res) => {
    if (!res.ok) throw new Error(`GET ${manifestUrl}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  });
  manifestP.catch(() => {});
  let cache = null;
  if ((options.cache ?? 'indexeddb') === 'indexeddb') {
    try {
      cache = await Cache.open(options.cacheName);
    } catch (e) {
      warn(options, `IndexedDB unavailable (${e}); running uncached`);
    }
  }
  stats.cache = cache ? 'indexeddb' : 'none';

  // The manifest: from the network when reachable (it is small, and names the current version), else the
  // copy cached for this URL, so a cached model works offline.
  let manifestBytes;
  try {
    manifestBytes = await manifestP;
  } catch (e) {
    const cached = cache && (await cache.get('manifests', manifestUrl).catch(() => null));
    if (!cached) throw e;
    warn(options, `manifest unreachable (${e.message ?? e}); using the cached one`);
    manifestBytes = new Uint8Array(cached.bytes);
  }
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  const entries = manifest.files;

  const files = new Map([[MANIFEST, manifestBytes]]);
  // Each file's sha256, as checked here; the core compares them with the manifest before use.
  const sha256s = new Map();
  const missing = [];
  // Cached files are read and hashed in parallel (WebCrypto hashes off this thread).
  const cached = await Promise.all(
    entries.map(async (entry) => {
      if (!cache) return null;
      const rec = await cache.get('files', entry.sha256).catch((e) => {
        warn(options, `cache read failed (${e}); fetching ${entry.path}`);
        return null;
      });
      const bytes = await recordBytes(rec, entry.size);
      const digest = bytes && (await sha256(bytes, wasm));
      return { rec, bytes, digest };
    }),
  );
  for (const [i, entry] of entries.entries()) {
    const { rec, bytes, digest } = cached[i] ?? {};
    if (bytes && digest === entry.sha256) {
      files.set(entry.path, bytes);
      sha256s.set(entry.path, digest);
      stats.fromCache.push(entry.path);
      continue;
    }
    if (bytes) {
      warn(options, `cached ${entry.path} is corrupt (sha256 ${digest}, manifest ${entry.sha256}); dropping it and fetching again`);
      stats.corrupt = [...(stats.corrupt ?? []), entry.path];
    }
    if (rec && cache) await cache.delete('files', entry.sha256).catch(() => {});
    missing.push(entry);
  }

  const total = entries.reduce((n, e) => n + e.size, 0);
  let loaded = total - missing.reduce((n, e) => n + e.size, 0);
  const progress = (file) => options.onProgress?.({ loaded, total, fraction: total ? loaded / total : 1, file });
  progress(null);

  const fetchOne = async (entry) => {
    const url = blobUrl(entry, manifestUrl);
    for (let attempt = 0; ; attempt++) {
      let mine = 0;
      const bytes = await download(url, entry.size, {
        retries,
        fetchImpl,
        signal: options.signal,
        onBytes: (n) => {
          mine += n;
          loaded += n;
          progress(entry.path);
        },
      });
      const digest = await sha256(bytes, wasm);
      if (digest === entry.sha256) return bytes;
      loaded -= mine;
      if (attempt >= retries) throw new Error(`${entry.path}: sha256 ${digest} does not match the manifest's ${entry.sha256}`);
      warn(options, `${entry.path}: sha256 mismatch on download; fetching again`);
    }
  };
  await Promise.all(
    missing.map(async (entry) => {
      const bytes = await fetchOne(entry);
      files.set(entry.path, bytes);
      sha256s.set(entry.path, entry.sha256);
      stats.fetched.push(entry.path);
      if (cache) {
        try {
          await cache.put('files', fileRecord(entry, manifest, bytes));
        } catch (e) {
          if (!isQuota(e)) warn(options, `caching ${entry.path} failed: ${e}`);
          else warn(options, `storage quota exceeded caching ${entry.path}; running uncached`);
        }
      }
    }),
  );
  if (cache) {
    try {
      await cache.put('manifests', { url: manifestUrl, bytes: manifestBytes.buffer });
      stats.evicted = await cache.evictOthers(manifest.name, new Set(entries.map((e) => e.sha256)));
    } catch (e) {
      warn(options, `cache bookkeeping failed: ${e}`);
    }
  }
  progress(null);
  cache?.close();
  return { manifest, manifestUrl, files, sha256s };
}

/** Loads the bundle into the wasm core. */
async function loadWasm(options, variant) {
  const t0 = now();
  // The .wasm compiles while the bundle downloads.
  const wasmP = variant.init(options.wasmUrl);
  wasmP.catch(() => {});
  let tWasm;
  wasmP.then(() => (tWasm = now()), () => {});
  const stats = { fetched: [], fromCache: [], evicted: [], cache: 'none' };
  const b = await fetchBundle(options, wasmP, stats);
  const tFetched = now();
  const wasm = await wasmP;
  const tModel = now();
  const embedder = wasm.Embedder.fromHashedBundle(b.files, b.sha256s);
  stats.fetchMs = tFetched - t0;
  stats.wasmReadyMs = tWasm - t0;
  stats.modelMs = now() - tModel;
  stats.loadMs = now() - t0;
  return {
    backend: variant.name,
    dim: embedder.dim,
    model: embedder.model,
    stats,
    embed: async (texts) => embedder.embed(texts),
    tokenize: async (texts) => embedder.tokenize(texts),
    embedSync: (texts) => embedder.embed(texts),
    free: () => embedder.free(),
  };
}

const now = () => (globalThis.performance ? performance.now() : Date.now());

/** The `fallbackUrl` backend: POST {"texts": [...]} → {"embeddings": [[...]]}. */
function serverEmbedder(options, reason) {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const e = {
    backend: 'server',
    dim: undefined,
    model: undefined,
    reason,
    stats: {},
    embed: async (texts) => {
      const res = await fetchImpl(options.fallbackUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ texts }),
      });
      if (!res.ok) throw new Error(`POST ${options.fallbackUrl}: HTTP ${res.status}`);
      const { embeddings } = await res.json();
      const dim = embeddings[0]?.length ?? e.dim ?? 0;
      e.dim = dim;
      const out = new Float32Array(embeddings.length * dim);
      embeddings.forEach((row, i) => out.set(row, i * dim));
      return out;
    },
    tokenize: async () => {
      throw new Error('tokenize is not available on the server backend');
    },
    free: () => {},
  };
  return e;
}

/** Runs the wasm loader in a dedicated worker (this package's `worker.js`); same API, async. */
async function loadInWorker(options, variant) {
  const workerUrl = options.workerUrl ?? new URL('./worker.js', import.meta.url);
  const worker = new Worker(workerUrl, { type: 'module' });
  let seq = 0;
  const pending = new Map();
  let ready;
  const loaded = new Promise((resolve, reject) => (ready = { resolve, reject }));
  worker.onmessage = ({ data }) => {
    if (data.type === 'progress') options.onProgress?.(data.progress);
    else if (data.type === 'warning') warn(options, data.message);
    else if (data.type === 'loaded') ready.resolve(data);
    else if (data.type === 'error' && data.id === undefined) ready.reject(new Error(data.message));
    else {
      const p = pending.get(data.id);
      pending.delete(data.id);
      if (data.type === 'error') p?.reject(new Error(data.message));
      else p?.resolve(data.result);
    }
  };
  worker.onerror = (ev) => {
    const err = new Error(`worker: ${ev.message ?? 'failed to start'}`);
    ready.reject(err);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const plain = Object.fromEntries(
    Object.entries(options).filter(([, v]) => typeof v !== 'function' && !(v instanceof AbortSignal)),
  );
  const base = typeof location === 'object' ? location.href : undefined;
  plain.url = new URL(options.url, base).href;
  if (options.wasmUrl) plain.wasmUrl = new URL(options.wasmUrl, base).href;
  worker.postMessage({ type: 'load', options: { ...plain, worker: false, variant: variant.name } });
  let info;
  try {
    info = await loaded;
  } catch (e) {
    worker.terminate();
    throw e;
  }
  const call = (type, texts) =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve, reject });
      worker.postMessage({ type, id, texts });
    });
  return {
    backend: info.backend,
    dim: info.dim,
    model: info.model,
    stats: info.stats,
    worker: true,
    embed: (texts) => call('embed', texts),
    tokenize: (texts) => call('tokenize', texts),
    free: () => worker.terminate(),
  };
}

/**
 * Loads an embedder. See index.d.ts for the options. Resolves to an object whose `backend` is
 * `"wasm-simd"` (the wasm core, on this thread or in a worker) or `"server"` (the `fallbackUrl`).
 */
export async function loadEmbedder(options) {
  if (!options || !options.url) throw new Error('loadEmbedder: `url` (the bundle manifest URL) is required');
  const variant = options.variant
    ? WASM_VARIANTS.find((v) => v.name === options.variant)
    : pickVariant(options);
  if (!variant) {
    const reason = options.pretendNoSimd ? 'SIMD disabled by pretendNoSimd' : 'WebAssembly SIMD is not supported';
    if (options.fallbackUrl) {
      warn(options, `${reason}; using the server at ${options.fallbackUrl}`);
      return serverEmbedder(options, reason);
    }
    throw new Error(`${reason} and no fallbackUrl is set`);
  }
  try {
    if (options.worker) return await loadInWorker(options, variant);
    return await loadWasm(options, variant);
  } catch (e) {
    if (!options.fallbackUrl) throw e;
    const reason = `wasm failed: ${e?.message ?? e}`;
    warn(options, `${reason}; using the server at ${options.fallbackUrl}`);
    return serverEmbedder(options, reason);
  }
}

/** @internal used by worker.js */
export const _internal = { loadWasm, WASM_VARIANTS };
