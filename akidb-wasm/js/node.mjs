// Node entry: the nodejs build of the wasm core (no loader: read the bundle files yourself). Two builds
// ship, as in the browser: node-relaxed-simd/ where this Node validates relaxed SIMD (Node 21+, or Node 20
// with --experimental-wasm-relaxed-simd), else node/ (SIMD128). Each nodejs glue compiles its .wasm when
// required, so the choice is made before the require. AKIDB_WASM_VARIANT=wasm-simd|wasm-relaxed-simd forces one.
import { createRequire } from 'node:module';
import { wasmRelaxedSimdSupported } from './features.js';

const require = createRequire(import.meta.url);
const DIRS = { 'wasm-relaxed-simd': './node-relaxed-simd/akidb_wasm.js', 'wasm-simd': './node/akidb_wasm.js' };
const forced = process.env.AKIDB_WASM_VARIANT;
if (forced && !DIRS[forced]) {
  throw new Error(`AKIDB_WASM_VARIANT=${forced}: expected one of ${Object.keys(DIRS).join(', ')}`);
}

/** The wasm build this process runs: 'wasm-relaxed-simd' or 'wasm-simd'. */
export const variant = forced || (wasmRelaxedSimdSupported() ? 'wasm-relaxed-simd' : 'wasm-simd');
const wasm = require(DIRS[variant]);
export const Embedder = wasm.Embedder;
export const sha256Hex = wasm.sha256Hex;
export const verifyManifestSignature = wasm.verifyManifestSignature;
// After a trap (a WebAssembly.RuntimeError): the size of the allocation the core could not get (0: none
// failed) and the last panic's message (undefined: none).
export const failedAllocationBytes = wasm.failedAllocationBytes;
export const lastPanicMessage = wasm.lastPanicMessage;
