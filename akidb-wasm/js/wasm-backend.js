// The wasm backend: feature detection, the wasm builds this package ships (best first), and loading a
// bundle into the wasm core on the current thread (the page's, or worker.js's).

import initWasm, { Embedder, failedAllocationBytes, lastPanicMessage, sha256Hex, verifyManifestSignature } from './web/akidb_wasm.js';
import * as webGlue from './web/akidb_wasm.js';
import { fetchBundle } from './bundle.js';
import { explainTrap, isTrap, now, warn } from './util.js';
import { wasmRelaxedSimdSupported, wasmSimdSupported, wasmThreadsSupported } from './features.js';

/** The wasm builds this package ships, best first; the loader takes the first whose `supported(options)`
 * holds, the way Ruffle picks its builds. The two single-thread builds share one wasm-bindgen glue
 * (web/akidb_wasm.js: build.sh checks the two builds' glue is the same bytes), so one realm runs one of
 * them: the first one initialised. The threads build has its own glue (web-threads/). */
export const WASM_VARIANTS = [
  {
    // SIMD128 + atomics on shared memory: tract's matmuls on a pool of `threads` Web Workers
    // (wasm-bindgen-rayon). Picked only when the caller asks for a pool (`threads`), in worker mode, on a
    // cross-origin-isolated page: the pool needs SharedArrayBuffer, and a page's main thread may not block
    // on Atomics.wait (it would spin while the pool works). Opt-in because on the 2-core machine it was
    // measured on it is not yet faster than the single-thread builds (akidb-wasm/js/README.md).
    name: 'wasm-threads',
    supported: (options) =>
      options?.threads !== undefined && options?.worker === true && wasmSimdSupported() && wasmThreadsSupported(),
    init: (wasmUrl, options) => initThreads(wasmUrl, options?.threads),
  },
  {
    // akidb-core's wasm matmul kernel with f32x4.relaxed_madd (Cargo feature relaxed-simd); the rest of
    // the .wasm is the wasm-simd build's code.
    name: 'wasm-relaxed-simd',
    supported: () => wasmSimdSupported() && wasmRelaxedSimdSupported(),
    init: (wasmUrl) => initVariant('wasm-relaxed-simd', wasmUrl ?? relaxedWasmUrl()),
    fresh: (wasmUrl) => freshInstance(wasmUrl ?? relaxedWasmUrl()),
  },
  {
    name: 'wasm-simd',
    supported: () => wasmSimdSupported(),
    // The glue's default: web/akidb_wasm_bg.wasm beside it.
    init: (wasmUrl) => initVariant('wasm-simd', wasmUrl),
    fresh: (wasmUrl) => freshInstance(wasmUrl),
  },
];

const relaxedWasmUrl = () => new URL('./web/akidb_wasm_relaxed_simd_bg.wasm', import.meta.url);

/** What loadWasm uses of an initialised glue (`exports`: its instance's exports, for the memory). */
const coreOf = (glue, exports) => ({
  Embedder: glue.Embedder,
  sha256Hex: glue.sha256Hex,
  verifyManifestSignature: glue.verifyManifestSignature,
  failedAllocationBytes: glue.failedAllocationBytes,
  lastPanicMessage: glue.lastPanicMessage,
  memory: exports.memory,
});

/** The threads build's glue, once initialised with its pool (rayon's global pool is built once per realm). */
let threadsGlue = null;

async function initThreads(wasmUrl, threads) {
  const n = threads ?? (globalThis.navigator?.hardwareConcurrency || 1);
  if (!Number.isInteger(n) || n < 1) throw new Error(`threads: expected a whole number >= 1, got ${threads}`);
  threadsGlue ??= (async () => {
    if (!wasmThreadsSupported()) {
      throw new Error('the wasm-threads build needs a cross-origin-isolated page (COOP same-origin, COEP require-corp): WebAssembly shared memory is missing');
    }
    const glue = await import('./web-threads/akidb_wasm.js');
    const exports = await glue.default(wasmUrl ? { module_or_path: wasmUrl } : undefined);
    // The pool's workers start while the bundle is fetched and loaded into the core (loadWasm awaits
    // `pool` before it returns): a load needs no pool, its plans are compiled at the first embed. Before,
    // the pool was awaited first, and a load from IndexedDB waited on it.
    const pool = glue.initThreadPool(n).then(() => glue.useThreadPool());
    pool.catch(() => (threadsGlue = null));
    return { ...coreOf(glue, exports), threads: n, pool };
  })();
  threadsGlue.catch(() => (threadsGlue = null));
  return threadsGlue;
}

/** The variant this realm's glue was initialised with (a second build can't be loaded beside it). */
let initialised = null;

async function initVariant(name, wasmUrl) {
  if (initialised && initialised !== name) {
    throw new Error(
      `the ${initialised} build already runs on this thread; ${name} can't be loaded beside it (use worker: true, or reload)`,
    );
  }
  initialised = name;
  let exports;
  try {
    exports = await initWasm(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  } catch (e) {
    initialised = null; // nothing was instantiated: another build may still be tried
    throw e;
  }
  return coreOf(webGlue, exports);
}

/** Instances made by `freshInstance` so far (each gets its own copy of the glue). */
let freshInstances = 0;

/**
 * A new instance of a single-thread build, apart from the one this realm's glue holds: a load that trapped
 * leaves that one unusable (its stack and heap stopped mid-call), and wasm-bindgen's glue keeps one
 * instance per module. The glue is imported again under another URL (a query the server ignores), which
 * gives it its own module state; the .wasm is the same file, so the HTTP cache answers it.
 */
async function freshInstance(wasmUrl) {
  const glueUrl = `${new URL('./web/akidb_wasm.js', import.meta.url).href}?instance=${++freshInstances}`;
  const glue = await import(/* webpackIgnore: true */ /* @vite-ignore */ glueUrl);
  // Without a URL the glue's default: web/akidb_wasm_bg.wasm beside it (the query does not carry over).
  const exports = await glue.default(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  return coreOf(glue, exports);
}

/** Tests only (index.js's `_internal`): `fault(attempt)` runs just before the core loads the bundle, attempt
 * 0 then 1, and may throw as the core would (a `WebAssembly.RuntimeError` for a trap); null removes it. */
let loadFault = null;
export function injectLoadFault(fault) {
  loadFault = fault;
}

/** The variant `options` ask for by name, else the best one this engine runs; null when none runs. */
export function pickVariant(options) {
  if (options.variant) return WASM_VARIANTS.find((v) => v.name === options.variant) ?? null;
  if (options.pretendNoSimd) return null;
  return WASM_VARIANTS.find((v) => v.supported(options)) ?? null;
}

/** Loads the bundle into the wasm core. */
export async function loadWasm(options, variant) {
  const t0 = now();
  // The .wasm compiles while the bundle downloads.
  const wasmP = variant.init(options.wasmUrl, options);
  wasmP.catch(() => {});
  let tWasm;
  wasmP.then(() => (tWasm = now()), () => {});
  const stats = { fetched: [], fromCache: [], evicted: [], cache: 'none' };
  const b = await fetchBundle(options, wasmP, stats);
  const tFetched = now();
  let wasm = await wasmP;
  const tModel = now();
  // A trap leaves the instance unusable; the error says what the core was doing and why it trapped.
  const trapSays = (core, doing, call) => {
    try {
      return call();
    } catch (e) {
      throw explainTrap(e, doing, core);
    }
  };
  const loadInto = (core, attempt) =>
    trapSays(core, 'loading the bundle', () => {
      loadFault?.(attempt);
      return core.Embedder.fromHashedBundle(b.files, b.sha256s);
    });
  let embedder;
  stats.loadAttempts = 1;
  try {
    embedder = loadInto(wasm, 0);
  } catch (e) {
    // A trap while loading: once, the bundle goes into a new instance of the same build. Why: in
    // WebKitGTK 2.50 the same load of the same bytes has panicked at random inside tract's graph code
    // (in load loops here, once in some 650 loads), and in no other engine (PERF.md). A second trap, and
    // any other error, is thrown as it is.
    if (!isTrap(e.cause) || !variant.fresh) throw e;
    warn(options, `${e.message.replace(/^@akidb\/wasm: /, '')}; loading the bundle again in a new instance of the wasm core`);
    wasm = await variant.fresh(options.wasmUrl);
    stats.loadAttempts = 2;
    embedder = loadInto(wasm, 1);
  }
  // The threads build: its pool, started beside the load.
  await wasm.pool;
  stats.fetchMs = tFetched - t0;
  stats.wasmReadyMs = tWasm - t0;
  stats.modelMs = now() - tModel;
  stats.loadMs = now() - t0;
  // Threads computing each matmul: the pool's size (threads build), else this one.
  stats.threads = wasm.threads ?? 1;
  return {
    // 'wasm-simd' for every build (what it always said: the wasm core, not the server); `variant` names
    // the build.
    backend: 'wasm-simd',
    variant: variant.name,
    dim: embedder.dim,
    model: embedder.model,
    stats,
    embed: async (texts) => trapSays(wasm, 'embedding', () => embedder.embed(texts)),
    tokenize: async (texts) => trapSays(wasm, 'tokenizing', () => embedder.tokenize(texts)),
    embedSync: (texts) => trapSays(wasm, 'embedding', () => embedder.embed(texts)),
    // The build's linear memory (shared with the pool in the threads build): what the model and the
    // plans hold, plus what the allocator keeps from the largest batch so far.
    wasmMemoryBytes: async () => wasm.memory.buffer.byteLength,
    free: () => embedder.free(),
  };
}

export { Embedder, failedAllocationBytes, lastPanicMessage, sha256Hex, verifyManifestSignature, initWasm, wasmSimdSupported, wasmRelaxedSimdSupported, wasmThreadsSupported };
