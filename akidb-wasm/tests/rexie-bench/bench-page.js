// Runs in the page (bench.mjs drives it): stores the model bundle's files in IndexedDB through both caches
// (benchSetup), then reads them back into wasm memory with their SHA-256 checked by WebCrypto, one way per
// freshly loaded page (benchOnce), as the loader reads its cache once per page load.
//   JS:    akidb-wasm/js/cache.js as the loader uses it (Cache.open, get, recordBytes), crypto.subtle.digest,
//          then the bytes copied into wasm memory (what handing them to the core costs).
//   rexie: the same records read by Rust (src/lib.rs), Blob -> Vec<u8> in wasm memory, WebCrypto through web-sys.
// And with the core's own .wasm (akidb-wasm/pkg/web) instantiated in the same page load: the loader reads
// the JS cache while the core compiles; a cache inside the core could start only once it is instantiated.
import init, { rexiePut, rexieRead, copyIntoWasm } from './pkg/rexie_bench.js';
import { Cache, fileRecord, recordBytes } from './js/cache.js';
import initCore from './core/akidb_wasm.js';

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

async function jsRead(files, verify) {
  const c = await Cache.open('bench-js');
  let total = 0;
  try {
    for (const f of files) {
      const bytes = await recordBytes(await c.get('files', f.sha256), f.size);
      if (!bytes) throw new Error(`js cache: no record ${f.path}`);
      if (verify && hex(await crypto.subtle.digest('SHA-256', bytes)) !== f.sha256) throw new Error(`sha256 ${f.path}`);
      total += copyIntoWasm(bytes);
    }
  } finally {
    c.close();
  }
  return total;
}

async function timed(fn) {
  const t0 = performance.now();
  const n = await fn();
  return { ms: performance.now() - t0, n };
}

async function bundleFiles() {
  const manifest = await (await fetch('model/manifest.json')).json();
  return { manifest, size: manifest.files.reduce((n, f) => n + f.size, 0) };
}

const WAYS = {
  'js read': (files) => jsRead(files, false),
  'js read + sha256': (files) => jsRead(files, true),
  'rexie read': (files) => rexieRead('bench-rexie', files.map((f) => f.sha256), false),
  'rexie read + sha256': (files) => rexieRead('bench-rexie', files.map((f) => f.sha256), true),
  'core init alone': async (files) => {
    await initCore();
    return files.reduce((n, f) => n + f.size, 0);
  },
  'core init ‖ js read + sha256': async (files) => (await Promise.all([initCore(), jsRead(files, true)]))[1],
  'core init → rexie read + sha256': async (files) => {
    await initCore();
    return rexieRead('bench-rexie', files.map((f) => f.sha256), true);
  },
};

/** Fresh databases holding the bundle's files, written once through each cache; the write times. */
window.benchSetup = async () => {
  await init();
  for (const name of ['bench-js', 'bench-rexie']) {
    await new Promise((resolve, reject) => {
      const r = indexedDB.deleteDatabase(name);
      r.onsuccess = resolve;
      r.onerror = () => reject(r.error);
    });
  }
  const { manifest, size } = await bundleFiles();
  const files = [];
  for (const entry of manifest.files) {
    files.push({ ...entry, bytes: new Uint8Array(await (await fetch(`model/${entry.path}`)).arrayBuffer()) });
  }
  const js = await timed(async () => {
    const c = await Cache.open('bench-js');
    for (const f of files) await c.put('files', fileRecord(f, manifest, f.bytes));
    c.close();
    return size;
  });
  const rexie = await timed(async () => {
    for (const f of files) await rexiePut('bench-rexie', f.sha256, f.path, f.bytes);
    return size;
  });
  return {
    ways: Object.keys(WAYS),
    bytes: size,
    files: files.map((f) => `${f.path} ${f.size}`),
    userAgent: navigator.userAgent,
    writeMs: { js: js.ms, rexie: rexie.ms },
  };
};

/** One read of the whole bundle by `way`, as the first read of a freshly loaded page: milliseconds. */
window.benchOnce = async (way) => {
  await init();
  const { manifest, size } = await bundleFiles();
  const r = await timed(() => WAYS[way](manifest.files));
  if (r.n !== size) throw new Error(`${way}: ${r.n} bytes, expected ${size}`);
  return r.ms;
};
