// Loads the packaged model bundle once per container: reads manifest.json and every file it lists, hashes
// each with node:crypto (native sha256, several times faster than the core's wasm sha256) and hands bytes and
// digests to `Embedder.fromHashedBundle`, which checks sizes and compares every digest with the manifest
// before use: a changed byte in any file is refused with an error that names the file. With trusted keys
// configured, the manifest's detached signature (manifest.json.sig beside it) is checked first, by the core's
// own rule (@akidb/wasm's verifyManifestSignature, as every tier checks it): a missing or malformed signature,
// an unknown or revoked key or a signature that doesn't verify over the exact manifest bytes is refused with
// an error naming the key id and the manifest.
//
// The steps await between them, so a handler waiting on a cold-start budget gets control back between the
// reads, the wasm compile and the model parse (a step that has started runs to its end: JS can't preempt it).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Checks `dir`/manifest.json.sig over `manifestBytes` against the trusted keys in the JSON file
 * `trustedKeysFile` ({"keys": [{key_id, public_key}, ...]}). Returns the signing key's id; throws naming
 * the key id (when there is one) and the manifest.
 */
export async function verifyBundleSignature(dir, manifestBytes, trustedKeysFile) {
  let trusted;
  try {
    trusted = await fs.readFile(trustedKeysFile, 'utf8');
  } catch (e) {
    throw new Error(`trusted keys ${trustedKeysFile}: ${e.message}`);
  }
  let signature;
  try {
    signature = new Uint8Array(await fs.readFile(path.join(dir, 'manifest.json.sig')));
  } catch (e) {
    // Absent: the core refuses it (keys are configured), with its own message.
    if (e.code !== 'ENOENT') throw e;
  }
  // The package's Node entry, as loadBundle imports it: it picks one of the two nodejs builds (relaxed SIMD
  // on Node 22, Lambda's runtime; SIMD128 on Node 20), so the whole process compiles one .wasm.
  const { verifyManifestSignature } = await import('@akidb/wasm');
  const manifest = path.join(dir, 'manifest.json');
  const keyId = verifyManifestSignature(new Uint8Array(manifestBytes), signature, trusted, manifest);
  // The core checks nothing when the list is empty; a configured trusted-keys file must mean a check.
  if (keyId === undefined) throw new Error(`${trustedKeysFile} lists no keys, so manifest ${manifest} can't be checked; refusing it`);
  return keyId;
}

/**
 * Loads the bundle in `dir`. Returns `{ embedder, model, dim, signedBy, timings }`; `signedBy` is the key id
 * that signed the manifest (null when `trustedKeysFile` is null: not checked); `timings` has the
 * milliseconds of each step (`verifyMs`, `readMs`, `hashMs`, `wasmMs`, `parseMs`, `warmMs`). `warmup` embeds
 * one sentence so the first request doesn't pay for compiling the single-sentence plan.
 */
export async function loadBundle(dir, { warmup = true, trustedKeysFile = null } = {}) {
  const tv = performance.now();
  const manifestBytes = await fs.readFile(path.join(dir, 'manifest.json'));
  // Before anything else is read: an untrusted manifest names the files to read and their hashes.
  const signedBy = trustedKeysFile ? await verifyBundleSignature(dir, manifestBytes, trustedKeysFile) : null;
  const t0 = performance.now();
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
    signedBy,
    timings: { verifyMs: t0 - tv, readMs: t1 - t0, hashMs: t2 - t1, wasmMs: t3 - t2, parseMs: t4 - t3, warmMs: t5 - t4, totalMs: t5 - tv },
  };
}
