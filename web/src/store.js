// The demo page's own IndexedDB database, beside @akidb/wasm's "akidb-cache" (the model files):
//   vectors  the corpus embeddings, one record {key: "model@version|corpus sha256", dim, count, vectors}
//   meta     {key: "manifest", url, json}: the last model manifest seen, for the cache panel when offline

export const DB_NAME = 'akidb-demo';
const VERSION = 1;

let opening = null;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

function open() {
  opening ??= new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, VERSION);
    r.onupgradeneeded = () => {
      r.result.createObjectStore('vectors', { keyPath: 'key' });
      r.result.createObjectStore('meta', { keyPath: 'key' });
    };
    r.onsuccess = () => {
      const db = r.result;
      // Another tab (or "clear cache") deletes or upgrades the database: let it.
      db.onversionchange = () => close();
      resolve(db);
    };
    r.onerror = () => {
      opening = null;
      reject(r.error);
    };
  });
  return opening;
}

/** Closes the connection (reopened on next use), so that deleteDatabase is not blocked by this page. */
export function close() {
  const p = opening;
  opening = null;
  p?.then((db) => db.close()).catch(() => {});
}

export async function get(store, key) {
  const db = await open();
  return req(db.transaction(store).objectStore(store).get(key));
}

export async function put(store, value) {
  const db = await open();
  const tx = db.transaction(store, 'readwrite');
  tx.objectStore(store).put(value);
  await done(tx);
}

/** Keeps one set of corpus vectors: the new record replaces every other (older model or corpus). */
export async function replaceVectors(record) {
  const db = await open();
  const tx = db.transaction('vectors', 'readwrite');
  const s = tx.objectStore('vectors');
  s.clear();
  s.put(record);
  await done(tx);
}

/** Deletes a database; resolves once it is gone (waits while another connection still holds it). */
export function deleteDatabase(name) {
  return new Promise((resolve, reject) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
    r.onblocked = () => console.warn(`deleting IndexedDB ${name}: waiting for open connections to close`);
  });
}
