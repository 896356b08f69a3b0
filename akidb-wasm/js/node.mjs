// Node entry: the nodejs build of the wasm core (no loader: read the bundle files yourself).
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const wasm = require('./node/akidb_wasm.js');
export const Embedder = wasm.Embedder;
export const sha256Hex = wasm.sha256Hex;
export const verifyManifestSignature = wasm.verifyManifestSignature;
