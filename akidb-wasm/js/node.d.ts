// The Node entry (node.mjs) re-exports the nodejs build's classes; wasm-bindgen generates their types.
export { Embedder, failedAllocationBytes, lastPanicMessage, sha256Hex, verifyManifestSignature } from './node/akidb_wasm.js';
/** The wasm build this process runs: relaxed SIMD where Node validates it, else SIMD128. */
export const variant: 'wasm-relaxed-simd' | 'wasm-simd';
