// Types of the high-level loader (index.js) only. What wasm-bindgen exports (`Embedder`, `sha256Hex`,
// `verifyManifestSignature`, the init function) is typed by wasm-bindgen's own declarations, generated
// with the glue by build.sh (web/akidb_wasm.d.ts), so the two can't drift apart.
import type { Embedder, sha256Hex, verifyManifestSignature } from './web/akidb_wasm.js';

export { Embedder, failedAllocationBytes, lastPanicMessage, sha256Hex, verifyManifestSignature } from './web/akidb_wasm.js';
/** Initialises the web build's wasm module (the loader does this itself). */
export { default as initWasm } from './web/akidb_wasm.js';

export interface Progress {
  /** Bytes of model files available so far (cached files count as loaded at once). */
  loaded: number;
  /** Bytes of all files the manifest lists. */
  total: number;
  /** loaded / total, 1 when done. */
  fraction: number;
  /** The file the last bytes belong to, or null for the start and end events. */
  file: string | null;
}

export interface FileEntry {
  path: string;
  role: string;
  size: number;
  sha256: string;
}

/** A trusted public key: the `key_id` and `public_key` fields of an `akidb keygen` .pub file (the same objects
 *  as the entries of a `--trusted-keys` file's "keys" list). */
export interface TrustedKey {
  /** First 16 hex characters of sha256 of the raw 32-byte ed25519 public key. */
  key_id: string;
  /** Base64 of the raw 32-byte ed25519 public key. */
  public_key: string;
}

export interface LoadOptions {
  /** URL of the bundle's manifest.json (a static bundle directory, or the model server's
   *  `/v1/models/{name}/{version}/manifest.json`). */
  url: string | URL;
  /** 'indexeddb' (default): cache files by sha256 in IndexedDB; 'none': always fetch. */
  cache?: 'indexeddb' | 'none';
  /** IndexedDB database name (default "akidb-cache"). */
  cacheName?: string;
  /** One progress stream across all files. */
  onProgress?: (p: Progress) => void;
  /** Warnings (default console.warn): quota exceeded, corrupt cache entry, fallback taken, ... */
  onWarning?: (message: string) => void;
  /** Embedding server used when wasm can't run: POST {"texts": [...]} → {"embeddings": [[...]]}, e.g.
   *  `akidb serve`'s `http://host:8080/v1/embed`. */
  fallbackUrl?: string;
  /** Run the wasm core in a Web Worker (this package's worker.js). */
  worker?: boolean;
  /** Ask for the `wasm-threads` build on a pool of this many more Web Workers. Taken in worker mode on a
   *  cross-origin-isolated page (`Cross-Origin-Opener-Policy: same-origin` and
   *  `Cross-Origin-Embedder-Policy: require-corp`) where the engine can share wasm memory with workers;
   *  elsewhere the best single-thread build runs (`stats.threads` says 1). Not set: no pool (the default:
   *  the threads build is not yet faster on every machine; see the package README's benchmark). With
   *  `variant: 'wasm-threads'` and no `threads`: `navigator.hardwareConcurrency`. The first threads load in a
   *  realm fixes the pool's size (rayon's global pool is built once). */
  threads?: number;
  /** Override the worker script URL (default: worker.js next to index.js). */
  workerUrl?: string | URL;
  /** Override the .wasm URL (default: the picked variant's, next to the glue: web/akidb_wasm_bg.wasm for
   *  `wasm-simd`, web/akidb_wasm_relaxed_simd_bg.wasm for `wasm-relaxed-simd`, web-threads/akidb_wasm_bg.wasm
   *  for `wasm-threads`). Set `variant` with it: the
   *  URL replaces whichever build feature detection picks. */
  wasmUrl?: string | URL;
  /** Where each file lives (main-thread mode only; see blobUrlTemplate). Default: next to the manifest, or,
   *  when `url`'s path ends in `/v1/models/{name}/{version}/manifest.json` (a model server),
   *  `{prefix}/v1/blobs/sha256/{hex}` with the path prefix before `/v1/models/` kept (the cases:
   *  tests/blob-urls.json in the repository). */
  blobUrl?: (entry: FileEntry, manifestUrl: string) => string;
  /** Like blobUrl, as a string (works in worker mode, where functions can't cross): `{path}` and
   *  `{sha256}` are replaced, relative to the manifest URL. */
  blobUrlTemplate?: string;
  /** Keys whose signature the manifest must carry (`<manifest URL>.sig`, an ed25519 signature over the
   *  manifest's exact bytes, made by `akidb bundle sign`). More than one: a rotation, either key's signature
   *  is accepted; revoke a key by leaving it out. With keys, an unsigned manifest, one signed by another key,
   *  or one whose bytes changed is refused (the error names the key id and the manifest URL) before any file
   *  is fetched or read from the cache. Without (absent), nothing is checked and the loader warns once per
   *  page. An empty list is an error (revoking the last key must not switch the check off). */
  trustedKeys?: TrustedKey[];
  /** Attempts after the first for each file (default 3); broken transfers resume with Range. */
  retries?: number;
  /** Pretend WebAssembly SIMD is missing (tests the server fallback). */
  pretendNoSimd?: boolean;
  /** Force a wasm variant by name (a `WASM_VARIANTS` name: 'wasm-threads', 'wasm-relaxed-simd',
   *  'wasm-simd') instead of feature detection. One thread runs one of the single-thread builds: the first
   *  loaded on it (another needs `worker: true`). 'wasm-threads' forced on a page's main thread runs, but the
   *  page stalls while the pool works (the main thread spins instead of blocking). */
  variant?: WasmVariantName | string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

export interface LoadStats {
  cache?: 'indexeddb' | 'none';
  fetched?: string[];
  fromCache?: string[];
  evicted?: string[];
  corrupt?: string[];
  /** How the files this load fetched were stored in IndexedDB: 'blob', or 'arraybuffer' where the engine
   *  refuses Blob records (WebKit's ephemeral sessions: Safari's private browsing, WebKitWebDriver). */
  cacheRecords?: 'blob' | 'arraybuffer';
  /** 'verified' (trustedKeys given and the signature checked) or 'not checked' (no trustedKeys). */
  signature?: 'verified' | 'not checked';
  /** The id of the key whose signature was verified. */
  keyId?: string;
  /** Milliseconds from the start of the load until the bundle's bytes were in hand (network or IndexedDB). */
  fetchMs?: number;
  /** Milliseconds from the start until the .wasm was compiled and instantiated (it overlaps the fetch). */
  wasmReadyMs?: number;
  /** Milliseconds the core took to check and prepare the model (`Embedder.fromHashedBundle`). */
  modelMs?: number;
  /** Milliseconds from the start of the load until the embedder was ready. */
  loadMs?: number;
  /** Threads the matmuls run on: the pool's size for `wasm-threads`, else 1. */
  threads?: number;
  /** Instances of the wasm core the bundle was loaded into: 1, or 2 when the first trapped while loading
   *  it (a warning says why) and a new instance of the same build took it. */
  loadAttempts?: number;
}

/** The wasm builds this package ships, best first. */
export type WasmVariantName = 'wasm-threads' | 'wasm-relaxed-simd' | 'wasm-simd';

export interface LoadedEmbedder {
  /** 'wasm-simd': the wasm core (whichever build; see `variant`); 'server': the `fallbackUrl`. */
  backend: 'wasm-simd' | 'server' | string;
  /** The wasm build that runs: 'wasm-threads' (SIMD128 on a worker pool), 'wasm-relaxed-simd' (relaxed
   *  SIMD: fused multiply-add, int8 dot product) or 'wasm-simd' (SIMD128); null on the server backend. */
  variant: WasmVariantName | string | null;
  /** Embedding dimension (on the server backend, known after the first embed). */
  dim: number | undefined;
  model: string | undefined;
  worker?: boolean;
  stats: LoadStats;
  /** Why the server backend was chosen. */
  reason?: string;
  embed(texts: string[]): Promise<Float32Array>;
  tokenize(texts: string[]): Promise<Uint32Array[]>;
  /** Bytes of the wasm build's linear memory (model, plans, and what the allocator keeps from the largest
   *  batch so far); absent on the server backend. */
  wasmMemoryBytes?(): Promise<number>;
  free(): void;
}

export function loadEmbedder(options: LoadOptions): Promise<LoadedEmbedder>;
export function wasmSimdSupported(): boolean;
/** True when this engine validates WebAssembly relaxed SIMD (the `wasm-relaxed-simd` build runs). */
export function wasmRelaxedSimdSupported(): boolean;
/** True when this realm has WebAssembly shared memory and Web Workers (a cross-origin-isolated page):
 *  the `wasm-threads` build runs. */
export function wasmThreadsSupported(): boolean;
export function siblingUrl(entry: FileEntry, manifestUrl: string): string;
export function modelServerBlobUrl(entry: FileEntry, manifestUrl: string): string;
/** Where the loader fetches a manifest's signature: its URL with ".sig" appended to the path. */
export function signatureUrl(manifestUrl: string): string;
export interface WasmVariant {
  name: WasmVariantName | string;
  /** Whether this build runs here for these options (`wasm-threads` also needs `worker: true`). */
  supported(options?: LoadOptions): boolean;
  init(wasmUrl?: string | URL, options?: LoadOptions): Promise<{
    Embedder: typeof Embedder;
    sha256Hex: typeof sha256Hex;
    verifyManifestSignature: typeof verifyManifestSignature;
  }>;
}
export const WASM_VARIANTS: WasmVariant[];
