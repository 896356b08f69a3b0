// Never run: tsc --noEmit (run.sh) checks this use of @akidb/wasm's whole public API against the types the
// package ships: the loader's hand-written index.d.ts, and what wasm-bindgen exports (Embedder, sha256Hex,
// the init function) typed by wasm-bindgen's generated declarations, Embedder.matmulKernels() included.
// Each @ts-expect-error is a misuse the types must refuse (tsc fails if one is accepted).
import {
  Embedder,
  initWasm,
  loadEmbedder,
  modelServerBlobUrl,
  sha256Hex,
  siblingUrl,
  wasmSimdSupported,
  wasmThreadsSupported,
  WASM_VARIANTS,
} from '@akidb/wasm';
import type { FileEntry, LoadedEmbedder, LoadOptions, LoadStats, Progress } from '@akidb/wasm';

export async function loader(): Promise<number> {
  const options: LoadOptions = {
    url: new URL('/v1/models/all-MiniLM-L6-v2/1.0.0-int8/manifest.json', 'https://cdn.example/edge/'),
    cache: 'indexeddb',
    worker: true,
    threads: 2,
    fallbackUrl: 'http://127.0.0.1:8080/v1/embed',
    onProgress: (p: Progress) => console.log(p.loaded, p.total, p.fraction, p.file),
    onWarning: (message: string) => console.warn(message),
  };
  const embedder: LoadedEmbedder = await loadEmbedder(options);
  const vectors: Float32Array = await embedder.embed(['a sentence']);
  const ids: Uint32Array[] = await embedder.tokenize(['a sentence']);
  const stats: LoadStats = embedder.stats;
  const threads: number = stats.threads ?? 1;
  const memory: number = (await embedder.wasmMemoryBytes?.()) ?? 0;
  const threadsRun: boolean = WASM_VARIANTS.some((v) => v.name === 'wasm-threads' && v.supported(options));
  embedder.free();
  // @ts-expect-error `threads` is a number of workers
  await loadEmbedder({ url: '/m/manifest.json', threads: 'many' });
  // @ts-expect-error `url` is required
  await loadEmbedder({ worker: true });
  // @ts-expect-error `cache` is 'indexeddb' or 'none'
  await loadEmbedder({ url: '/m/manifest.json', cache: 'localstorage' });
  // @ts-expect-error embed takes an array of texts
  await embedder.embed('one text');
  return (
    vectors.length + ids.length + (stats.loadMs ?? 0) + WASM_VARIANTS.length + Number(wasmSimdSupported()) +
    Number(wasmThreadsSupported()) + threads + memory + Number(threadsRun)
  );
}

export function urls(entry: FileEntry): string[] {
  return [siblingUrl(entry, 'https://cdn.example/b/manifest.json'), modelServerBlobUrl(entry, 'https://cdn.example/v1/models/m/1/manifest.json')];
}

export async function core(files: Map<string, Uint8Array>, sha256s: Map<string, string>): Promise<string[]> {
  await initWasm();
  const embedder: Embedder = Embedder.fromHashedBundle(files, sha256s);
  const vectors: Float32Array = embedder.embed(['a sentence']);
  const dim: number = embedder.dim;
  const max: number = embedder.maxSeqLength;
  const model: string = embedder.model;
  const hex: string = sha256Hex(new Uint8Array([1, 2, 3]));
  // The method the hand-written declarations once lacked.
  const kernels: string[] = embedder.matmulKernels();
  embedder.free();
  // @ts-expect-error Embedder has no public constructor: fromBundle / fromHashedBundle
  new Embedder();
  // @ts-expect-error dim is read-only
  embedder.dim = 3;
  return [...kernels, hex, model, String(vectors.length + dim + max)];
}
