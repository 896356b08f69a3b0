export { Embedder, sha256Hex } from './index.js';
