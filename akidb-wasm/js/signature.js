// Bundle signatures in the loader: the trusted keys an app passes (`trustedKeys`), where a manifest's
// detached signature lives (`<manifest URL>.sig`), fetching it, and checking it with the core's one
// implementation (akidb_core::signing, exported to wasm as `verifyManifestSignature`) before any file the
// manifest lists is used. Without keys nothing is checked, and the page is told so once.

import { warn } from './util.js';

/** The signature's URL: the manifest URL with ".sig" appended to its path (query and fragment kept). */
export function signatureUrl(manifestUrl) {
  const url = new URL(manifestUrl);
  url.pathname += '.sig';
  return url.href;
}

/**
 * `trustedKeys` ([{key_id, public_key}], the fields of an `akidb keygen` .pub file) as the core's trust-list
 * JSON, or null when not given (undefined or null: nothing is checked). An empty list is refused rather
 * than taken as "check nothing": revoking the last key must not turn the check off (the edge handler
 * refuses an empty list too).
 */
export function trustedKeysJson(trustedKeys) {
  if (trustedKeys === undefined || trustedKeys === null) return null;
  if (!Array.isArray(trustedKeys)) {
    throw new Error('loadEmbedder: `trustedKeys` must be an array of {key_id, public_key} (the fields of a .pub file)');
  }
  if (trustedKeys.length === 0) {
    throw new Error('loadEmbedder: `trustedKeys` is empty, so no bundle could be accepted; give at least one key, or leave it out to skip signature checks');
  }
  const keys = trustedKeys.map((k, i) => {
    if (!k || typeof k.key_id !== 'string' || typeof k.public_key !== 'string') {
      throw new Error(`loadEmbedder: trustedKeys[${i}] is not {key_id: string, public_key: string}`);
    }
    return { key_id: k.key_id, public_key: k.public_key };
  });
  return JSON.stringify({ keys });
}

let uncheckedNoticeGiven = false;

/** Once per page (or worker): signatures are not checked because no trusted keys are configured. */
export function noticeUnchecked(options) {
  if (uncheckedNoticeGiven) return;
  uncheckedNoticeGiven = true;
  warn(options, 'model signatures are not checked (no trustedKeys); pass trustedKeys to refuse unsigned or wrongly signed bundles');
}

// Answers that mean "there is no signature" (S3 answers 403 for a missing key without list rights).
const MISSING = new Set([403, 404, 410]);

/** The signature's bytes, or undefined when the server has none; other failures throw, naming the URL. */
export async function fetchSignature(fetchImpl, url) {
  const res = await fetchImpl(url, { cache: 'no-cache' });
  if (MISSING.has(res.status)) {
    await res.arrayBuffer().catch(() => {});
    return undefined;
  }
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Checks `signature` over the exact `manifestBytes` against `keysJson` with the wasm core (`wasm` resolves
 * to it); resolves to the signing key's id, or rejects with the core's error, which names the key id and
 * `manifestUrl`.
 */
export async function verifyManifest(wasm, manifestBytes, signature, keysJson, manifestUrl) {
  return (await wasm).verifyManifestSignature(manifestBytes, signature, keysJson, manifestUrl);
}
