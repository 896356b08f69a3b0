// A model bundle over HTTP: where each file lives (one rule, the same as the Rust client's, pinned by the
// table tests/blob-urls.json), and fetching the manifest and every file, from IndexedDB when cached, with
// one progress stream; with trusted keys, the manifest's signature checked before any file is used (and the
// cached signature re-checked when the cached manifest is used); every file's sha256 checked on download
// and again when read from the cache.

import { Cache, fileRecord, isQuota, recordBytes } from './cache.js';
import { download, sha256 } from './download.js';
import { fetchSignature, signatureUrl, trustedKeysJson, verifyManifest } from './signature.js';
import { absoluteUrl, warn } from './util.js';

const MANIFEST = 'manifest.json';

// A model-server manifest: its URL's path ends in /v1/models/{name}/{version}/manifest.json. Whatever
// comes before that (a CDN or proxy path prefix) is kept for the blobs.
const MODEL_SERVER_MANIFEST = /\/v1\/models\/[^/]+\/[^/]+\/manifest\.json$/;

/** Default location of a bundle file: next to the manifest (a static directory of the bundle). */
export function siblingUrl(entry, manifestUrl) {
  return new URL(entry.path, manifestUrl).href;
}

/**
 * Location of a bundle file on the AkiDB model server: `{prefix}/v1/blobs/sha256/{hex}`, where `{prefix}`
 * is the manifest URL's path before `/v1/models/…/manifest.json` (empty for any other URL). The manifest
 * URL's query and fragment are not carried over: blobs are content-addressed and need neither.
 */
export function modelServerBlobUrl(entry, manifestUrl) {
  const url = new URL(manifestUrl);
  const m = MODEL_SERVER_MANIFEST.exec(url.pathname);
  // Set on the URL object rather than resolved as a reference: a prefix ending in "/" would make
  // "//v1/blobs/…" a network-path reference (another host).
  url.pathname = `${m ? url.pathname.slice(0, m.index) : ''}/v1/blobs/sha256/${entry.sha256}`;
  url.search = '';
  url.hash = '';
  return url.href;
}

/** Where the loader fetches a file by default: the model server's blob for a model-server manifest URL,
 * else the file beside the manifest. */
export function fileUrl(entry, manifestUrl) {
  return MODEL_SERVER_MANIFEST.test(new URL(manifestUrl).pathname)
    ? modelServerBlobUrl(entry, manifestUrl)
    : siblingUrl(entry, manifestUrl);
}

/** The caller's file locator (`blobUrl`, else `blobUrlTemplate`), else `fileUrl`. */
function fileLocator(options, manifestUrl) {
  if (options.blobUrl) return options.blobUrl;
  const template = options.blobUrlTemplate;
  if (!template) return fileUrl;
  return (entry) => new URL(template.replaceAll('{path}', entry.path).replaceAll('{sha256}', entry.sha256), manifestUrl).href;
}

/** Fetches (or reads from cache) every file of the bundle; returns {manifest, manifestUrl, files, sha256s}. */
export async function fetchBundle(options, wasm, stats) {
  const manifestUrl = absoluteUrl(options.url);
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const retries = options.retries ?? 3;
  const blobUrl = fileLocator(options, manifestUrl);
  // The manifest request and opening IndexedDB overlap, and so do the reads of the cached files: on a
  // warm start they are most of the time before the model can load.
  const manifestP = fetchImpl(manifestUrl, { cache: 'no-cache' }).then(async (res) => {
    if (!res.ok) throw new Error(`GET ${manifestUrl}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  });
  manifestP.catch(() => {});
  const keysJson = trustedKeysJson(options.trustedKeys);
  const sigUrl = signatureUrl(manifestUrl);
  const signatureP = keysJson ? fetchSignature(fetchImpl, sigUrl) : Promise.resolve(undefined);
  signatureP.catch(() => {});
  let cache = null;
  if ((options.cache ?? 'indexeddb') === 'indexeddb') {
    try {
      cache = await Cache.open(options.cacheName);
    } catch (e) {
      warn(options, `IndexedDB unavailable (${e}); running uncached`);
    }
  }
  stats.cache = cache ? 'indexeddb' : 'none';

  // The manifest: from the network when reachable (it is small, and names the current version), else the
  // copy cached for this URL, so a cached model works offline.
  // With trusted keys its signature comes from the same place: the network, else the cache's copy, which is
  // checked again like any cached manifest's.
  let manifestBytes;
  let signature;
  try {
    manifestBytes = await manifestP;
    signature = await signatureP;
  } catch (e) {
    const cached = cache && (await cache.get('manifests', manifestUrl).catch(() => null));
    if (!cached) throw e;
    warn(options, `manifest or signature unreachable (${e.message ?? e}); using the cached ones`);
    manifestBytes = new Uint8Array(cached.bytes);
    signature = cached.signature ? new Uint8Array(cached.signature) : undefined;
  }
  // The signature is checked while the cached files are read and hashed (reads only); nothing the manifest
  // lists is deleted, fetched or handed to the core before it is verified.
  const verified = keysJson ? verifyManifest(wasm, manifestBytes, signature, keysJson, manifestUrl) : Promise.resolve(null);
  verified.catch(() => {});
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch (e) {
    cache?.close();
    await verified; // a changed manifest is reported as such, not as bad JSON
    throw new Error(`${manifestUrl}: not JSON: ${e.message}`);
  }
  const entries = manifest.files;

  const files = new Map([[MANIFEST, manifestBytes]]);
  // Each file's sha256, as checked here; the core compares them with the manifest before use.
  const sha256s = new Map();
  const missing = [];
  // Cached files are read and hashed in parallel (WebCrypto hashes off this thread).
  const readCached = async () =>
    Promise.all(
      entries.map(async (entry) => {
        if (!cache) return null;
        const rec = await cache.get('files', entry.sha256).catch((e) => {
          warn(options, `cache read failed (${e}); fetching ${entry.path}`);
          return null;
        });
        const bytes = await recordBytes(rec, entry.size);
        const digest = bytes && (await sha256(bytes, wasm));
        return { rec, bytes, digest };
      }),
    );
  const cachedP = readCached();
  cachedP.catch(() => {});
  const keyId = await verified.catch((e) => {
    cache?.close();
    throw e;
  });
  if (keyId) stats.keyId = keyId;
  stats.signature = keyId ? 'verified' : 'not checked';
  const cached = await cachedP;
  for (const [i, entry] of entries.entries()) {
    const { rec, bytes, digest } = cached[i] ?? {};
    if (bytes && digest === entry.sha256) {
      files.set(entry.path, bytes);
      sha256s.set(entry.path, digest);
      stats.fromCache.push(entry.path);
      continue;
    }
    if (bytes) {
      warn(options, `cached ${entry.path} is corrupt (sha256 ${digest}, manifest ${entry.sha256}); dropping it and fetching again`);
      stats.corrupt = [...(stats.corrupt ?? []), entry.path];
    }
    if (rec && cache) await cache.delete('files', entry.sha256).catch(() => {});
    missing.push(entry);
  }

  const total = entries.reduce((n, e) => n + e.size, 0);
  let loaded = total - missing.reduce((n, e) => n + e.size, 0);
  const progress = (file) => options.onProgress?.({ loaded, total, fraction: total ? loaded / total : 1, file });
  progress(null);

  const fetchOne = async (entry) => {
    const url = blobUrl(entry, manifestUrl);
    for (let attempt = 0; ; attempt++) {
      let mine = 0;
      const bytes = await download(url, entry.size, {
        retries,
        fetchImpl,
        signal: options.signal,
        onBytes: (n) => {
          mine += n;
          loaded += n;
          progress(entry.path);
        },
      });
      const digest = await sha256(bytes, wasm);
      if (digest === entry.sha256) return bytes;
      loaded -= mine;
      if (attempt >= retries) throw new Error(`${entry.path}: sha256 ${digest} does not match the manifest's ${entry.sha256}`);
      warn(options, `${entry.path}: sha256 mismatch on download; fetching again`);
    }
  };
  await Promise.all(
    missing.map(async (entry) => {
      const bytes = await fetchOne(entry);
      files.set(entry.path, bytes);
      sha256s.set(entry.path, entry.sha256);
      stats.fetched.push(entry.path);
      if (cache) {
        try {
          stats.cacheRecords = await cache.putFile(fileRecord(entry, manifest, bytes));
        } catch (e) {
          if (!isQuota(e)) warn(options, `caching ${entry.path} failed: ${e}`);
          else warn(options, `storage quota exceeded caching ${entry.path}; running uncached`);
        }
      }
    }),
  );
  if (cache) {
    try {
      const record = { url: manifestUrl, bytes: manifestBytes.slice().buffer };
      if (signature) record.signature = signature.slice().buffer;
      await cache.put('manifests', record);
      stats.evicted = await cache.evictOthers(manifest.name, new Set(entries.map((e) => e.sha256)));
    } catch (e) {
      warn(options, `cache bookkeeping failed: ${e}`);
    }
  }
  progress(null);
  cache?.close();
  return { manifest, manifestUrl, files, sha256s };
}
