// Engines and timing shared by the Node and browser halves of the benchmark (bench.mjs, bench.html).
// Both engines run end to end: tokenize (the akidb tokenizer, for both) + model + mean pooling + L2.

export const now = () => performance.now();

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** `runs` timings of `fn` (ms each): the raw samples. */
export async function samples(fn, runs) {
  const ts = [];
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    await fn();
    ts.push(now() - t0);
  }
  return ts;
}

/** onnxruntime-web on the same model file: pads the batch to its longest sentence, as it must. */
export async function ortEngine(ort, modelBytes, tokenizer, dim) {
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  const t0 = now();
  const session = await ort.InferenceSession.create(modelBytes, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  const createMs = now() - t0;
  const embed = async (texts) => {
    const ids = tokenizer.tokenize(texts);
    const n = ids.length;
    const len = Math.max(...ids.map((x) => x.length));
    const inputIds = new BigInt64Array(n * len);
    const mask = new BigInt64Array(n * len);
    ids.forEach((row, i) => row.forEach((id, j) => ((inputIds[i * len + j] = BigInt(id)), (mask[i * len + j] = 1n))));
    const feeds = {
      input_ids: new ort.Tensor('int64', inputIds, [n, len]),
      attention_mask: new ort.Tensor('int64', mask, [n, len]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(n * len), [n, len]),
    };
    const out = await session.run(feeds);
    const h = out.last_hidden_state.data;
    const res = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      const L = ids[i].length;
      const v = res.subarray(i * dim, (i + 1) * dim);
      for (let t = 0; t < L; t++) {
        const off = (i * len + t) * dim;
        for (let d = 0; d < dim; d++) v[d] += h[off + d];
      }
      let norm = 0;
      for (let d = 0; d < dim; d++) norm += (v[d] /= L) ** 2;
      norm = Math.sqrt(norm) || 1;
      for (let d = 0; d < dim; d++) v[d] /= norm;
    }
    return res;
  };
  return { createMs, embed, release: () => session.release() };
}

/**
 * How long `measure` calls an engine before timing it. Engines run wasm first on a baseline compiler and
 * swap in optimised code for hot functions as it compiles in the background: on 2 vCPUs that took seconds
 * for our 13 MB module, and timing from the second call mixed the two (rounds of one build gave 7 and 12 ms
 * single-sentence medians, 2026-12-04). Every engine gets the same warm-up.
 */
export const WARM_UP_MS = 2000;

/** Warm single latency and batch-32 time of `embed`: the raw samples, and their medians. */
export async function measure(embed, sentences, { singleRuns = 30, batchRuns = 3, warmUpMs = WARM_UP_MS } = {}) {
  await embed(sentences.batch);
  const warmUpStart = now();
  do await embed([sentences.single]);
  while (now() - warmUpStart < warmUpMs);
  const singleSamples = await samples(() => embed([sentences.single]), singleRuns);
  const batchSamples = await samples(() => embed(sentences.batch), batchRuns);
  const batchMs = median(batchSamples);
  return { singleSamples, batchSamples, singleMs: median(singleSamples), batchMs, sentPerS: sentences.batch.length / (batchMs / 1e3) };
}

export function minCosine(a, b, dim) {
  let worst = 1;
  for (let i = 0; i < a.length / dim; i++) {
    let dot = 0, na = 0, nb = 0;
    for (let d = 0; d < dim; d++) {
      const x = a[i * dim + d], y = b[i * dim + d];
      dot += x * y; na += x * x; nb += y * y;
    }
    worst = Math.min(worst, dot / Math.sqrt(na * nb));
  }
  return worst;
}
