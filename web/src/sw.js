// Service worker of the AkiDB Edge demo (scope: the page's directory, `/` under model-server --static).
// Install precaches the whole app shell (HTML, JS, CSS, the corpus, @akidb/wasm's loader, worker and the
// .wasm this engine's loader will pick), so a later visit works with no network. The model files are not its business: @akidb/wasm
// keeps them in IndexedDB, so the model-server API (/v1/...) and cross-origin requests (the embedding
// server fallback) pass through untouched.
//
// web/build.sh stamps BUILD_ID (a hash of the build) and PRECACHE (every file of web/dist/ but this one):
// a new build is a new service worker with a new cache; activation drops the old one.

const BUILD_ID = '__BUILD_ID__';
const PRECACHE = ['__PRECACHE__'];
const PREFIX = 'akidb-demo-shell-';
const CACHE = `${PREFIX}${BUILD_ID}`;
/** Written after the build (scripts/demo.sh): the network's copy wins when reachable. */
const NETWORK_FIRST = new Set(['config.json']);
const PASS_THROUGH = /^\/(v1\/|healthz$|readyz$|metrics$|openapi\.json$)/;

const scope = () => new URL(self.registration.scope);

// @akidb/wasm ships two builds (lib/akidb-wasm/web/*.wasm, 13 MB each) and its loader fetches one: the
// relaxed-SIMD build where the engine validates relaxed SIMD, else the SIMD128 one. Only that one is
// precached. The probe is the loader's (lib/akidb-wasm/features.js, where its wat is): a module using
// i32x4.relaxed_dot_i8x16_i7x16_add_s and f32x4.relaxed_madd.
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 30, 1, 28, 0,
  65, 0, 253, 15, 65, 0, 253, 15, 65, 0, 253, 15, 253, 147, 2,
  65, 0, 253, 15, 65, 0, 253, 15, 253, 133, 2, 11,
]);
const WASM_BUILDS = {
  relaxed: 'lib/akidb-wasm/web/akidb_wasm_relaxed_simd_bg.wasm',
  simd: 'lib/akidb-wasm/web/akidb_wasm_bg.wasm',
};

/** PRECACHE less the .wasm this engine's loader won't fetch. */
function precacheList() {
  let relaxed = false;
  try {
    relaxed = WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    // no WebAssembly here: the page falls back to the server, either .wasm is useless
  }
  const unused = relaxed ? WASM_BUILDS.simd : WASM_BUILDS.relaxed;
  return PRECACHE.filter((p) => p !== unused);
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // 'no-cache': revalidate with the server (a 304 when the page just fetched the same file).
      await cache.addAll(precacheList().map((p) => new Request(new URL(p, scope()), { cache: 'no-cache' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const k of await caches.keys()) if (k.startsWith(PREFIX) && k !== CACHE) await caches.delete(k);
      await self.clients.claim();
    })(),
  );
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const res = await fetch(request);
    if (res.ok) await cache.put(request, res.clone());
    return res;
  } catch (e) {
    const hit = await cache.match(request, { ignoreSearch: true, ignoreVary: true });
    if (hit) return hit;
    throw e;
  }
}

async function cacheFirst(request, key = request) {
  const hit = await caches.match(key, { cacheName: CACHE, ignoreSearch: true, ignoreVary: true });
  return hit ?? fetch(request);
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  const base = scope();
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return;
  if (PASS_THROUGH.test(url.pathname)) return;
  const rel = url.pathname.slice(base.pathname.length);
  if (request.mode === 'navigate') {
    // Any page of the app (query parameters included) is index.html.
    event.respondWith(cacheFirst(request, new URL(rel === '' ? 'index.html' : rel, base).href));
  } else if (NETWORK_FIRST.has(rel)) {
    event.respondWith(networkFirst(request));
  } else {
    event.respondWith(cacheFirst(request));
  }
});
