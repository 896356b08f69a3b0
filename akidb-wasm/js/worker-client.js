// The page's side of worker mode: starts this package's worker.js as a module worker, has it run the
// wasm loader, forwards its progress and warnings, and turns embed/tokenize calls into messages.

import { absoluteUrl, warn } from './util.js';

/** Runs the wasm loader in a dedicated worker (this package's `worker.js`); same API, async. */
export async function loadInWorker(options, variant) {
  const workerUrl = options.workerUrl ?? new URL('./worker.js', import.meta.url);
  const worker = new Worker(workerUrl, { type: 'module' });
  let seq = 0;
  const pending = new Map();
  let ready;
  const loaded = new Promise((resolve, reject) => (ready = { resolve, reject }));
  worker.onmessage = ({ data }) => {
    if (data.type === 'progress') options.onProgress?.(data.progress);
    else if (data.type === 'warning') warn(options, data.message);
    else if (data.type === 'loaded') ready.resolve(data);
    else if (data.type === 'error' && data.id === undefined) ready.reject(new Error(data.message));
    else {
      const p = pending.get(data.id);
      pending.delete(data.id);
      if (data.type === 'error') p?.reject(new Error(data.message));
      else p?.resolve(data.result);
    }
  };
  worker.onerror = (ev) => {
    const err = new Error(`worker: ${ev.message ?? 'failed to start'}`);
    ready.reject(err);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  // Functions and signals can't be posted; URLs are made absolute here, where the page's base applies.
  const plain = Object.fromEntries(
    Object.entries(options).filter(([, v]) => typeof v !== 'function' && !(v instanceof AbortSignal)),
  );
  plain.url = absoluteUrl(options.url);
  if (options.wasmUrl) plain.wasmUrl = absoluteUrl(options.wasmUrl);
  worker.postMessage({ type: 'load', options: { ...plain, worker: false, variant: variant.name } });
  let info;
  try {
    info = await loaded;
  } catch (e) {
    worker.terminate();
    throw e;
  }
  const call = (type, texts) =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve, reject });
      worker.postMessage({ type, id, texts });
    });
  return {
    backend: info.backend,
    variant: info.variant,
    dim: info.dim,
    model: info.model,
    stats: info.stats,
    worker: true,
    embed: (texts) => call('embed', texts),
    tokenize: (texts) => call('tokenize', texts),
    wasmMemoryBytes: () => call('wasmMemoryBytes'),
    free: () => worker.terminate(),
  };
}
