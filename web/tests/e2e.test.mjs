// The demo page end to end in real headless Chromium (Debian's /usr/bin/chromium through playwright-core;
// never a downloaded browser) against the real servers on free loopback ports: model-server serving the
// bundle and web/dist, and `akidb serve` as the fallback. One browser profile goes through a user's story,
// in order:
//   1. first visit online: the page is cross-origin isolated (model-server's COOP/COEP), the loader picks
//      the relaxed-SIMD build, the model downloads with progress, is cached in IndexedDB, the corpus is
//      embedded and saved, the service worker precaches the app shell and that build's .wasm;
//   2. the page's embeddings of the 200 golden sentences meet the golden bars (sentence-transformers), and
//      the example queries find the documents known to answer them (titles below, computed once);
//   3. screenshots at desktop width and at 375 px (no horizontal scrolling);
//   4. both servers stopped and the context offline: a reload still loads the page, the model and the
//      corpus vectors, and search gives the same results;
//   5. servers up again, the forced fallback: the same top results through `akidb serve` (backend
//      "server"), and ?fallback= overrides config.json;
//   6. clear cache: IndexedDB, the Cache Storage and the service worker registration are really gone.
// Needs web/dist (web/build.sh), target/release/{model-server,akidb}, the int8-dynamic bundle (the demo's
// `latest`, the integer path) and ../shared/golden.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { launchChromium } from '../../tests/support/chromium.mjs';
import { BARS, cosineBars, loadGolden } from '../../tests/support/golden.mjs';
import { repo } from '../../tests/support/paths.mjs';
import { freePort } from '../../tests/support/process.mjs';
import { startServers, listening } from './servers.mjs';

const DIST = path.join(repo, 'web/dist');
const OUT = path.join(repo, 'web/tests/out');
const READY_MS = 600_000; // first visit: download, model load, 340 documents embedded on two shared cores

const golden = loadGolden();
const corpus = JSON.parse(fs.readFileSync(path.join(DIST, 'corpus.json'), 'utf8'));

/**
 * Each example query and the title of the document that answers it, with the top-1 score: computed once
 * with `akidb embed` (the int8-dynamic bundle, native core on AVX512-VNNI) over corpus.json version 1,
 * every top-1 ahead of the second hit by 0.2 or more (the exact int8 bundle's scores are within 0.002 of
 * these). A changed corpus, embedding or ranking shows up here.
 */
const EXPECTED = [
  { query: 'why does bread dough rise', top: 'Baking bread', score: 0.689 },
  { query: 'which planet is the biggest', top: 'Jupiter', score: 0.753 },
  { query: 'how can I keep my passwords safe', top: 'Password managers', score: 0.583 },
  { query: 'when did people first walk on the moon', top: 'The Moon landing', score: 0.744 },
  { query: 'how to recover after a hard workout', top: 'Recovery after exercise', score: 0.656 },
  { query: 'why does ice float on water', top: "Water's density anomaly", score: 0.611 },
  { query: 'who painted the starry night', top: 'Vincent van Gogh', score: 0.754 },
  { query: 'how do vaccines work', top: 'Vaccines', score: 0.694 },
];

// ---------------------------------------------------------------------------------------------------

let servers;
let site;
let context;
let page;
let closeBrowser;
const logs = [];
const online = {}; // query -> results of the first, online run

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  // The page as scripts/demo.sh deploys it: web/dist with a config.json naming the fallback.
  site = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-demo-site-'));
  fs.cpSync(DIST, site, { recursive: true });
  servers = await startServers(site);
  fs.writeFileSync(
    path.join(site, 'config.json'),
    JSON.stringify({ modelUrl: '/v1/models/all-MiniLM-L6-v2/latest/manifest.json', fallbackUrl: servers.embedUrl }),
  );
  ({ context, close: closeBrowser } = await launchChromium(chromium, { viewport: { width: 1280, height: 900 } }));
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  // Every value the download progress bar shows, from the page's first script on.
  await page.addInitScript(() => {
    window.__progress = [];
    document.addEventListener('DOMContentLoaded', () => {
      const bar = document.getElementById('dl');
      new MutationObserver(() => window.__progress.push(Number(bar.value))).observe(bar, { attributes: true });
    });
  });
});

after(async () => {
  await closeBrowser?.();
  await servers?.close();
  if (site) fs.rmSync(site, { recursive: true, force: true });
  if (process.env.AKIDB_TEST_VERBOSE) console.log(logs.join('\n'));
});

const diag = () => page.evaluate(() => JSON.parse(JSON.stringify(window.akidbDemo)));

/** Waits for the page's data-state to become `state` (fails at once on "error"). */
async function waitState(state, timeout = READY_MS) {
  await page.waitForFunction(
    (s) => document.body.dataset.state === s || document.body.dataset.state === 'error',
    state,
    { timeout, polling: 100 },
  );
  const d = await diag();
  assert.equal(
    d.state,
    state,
    `page state ${d.state}: ${await page.locator('#status').textContent()}\n${logs.join('\n')}`,
  );
  return d;
}

/** Types `query` into the search box with the keyboard, presses Enter, returns the rendered results. */
async function search(query) {
  const box = page.getByRole('searchbox', { name: /query/i });
  await box.focus();
  await box.fill('');
  await page.keyboard.type(query);
  await page.keyboard.press('Enter');
  await page.waitForFunction((q) => document.getElementById('results').dataset.query === q, query, {
    timeout: 60_000,
  });
  return page.evaluate(() => ({
    backend: document.getElementById('results').dataset.backend,
    meta: document.getElementById('meta').textContent,
    hits: [...document.querySelectorAll('#results li')].map((li) => ({
      title: li.querySelector('.title').textContent,
      text: li.querySelector('.text').textContent,
      score: Number(li.dataset.score),
    })),
  }));
}

/** What this origin holds in IndexedDB and the Cache Storage, seen from the page. */
const storage = () =>
  page.evaluate(async () => {
    const dbs = (await indexedDB.databases()).map((d) => d.name).sort();
    const count = (name, store) =>
      new Promise((resolve, reject) => {
        const r = indexedDB.open(name);
        r.onsuccess = () => {
          const db = r.result;
          if (!db.objectStoreNames.contains(store)) {
            db.close();
            return resolve(0);
          }
          const c = db.transaction(store).objectStore(store).count();
          c.onsuccess = () => {
            db.close();
            resolve(c.result);
          };
          c.onerror = () => reject(c.error);
        };
        r.onerror = () => reject(r.error);
      });
    const files = dbs.includes('akidb-cache') ? await count('akidb-cache', 'files') : 0;
    const vectors = dbs.includes('akidb-demo') ? await count('akidb-demo', 'vectors') : 0;
    const cached = [];
    for (const k of await caches.keys()) {
      for (const r of await (await caches.open(k)).keys()) cached.push(new URL(r.url).pathname);
    }
    const regs = await navigator.serviceWorker.getRegistrations();
    return { dbs, files, vectors, cached: cached.sort(), registrations: regs.map((r) => r.scope) };
  });

// ---------------------------------------------------------------------------------------------------

test('the page offers the example queries whose answers are known, and none is a document', () => {
  assert.ok(corpus.documents.length >= 300, `corpus of ${corpus.documents.length}`);
  assert.deepEqual(
    corpus.examples,
    EXPECTED.map((e) => e.query),
  );
  const titles = corpus.documents.map((d) => d.title);
  for (const e of EXPECTED) {
    assert.ok(titles.includes(e.top), `${e.top} is a document`);
    assert.ok(!corpus.documents.some((d) => [d.title, d.text].includes(e.query)), `${e.query} is not a document`);
  }
});

/** The page's embeddings of every golden sentence, from the backend in use, 25 at a time. */
async function pageEmbeddings() {
  const flat = new Float32Array(golden.sentences.length * golden.dim);
  for (let i = 0; i < golden.sentences.length; i += 25) {
    const batch = golden.sentences.slice(i, i + 25);
    const rows = await page.evaluate((texts) => window.akidbDemo.embed(texts), batch);
    rows.forEach((r, k) => flat.set(r, (i + k) * golden.dim));
  }
  return flat;
}

test('model-server serves the page with the right content types, cross-origin isolated', async () => {
  const types = {
    '/': 'text/html',
    '/app.js': 'text/javascript',
    '/sw.js': 'text/javascript',
    '/lib/akidb-wasm/index.js': 'text/javascript',
    '/lib/akidb-wasm/worker.js': 'text/javascript',
    '/lib/akidb-wasm/web/akidb_wasm_bg.wasm': 'application/wasm',
    '/lib/akidb-wasm/web/akidb_wasm_relaxed_simd_bg.wasm': 'application/wasm',
    '/corpus.json': 'application/json',
    '/style.css': 'text/css',
    '/manifest.webmanifest': 'application/manifest+json',
  };
  for (const [p, type] of Object.entries(types)) {
    const res = await fetch(`${servers.base}${p}`, { method: 'HEAD' });
    assert.equal(res.status, 200, p);
    assert.equal(res.headers.get('content-type')?.split(';')[0], type, p);
    // Cross-origin isolation (COOP + COEP) on every file of the site, so the page is crossOriginIsolated.
    assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin', p);
    assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp', p);
  }
  // The service worker at the root may control the whole origin without Service-Worker-Allowed.
  const sw = await fetch(`${servers.base}/sw.js`).then((r) => r.text());
  assert.doesNotMatch(sw, /__BUILD_ID__|__PRECACHE__/);
});

test('first visit online: progress to 100%, model cached in IndexedDB, corpus embedded, shell precached', async () => {
  const t0 = Date.now();
  await page.goto(`${servers.base}/`);
  const d = await waitState('ready');
  console.log(`# first visit ready in ${Date.now() - t0} ms (${d.backend}, model ${d.stats.loadMs?.toFixed(0)} ms)`);
  assert.equal(d.backend, 'wasm-simd');
  // Chromium runs relaxed SIMD: the loader's best build.
  assert.equal(d.variant, 'wasm-relaxed-simd');
  // COOP/COEP from model-server, and nothing the page loads (the fallback on another port is a CORS fetch)
  // is blocked by require-corp.
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'the page is cross-origin isolated');
  assert.equal(d.crossOriginIsolated, true);
  assert.equal(d.model, 'all-MiniLM-L6-v2@1.0.0-int8-dynamic');
  assert.deepEqual([...d.stats.fetched].sort(), ['model.onnx', 'tokenizer.json']);
  assert.deepEqual(d.stats.fromCache, []);
  assert.equal(d.corpusSource, 'embedded');
  assert.equal(d.corpusSize, corpus.documents.length);

  // A real progress bar: many intermediate values, never going back, ending at 1.
  const progress = await page.evaluate(() => window.__progress);
  const between = progress.filter((v) => v > 0 && v < 1);
  assert.ok(between.length >= 5, `progress values: ${progress.slice(0, 20)}`);
  for (let i = 1; i < progress.length; i++)
    assert.ok(progress[i] >= progress[i - 1], `progress went back: ${progress}`);
  assert.equal(progress.at(-1), 1);
  assert.match(await page.locator('#dl-text').textContent(), /23\.4 MB \/ 23\.4 MB/);
  assert.equal(await page.locator('#ix').evaluate((b) => b.value), 1);

  // The cache panel.
  assert.match(await page.locator('#m-name').textContent(), /all-MiniLM-L6-v2/);
  assert.match(await page.locator('#m-version').textContent(), /1\.0\.0-int8-dynamic/);
  assert.match(await page.locator('#m-size').textContent(), /23\.4 MB in 2 files/);
  assert.match(await page.locator('#m-files').textContent(), /2 downloaded/);
  assert.equal(await page.locator('#m-fallback').textContent(), servers.embedUrl);
  assert.equal(await page.locator('#backend-pill').textContent(), 'backend: wasm-simd');

  // The service worker is active and has the app shell, the loader, the worker and the .wasm.
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.waitForFunction(() => /^ready: \d+ files/.test(document.getElementById('m-shell').textContent));
  const s = await storage();
  assert.deepEqual(s.dbs, ['akidb-cache', 'akidb-demo']);
  assert.equal(s.files, 2, 'model.onnx and tokenizer.json in IndexedDB');
  assert.equal(s.vectors, 1, 'the corpus vectors in IndexedDB');
  for (const p of [
    '/index.html',
    '/app.js',
    '/config.json',
    '/corpus.json',
    '/lib/akidb-wasm/index.js',
    '/lib/akidb-wasm/worker.js',
    '/lib/akidb-wasm/web/akidb_wasm.js',
    '/lib/akidb-wasm/web/akidb_wasm_relaxed_simd_bg.wasm',
  ]) {
    assert.ok(s.cached.includes(p), `${p} in the service worker cache: ${s.cached}`);
  }
  // Only the build this engine's loader picks is precached (13 MB each).
  assert.ok(!s.cached.includes('/lib/akidb-wasm/web/akidb_wasm_bg.wasm'), 'the wasm-simd .wasm is not precached here');
  assert.ok(!s.cached.some((p) => p.startsWith('/v1/')), 'the model API is not in the service worker cache');
  assert.deepEqual(s.registrations, [`${servers.base}/`]);
});

test('golden: the page embeds the 200 golden sentences as sentence-transformers does (wasm-relaxed-simd)', async () => {
  const bars = cosineBars(await pageEmbeddings(), golden);
  console.log(`# golden cosine (wasm-relaxed-simd): min ${bars.min.toFixed(5)}, mean ${bars.mean.toFixed(5)}`);
  assert.ok(bars.min >= BARS.int8Dynamic.min, `min cosine ${bars.min}`);
  assert.ok(bars.mean >= BARS.int8Dynamic.mean, `mean cosine ${bars.mean}`);
});

test('search: each example query finds the document that answers it (wasm-simd, in a worker)', async () => {
  for (const e of EXPECTED) {
    const r = await search(e.query);
    assert.equal(r.backend, 'wasm-simd');
    assert.equal(r.hits.length, 5);
    assert.equal(r.hits[0].title, e.top, `top-1 for ${JSON.stringify(e.query)}`);
    assert.equal(r.hits[0].text, corpus.documents.find((d) => d.title === e.top).text, 'the text under the title');
    // The wasm core against the native core that computed the expectations (both on the integer path).
    assert.ok(Math.abs(r.hits[0].score - e.score) < 0.005, `${e.query}: score ${r.hits[0].score}, expected ${e.score}`);
    assert.ok(r.hits[0].score - r.hits[1].score >= 0.1, `${e.query}: a clear first (${r.hits.map((h) => h.score)})`);
    for (let i = 1; i < r.hits.length; i++) assert.ok(r.hits[i].score <= r.hits[i - 1].score);
    assert.match(r.meta, /in [\d.]+ m?s .*backend wasm-simd/);
    online[e.query] = r;
  }
  const last = (await diag()).lastSearch;
  assert.ok(last.embedMs > 0 && last.rankMs >= 0);
  console.log(`# query latency (last query): embed ${last.embedMs.toFixed(1)} ms, rank ${last.rankMs.toFixed(2)} ms`);
});

test('screenshots: desktop and 375 px wide, no horizontal scrolling', async () => {
  await search(EXPECTED[0].query);
  await page.screenshot({ path: path.join(OUT, 'desktop.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(100);
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    win: window.innerWidth,
    widest: Math.max(...[...document.querySelectorAll('body *')].map((el) => el.getBoundingClientRect().right)),
  }));
  assert.ok(widths.doc <= widths.win, `page is ${widths.doc} px wide at ${widths.win}`);
  assert.ok(widths.widest <= widths.win + 0.5, `an element reaches ${widths.widest} px at ${widths.win}`);
  // The controls are on screen and big enough to tap.
  for (const loc of [
    page.getByRole('searchbox', { name: /query/i }),
    page.getByRole('button', { name: 'Search', exact: true }),
    page.getByRole('switch', { name: /force the server fallback/i }),
    page.getByRole('button', { name: /clear cache/i }),
  ]) {
    const box = await loc.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375 && box.height >= 24, `control box ${JSON.stringify(box)}`);
  }
  await page.screenshot({ path: path.join(OUT, 'mobile-375.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.ok(fs.statSync(path.join(OUT, 'desktop.png')).size > 10_000);
  assert.ok(fs.statSync(path.join(OUT, 'mobile-375.png')).size > 10_000);
});

test('offline: servers stopped and the context offline, a reload still loads and searches', async () => {
  await servers.stop();
  assert.equal(await listening(servers.msPort), false, 'model-server stopped');
  assert.equal(await listening(servers.embedPort), false, 'akidb serve stopped');
  await context.setOffline(true);
  try {
    const t0 = Date.now();
    const res = await page.reload();
    assert.ok(res === null || res.fromServiceWorker(), 'the page came from the service worker');
    const d = await waitState('ready', 300_000);
    console.log(`# offline reload ready in ${Date.now() - t0} ms`);
    assert.equal(d.backend, 'wasm-simd');
    assert.equal(d.variant, 'wasm-relaxed-simd');
    assert.equal(d.crossOriginIsolated, true, 'the service worker’s copy of the page keeps COOP/COEP');
    assert.deepEqual(d.stats.fetched, []);
    assert.deepEqual([...d.stats.fromCache].sort(), ['model.onnx', 'tokenizer.json']);
    assert.equal(d.corpusSource, 'indexeddb');
    assert.ok(
      d.warnings.some((w) => /manifest (or signature )?unreachable/.test(w)),
      `warnings: ${d.warnings}`,
    );
    assert.equal(await page.locator('#net').textContent(), 'offline');
    assert.match(await page.locator('#m-version').textContent(), /1\.0\.0-int8-dynamic/, 'cache panel from the saved manifest');
    for (const e of EXPECTED) {
      const r = await search(e.query);
      assert.equal(r.backend, 'wasm-simd');
      assert.equal(r.hits[0].title, e.top, `offline top-1 for ${JSON.stringify(e.query)}`);
      assert.deepEqual(
        r.hits.map((h) => h.title),
        online[e.query].hits.map((h) => h.title),
      );
      for (let i = 0; i < r.hits.length; i++)
        assert.ok(Math.abs(r.hits[i].score - online[e.query].hits[i].score) < 1e-5);
    }
  } finally {
    await context.setOffline(false);
  }
});

const tokensEmbedded = async () => {
  const text = await fetch(`http://127.0.0.1:${servers.embedPort}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith('akidb_tokens_total'));
  assert.ok(line, 'akidb_tokens_total in /metrics');
  return Number(line.split(/\s+/).at(-1));
};

test('forced server fallback: same top results from akidb serve, backend "server"; ?fallback= overrides', async () => {
  await servers.start();
  // A dead fallback URL in the query beats config.json: with the switch on, nothing can be embedded.
  const dead = `http://127.0.0.1:${await freePort()}/v1/embed`;
  await page.goto(`${servers.base}/?fallback=${encodeURIComponent(dead)}`);
  await waitState('ready');
  assert.equal(await page.locator('#m-fallback').textContent(), dead);
  const toggle = page.getByRole('switch', { name: /force the server fallback/i });
  await toggle.focus();
  await page.keyboard.press('Space');
  assert.equal(await toggle.isChecked(), true);
  await waitState('error', 60_000); // a dead fallback URL is an error, not a silent success
  assert.match(await page.locator('#status').textContent(), /Could not embed the corpus/);

  // config.json's fallback (the live akidb serve); the switch is remembered across loads.
  const before = await tokensEmbedded();
  await page.goto(`${servers.base}/`);
  const d = await waitState('ready');
  assert.equal(await page.getByRole('switch', { name: /force the server fallback/i }).isChecked(), true);
  assert.equal(d.backend, 'server');
  assert.equal(d.corpusSource, 'server');
  assert.equal(await page.locator('#backend-pill').textContent(), 'backend: server');
  for (const e of EXPECTED) {
    const r = await search(e.query);
    assert.equal(r.backend, 'server');
    assert.equal(r.hits[0].title, e.top, `server top-1 for ${JSON.stringify(e.query)}`);
    // The native core and the wasm core, both on the integer path, agree to a cosine of 0.995 or better
    // (tests/support/golden.mjs, INTEGER_PATH_AGREEMENT): scores within 2e-3.
    assert.ok(Math.abs(r.hits[0].score - online[e.query].hits[0].score) < 2e-3, `${e.query}: ${r.hits[0].score}`);
  }
  // The golden check again, now through akidb serve's native core.
  const bars = cosineBars(await pageEmbeddings(), golden);
  console.log(`# golden cosine (server): min ${bars.min.toFixed(5)}, mean ${bars.mean.toFixed(5)}`);
  assert.ok(bars.min >= BARS.int8Dynamic.min && bars.mean >= BARS.int8Dynamic.mean, `server: min ${bars.min}, mean ${bars.mean}`);
  const after = await tokensEmbedded();
  assert.ok(after > before + 1000, `akidb serve embedded the corpus and the queries (${before} -> ${after} tokens)`);

  // Back to the browser: wasm again, model and corpus from IndexedDB.
  await page.getByRole('switch', { name: /force the server fallback/i }).press('Space');
  const w = await waitState('ready');
  assert.equal(w.backend, 'wasm-simd');
  assert.deepEqual(w.stats.fetched, []);
  assert.equal(w.corpusSource, 'indexeddb');
});

test('clear cache empties IndexedDB, the Cache Storage and the service worker registration', async () => {
  const before = await storage();
  assert.ok(before.files > 0 && before.vectors > 0 && before.cached.length > 0 && before.registrations.length > 0);
  const clear = page.getByRole('button', { name: /clear cache/i });
  await clear.focus();
  await page.keyboard.press('Enter');
  await waitState('cleared', 60_000);
  const s = await storage();
  assert.deepEqual(s.dbs, [], `IndexedDB databases left: ${s.dbs}`);
  assert.deepEqual(s.cached, [], 'Cache Storage empty');
  assert.deepEqual(s.registrations, [], 'no service worker');
  assert.equal(await page.getByRole('searchbox', { name: /query/i }).isDisabled(), true);
  assert.equal(await page.getByRole('button', { name: 'Reload' }).isVisible(), true);
});
