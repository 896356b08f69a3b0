// The IndexedDB cache: `files` holds {sha256, bytes, path, name, version} keyed by sha256, `bytes` a Blob,
// or an ArrayBuffer where the engine refuses Blob records (WebKit's ephemeral sessions: Safari's private
// browsing, WebKitWebDriver's automation) and in caches written before records held Blobs; both are read.
// `manifests` holds the last manifest seen per URL (so a reload works offline).

const DB_NAME = 'akidb-cache';
const DB_VERSION = 1;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function txDone(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    // WebKit aborts a refused put with a null `error`: say what happened instead of "null".
    const failed = (ev) => reject(ev?.target?.error ?? tx.error ?? new Error('IndexedDB transaction aborted'));
    tx.onerror = failed;
    tx.onabort = failed;
  });
}

export class Cache {
  /** Opens (creating if needed) the cache database; null where there is no IndexedDB (Node). */
  static async open(name = DB_NAME) {
    if (typeof indexedDB === 'undefined') return null;
    const open = indexedDB.open(name, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('files')) db.createObjectStore('files', { keyPath: 'sha256' });
      if (!db.objectStoreNames.contains('manifests')) db.createObjectStore('manifests', { keyPath: 'url' });
    };
    return new Cache(await req(open));
  }
  constructor(db) {
    this.db = db;
  }
  async get(store, key) {
    return req(this.db.transaction(store).objectStore(store).get(key));
  }
  async put(store, value) {
    const tx = this.db.transaction(store, 'readwrite');
    tx.objectStore(store).put(value);
    await txDone(tx);
  }
  /** Stores a bundle file's record (fileRecord): `bytes` as a Blob, else, where the engine refuses Blob
   * records, as an ArrayBuffer. Resolves to the kind stored ('blob' or 'arraybuffer'). */
  async putFile(record) {
    try {
      await this.put('files', record);
      return 'blob';
    } catch (e) {
      if (isQuota(e)) throw e;
      await this.put('files', { ...record, bytes: await record.bytes.arrayBuffer() });
      return 'arraybuffer';
    }
  }
  async delete(store, key) {
    const tx = this.db.transaction(store, 'readwrite');
    tx.objectStore(store).delete(key);
    await txDone(tx);
  }
  /** Drops cached files of model `name` whose hash the current manifest no longer lists. */
  async evictOthers(name, keep) {
    const tx = this.db.transaction('files', 'readwrite');
    const store = tx.objectStore('files');
    const records = await req(store.getAll());
    const dropped = [];
    for (const r of records) {
      if (r.name === name && !keep.has(r.sha256)) {
        store.delete(r.sha256);
        dropped.push(`${r.version}:${r.path}`);
      }
    }
    await txDone(tx);
    return dropped;
  }
  close() {
    this.db.close();
  }
}

/** The `files` record of a bundle file. `bytes` is a Blob: Chromium reads a 23 MB Blob record back about
 * 70 ms faster than an ArrayBuffer one. */
export const fileRecord = (entry, manifest, bytes) => ({
  sha256: entry.sha256,
  path: entry.path,
  name: manifest.name,
  version: manifest.version,
  bytes: new Blob([bytes]),
});

/** The bytes of a `files` record if it holds `size` of them (a Blob, or an older cache's ArrayBuffer). */
export async function recordBytes(rec, size) {
  const bytes = rec?.bytes;
  if (bytes instanceof Blob) return bytes.size === size ? new Uint8Array(await bytes.arrayBuffer()) : null;
  return bytes?.byteLength === size ? new Uint8Array(bytes) : null;
}

export const isQuota = (e) => e && (e.name === 'QuotaExceededError' || /quota/i.test(String(e.message)));
