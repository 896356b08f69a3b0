// @akidb/wasm — the high-level loader. `loadEmbedder()` fetches a model bundle (manifest first, then its
// files) with one progress stream, retries and Range resume; caches the files in IndexedDB keyed by
// sha256; verifies every file's sha256 on download and again before use (WebCrypto, whose digests the
// core compares with the manifest's along with the sizes: Bundle::from_hashed_files);
// runs the wasm core on this thread or in a Web Worker; and falls back to an embedding server when wasm
// can't run. With `trustedKeys`, the manifest's detached signature (`<manifest URL>.sig`) is checked by the
// core before any file is used. The low-level `Embedder` (akidb-core through wasm-bindgen) is re-exported.
//
// One module per concern: download.js (one file: retries, Range resume, sha256), cache.js (IndexedDB),
// bundle.js (where files live, fetching a whole bundle), wasm-backend.js (feature detection, the wasm
// core), signature.js (trusted keys, the manifest's signature), server-backend.js (the fallbackUrl
// backend), worker-client.js (worker mode; worker.js is the worker's side). This file picks a backend.

import { serverEmbedder } from './server-backend.js';
import {
  Embedder,
  failedAllocationBytes,
  initWasm,
  injectLoadFault,
  lastPanicMessage,
  loadWasm,
  pickVariant,
  sha256Hex,
  verifyManifestSignature,
  WASM_VARIANTS,
  wasmRelaxedSimdSupported,
  wasmSimdSupported,
  wasmThreadsSupported,
} from './wasm-backend.js';
import { loadInWorker } from './worker-client.js';
import { noticeUnchecked, trustedKeysJson } from './signature.js';
import { warn } from './util.js';

export {
  Embedder,
  failedAllocationBytes,
  lastPanicMessage,
  sha256Hex,
  verifyManifestSignature,
  initWasm,
  wasmSimdSupported,
  wasmRelaxedSimdSupported,
  wasmThreadsSupported,
  WASM_VARIANTS,
};
export { siblingUrl, modelServerBlobUrl } from './bundle.js';
export { signatureUrl } from './signature.js';

/**
 * Loads an embedder. See index.d.ts for the options. Resolves to an object whose `backend` is
 * `"wasm-simd"` (the wasm core, on this thread or in a worker) or `"server"` (the `fallbackUrl`), and whose
 * `variant` names the wasm build feature detection picked (`"wasm-threads"` when `threads` is set, in worker
 * mode on a cross-origin-isolated page; else `"wasm-relaxed-simd"` or `"wasm-simd"`; null on the server).
 */
export async function loadEmbedder(options) {
  if (!options || !options.url) throw new Error('loadEmbedder: `url` (the bundle manifest URL) is required');
  // A bad key list is the caller's error: thrown here, before a worker starts or the server fallback could
  // be taken for it.
  const checkSignatures = trustedKeysJson(options.trustedKeys) !== null;
  const variant = pickVariant(options);
  if (!variant && options.variant) {
    // A misspelt build is the caller's error, not a reason to fall back.
    throw new Error(`loadEmbedder: unknown variant ${options.variant} (known: ${WASM_VARIANTS.map((v) => v.name).join(', ')})`);
  }
  if (!variant) {
    const reason = options.pretendNoSimd ? 'SIMD disabled by pretendNoSimd' : 'WebAssembly SIMD is not supported';
    if (options.fallbackUrl) {
      warn(options, `${reason}; using the server at ${options.fallbackUrl}`);
      return serverEmbedder(options, reason);
    }
    throw new Error(`${reason} and no fallbackUrl is set`);
  }
  if (!checkSignatures) noticeUnchecked(options);
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
export const _internal = { loadWasm, WASM_VARIANTS, injectLoadFault };
