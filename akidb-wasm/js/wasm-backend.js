// The wasm backend: feature detection, the wasm builds this package ships (best first), and loading a
// bundle into the wasm core on the current thread (the page's, or worker.js's).

import initWasm, { Embedder, sha256Hex, verifyManifestSignature } from './web/akidb_wasm.js';
import { fetchBundle } from './bundle.js';
import { now } from './util.js';
import { wasmRelaxedSimdSupported, wasmSimdSupported } from './features.js';

/** The wasm builds this package ships, best first; the loader takes the first whose `supported()` holds,
 * the way Ruffle picks its builds. Both builds share one wasm-bindgen glue (web/akidb_wasm.js: build.sh
 * checks the two builds' glue is the same bytes), so one realm runs one build: the first one initialised.
 * A threaded build is one more entry, first, whose `supported()` also requires `crossOriginIsolated`. */
export const WASM_VARIANTS = [
  {
    // akidb-core's wasm matmul kernel with f32x4.relaxed_madd (Cargo feature relaxed-simd); the rest of
    // the .wasm is the wasm-simd build's code.
    name: 'wasm-relaxed-simd',
    supported: () => wasmSimdSupported() && wasmRelaxedSimdSupported(),
    init: (wasmUrl) => initVariant('wasm-relaxed-simd', wasmUrl ?? new URL('./web/akidb_wasm_relaxed_simd_bg.wasm', import.meta.url)),
  },
  {
    name: 'wasm-simd',
    supported: () => wasmSimdSupported(),
    // The glue's default: web/akidb_wasm_bg.wasm beside it.
    init: (wasmUrl) => initVariant('wasm-simd', wasmUrl),
  },
];

/** The variant this realm's glue was initialised with (a second build can't be loaded beside it). */
let initialised = null;

async function initVariant(name, wasmUrl) {
  if (initialised && initialised !== name) {
    throw new Error(
      `the ${initialised} build already runs on this thread; ${name} can't be loaded beside it (use worker: true, or reload)`,
    );
  }
  initialised = name;
  try {
    await initWasm(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  } catch (e) {
    initialised = null; // nothing was instantiated: another build may still be tried
    throw e;
  }
  return { Embedder, sha256Hex, verifyManifestSignature };
}

/** The variant `options` ask for by name, else the best one this engine runs; null when none runs. */
export function pickVariant(options) {
  if (options.variant) return WASM_VARIANTS.find((v) => v.name === options.variant) ?? null;
  if (options.pretendNoSimd) return null;
  return WASM_VARIANTS.find((v) => v.supported()) ?? null;
}

/** Loads the bundle into the wasm core. */
export async function loadWasm(options, variant) {
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
    // 'wasm-simd' for every build (what it always said: the wasm core, not the server); `variant` names
    // the build.
    backend: 'wasm-simd',
    variant: variant.name,
    dim: embedder.dim,
    model: embedder.model,
    stats,
    embed: async (texts) => embedder.embed(texts),
    tokenize: async (texts) => embedder.tokenize(texts),
    embedSync: (texts) => embedder.embed(texts),
    free: () => embedder.free(),
  };
}

export { Embedder, sha256Hex, verifyManifestSignature, initWasm, wasmSimdSupported, wasmRelaxedSimdSupported };
