// @akidb/wasm worker entry: `loadEmbedder({ worker: true })` starts this file as a module worker. It runs
// the same loader (fetch, IndexedDB cache, wasm core) off the main thread and answers embed/tokenize calls.
import { loadWasm, WASM_VARIANTS } from './wasm-backend.js';

let embedder = null;

self.onmessage = async ({ data }) => {
  if (data.type === 'load') {
    const options = {
      ...data.options,
      onProgress: (progress) => self.postMessage({ type: 'progress', progress }),
      onWarning: (message) => self.postMessage({ type: 'warning', message }),
    };
    try {
      const variant = WASM_VARIANTS.find((v) => v.name === data.options.variant);
      embedder = await loadWasm(options, variant);
      const { backend, variant: name, dim, model, stats } = embedder;
      self.postMessage({ type: 'loaded', backend, variant: name, dim, model, stats });
    } catch (e) {
      self.postMessage({ type: 'error', message: String(e?.message ?? e) });
    }
    return;
  }
  try {
    if (!embedder) throw new Error('not loaded');
    if (data.type === 'embed') {
      const result = embedder.embedSync(data.texts);
      self.postMessage({ type: 'result', id: data.id, result }, [result.buffer]);
    } else if (data.type === 'wasmMemoryBytes') {
      self.postMessage({ type: 'result', id: data.id, result: await embedder.wasmMemoryBytes() });
    } else if (data.type === 'tokenize') {
      const result = await embedder.tokenize(data.texts);
      self.postMessage({ type: 'result', id: data.id, result });
    } else {
      throw new Error(`unknown message ${data.type}`);
    }
  } catch (e) {
    self.postMessage({ type: 'error', id: data.id, message: String(e?.message ?? e) });
  }
};
