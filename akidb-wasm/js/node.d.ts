// The Node entry (node.mjs) re-exports the nodejs build's classes; wasm-bindgen generates their types.
export { Embedder, sha256Hex } from './node/akidb_wasm.js';
