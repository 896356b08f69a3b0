// Loads the packaged model bundle once per container: reads manifest.json and every file it lists, hashes
// each with node:crypto (native sha256, several times faster than the core's wasm sha256) and hands bytes and
// digests to `Embedder.fromHashedBundle`, which checks sizes and compares every digest with the manifest
// before use: a changed byte in any file is refused with an error that names the file.
//
// The steps await between them, so a handler waiting on a cold-start budget gets control back between the
// reads, the wasm compile and the model parse (a step that has started runs to its end: JS can't preempt it).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Loads the bundle in `dir`. Returns `{ embedder, model, dim, timings }`; `timings` has the milliseconds of
 * each step (`readMs`, `hashMs`, `wasmMs`, `parseMs`, `warmMs`). `warmup` embeds one sentence so the first
 * request doesn't pay for compiling the single-sentence plan.
 */
export async function loadBundle(dir, { warmup = true } = {}) {
  const t0 = performance.now();
  const manifestBytes = await fs.readFile(path.join(dir, 'manifest.json'));
  let manifest;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${dir}/manifest.json: not JSON (${e.message})`);
  }
  if (!Array.isArray(manifest.files)) throw new Error(`${dir}/manifest.json: no "files" list`);
  const files = { 'manifest.json': new Uint8Array(manifestBytes) };
  for (const f of manifest.files) {
    // The manifest names files inside the bundle; nothing may point outside it.
    if (typeof f.path !== 'string' || f.path.includes('..') || path.isAbsolute(f.path)) {
      throw new Error(`${dir}/manifest.json: bad file path ${JSON.stringify(f.path)}`);
    }
    files[f.path] = new Uint8Array(await fs.readFile(path.join(dir, f.path)));
  }
  const t1 = performance.now();
  await tick();
  const sha256s = {};
  for (const f of manifest.files) {
    sha256s[f.path] = crypto.createHash('sha256').update(files[f.path]).digest('hex');
    await tick();
  }
  const t2 = performance.now();
  // The nodejs build compiles its .wasm when first imported.
  const { Embedder } = await import('@akidb/wasm');
  const t3 = performance.now();
  await tick();
  const embedder = Embedder.fromHashedBundle(files, sha256s);
  const t4 = performance.now();
  if (warmup) {
    await tick();
    embedder.embed(['The edge is warm.']);
  }
  const t5 = performance.now();
  return {
    embedder,
    model: embedder.model,
    dim: embedder.dim,
    timings: { readMs: t1 - t0, hashMs: t2 - t1, wasmMs: t3 - t2, parseMs: t4 - t3, warmMs: t5 - t4, totalMs: t5 - t0 },
  };
}
