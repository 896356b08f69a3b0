// The wasm backend: feature detection, the wasm builds this package ships (best first), and loading a
// bundle into the wasm core on the current thread (the page's, or worker.js's).

import initWasm, { Embedder, sha256Hex, verifyManifestSignature } from './web/akidb_wasm.js';
import { fetchBundle } from './bundle.js';
import { now } from './util.js';

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

/** The wasm builds this package ships, best first. Variants are tried best-first, the way Ruffle picks its
 * builds: a later relaxed-SIMD or threaded build is one more entry with its own `supported()` and module
 * URL. */
export const WASM_VARIANTS = [
  {
    name: 'wasm-simd',
    supported: () => wasmSimdSupported(),
    init: async (wasmUrl) => {
      await initWasm(wasmUrl ? { module_or_path: wasmUrl } : undefined);
      return { Embedder, sha256Hex, verifyManifestSignature };
    },
  },
];

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

export { Embedder, sha256Hex, verifyManifestSignature, initWasm };
