// The `fallbackUrl` backend, for engines that can't run the wasm core: `akidb serve`'s
// POST /v1/embed {"texts": [...]} → {"embeddings": [[...]]}, behind the same API as the wasm backend.

/** An embedder that posts to `options.fallbackUrl`; `reason` says why the wasm core is not used. */
export function serverEmbedder(options, reason) {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const e = {
    backend: 'server',
    variant: null,
    dim: undefined,
    model: undefined,
    reason,
    stats: {},
    embed: async (texts) => {
      const res = await fetchImpl(options.fallbackUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ texts }),
      });
      if (!res.ok) throw new Error(`POST ${options.fallbackUrl}: HTTP ${res.status}`);
      const { embeddings } = await res.json();
      const dim = embeddings[0]?.length ?? e.dim ?? 0;
      e.dim = dim;
      const out = new Float32Array(embeddings.length * dim);
      embeddings.forEach((row, i) => out.set(row, i * dim));
      return out;
    },
    tokenize: async () => {
      throw new Error('tokenize is not available on the server backend');
    },
    free: () => {},
  };
  return e;
}
