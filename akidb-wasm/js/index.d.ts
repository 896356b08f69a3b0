/** The low-level wasm embedder (akidb-core through wasm-bindgen). */
export class Embedder {
  private constructor();
  /**
   * Loads a bundle: `files` maps "manifest.json" and every path the manifest lists to its bytes. Every
   * file's size and sha256 are verified; a mismatch or missing file throws an error naming the file.
   */
  static fromBundle(files: Map<string, Uint8Array> | Record<string, Uint8Array>): Embedder;
  /**
   * Loads a bundle whose files the caller has hashed already (WebCrypto is about three times as fast as
   * hashing in wasm): `sha256s` maps each manifest path to the hex sha256 of its bytes. Sizes are
   * verified and each digest is compared with the manifest's; a mismatch, or a missing file or digest,
   * throws an error naming the file.
   */
  static fromHashedBundle(
    files: Map<string, Uint8Array> | Record<string, Uint8Array>,
    sha256s: Map<string, string> | Record<string, string>,
  ): Embedder;
  /** Row-major `texts.length × dim` L2-normalised embeddings. */
  embed(texts: string[]): Float32Array;
  /** Token ids per text (special tokens included, truncated to `maxSeqLength`). */
  tokenize(texts: string[]): Uint32Array[];
  readonly dim: number;
  readonly maxSeqLength: number;
  /** `name@version` of the bundle. */
  readonly model: string;
  /** Releases the wasm memory held by this embedder. */
  free(): void;
}

/** Lower-case hex sha256 (the core's). Needs the wasm module initialised (`initWasm`). */
export function sha256Hex(bytes: Uint8Array): string;

/** Initialises the web build's wasm module (the loader does this itself). */
export function initWasm(input?: { module_or_path?: string | URL | Response | BufferSource | WebAssembly.Module }): Promise<unknown>;

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
  /** Embedding server used when wasm can't run: POST {"texts": [...]} → {"embeddings": [[...]]}. */
  fallbackUrl?: string;
  /** Run the wasm core in a Web Worker (this package's worker.js). */
  worker?: boolean;
  /** Override the worker script URL (default: worker.js next to index.js). */
  workerUrl?: string | URL;
  /** Override the .wasm URL (default: web/akidb_wasm_bg.wasm next to the glue). */
  wasmUrl?: string | URL;
  /** Where each file lives (main-thread mode only; see blobUrlTemplate). Default: next to the manifest, or `/v1/blobs/sha256/{hex}` when `url` is a
   *  model-server manifest URL. */
  blobUrl?: (entry: FileEntry, manifestUrl: string) => string;
  /** Like blobUrl, as a string (works in worker mode, where functions can't cross): `{path}` and
   *  `{sha256}` are replaced, relative to the manifest URL. */
  blobUrlTemplate?: string;
  /** Attempts after the first for each file (default 3); broken transfers resume with Range. */
  retries?: number;
  /** Pretend WebAssembly SIMD is missing (tests the server fallback). */
  pretendNoSimd?: boolean;
  /** Force a wasm variant by name instead of feature detection. */
  variant?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

export interface LoadStats {
  cache?: 'indexeddb' | 'none';
  fetched?: string[];
  fromCache?: string[];
  evicted?: string[];
  corrupt?: string[];
  /** Milliseconds from the start of the load until the bundle's bytes were in hand (network or IndexedDB). */
  fetchMs?: number;
  /** Milliseconds from the start until the .wasm was compiled and instantiated (it overlaps the fetch). */
  wasmReadyMs?: number;
  /** Milliseconds the core took to check and prepare the model (`Embedder.fromHashedBundle`). */
  modelMs?: number;
  /** Milliseconds from the start of the load until the embedder was ready. */
  loadMs?: number;
}

export interface LoadedEmbedder {
  backend: 'wasm-simd' | 'server' | string;
  /** Embedding dimension (on the server backend, known after the first embed). */
  dim: number | undefined;
  model: string | undefined;
  worker?: boolean;
  stats: LoadStats;
  /** Why the server backend was chosen. */
  reason?: string;
  embed(texts: string[]): Promise<Float32Array>;
  tokenize(texts: string[]): Promise<Uint32Array[]>;
  free(): void;
}

export function loadEmbedder(options: LoadOptions): Promise<LoadedEmbedder>;
export function wasmSimdSupported(): boolean;
export function siblingUrl(entry: FileEntry, manifestUrl: string): string;
export function modelServerBlobUrl(entry: FileEntry, manifestUrl: string): string;
export interface WasmVariant {
  name: string;
  supported(): boolean;
  init(wasmUrl?: string | URL): Promise<{ Embedder: typeof Embedder; sha256Hex: typeof sha256Hex }>;
}
export const WASM_VARIANTS: WasmVariant[];
