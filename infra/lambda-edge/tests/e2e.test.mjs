// End to end in real headless Chromium (Debian's /usr/bin/chromium through playwright-core, as web/tests
// does): the demo page (web/dist) with its server fallback pointed at the local edge adapter, which runs the
// built Lambda@Edge package in front of a real `akidb serve`. The page first searches with its wasm backend,
// then with "Force the server fallback" on: the same top results, every embedding answered at the edge
// (the adapter counts who answered; akidb serve embeds no token), CORS preflights answered by the origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { launchChromium } from '../../../tests/support/chromium.mjs';
import { serve as serveStatic } from '../../../tests/support/static-server.mjs';
import { startAdapter } from '../adapter.mjs';
import { PKG, agreementFor, bundleQuantization, repo, startServe } from './helpers.mjs';

const DIST = path.join(repo, 'web/dist');
const BUNDLE = path.join(PKG, 'model');
// The exact paths' scores agree within 1e-3 (vectors within 1e-4 per element). The integer path's page (the
// relaxed-SIMD build in Chromium) and edge (Node's build) round their activations on slightly different f32
// values (relaxed FMA or not): vectors within a cosine of 0.9997 here, scores within 5e-3, so hits whose
// scores are that close may trade places below the first.
const INTEGER = agreementFor(bundleQuantization(BUNDLE)).integer;
const SCORE_TOLERANCE = INTEGER ? 5e-3 : 1e-3;
const READY_MS = 600_000; // the corpus (340 documents) embedded twice on two shared cores

let serve;
let adapter;
let site;
let web;
let browser;
let page;
const logs = [];
/** The page's console and every file the static server did not find. */
const diagnostics = () =>
  [...logs, ...(web?.requests ?? []).filter((r) => r.status === 404).map((r) => `[static] 404 ${r.method} ${r.url}`)].join('\n');

before(async () => {
  const { handler } = await import(pathToFileURL(path.join(PKG, 'index.mjs')).href);
  serve = await startServe(BUNDLE);
  await handler.ready;
  assert.ok(handler.state.model, `the packaged model loads: ${handler.state.error?.message}`);
  adapter = await startAdapter({ handler, originUrl: serve.url });
  site = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-edge-site-'));
  fs.cpSync(DIST, site, { recursive: true });
  // web/build.sh copies the loader's modules by name; when @akidb/wasm gains a module before web/build.sh
  // learns of it, the page can't start. Supply the package's own root modules that web/dist lacks, and say so.
  const pkgDir = path.join(repo, 'akidb-wasm/pkg');
  for (const f of fs.readdirSync(pkgDir).filter((n) => n.endsWith('.js'))) {
    const dest = path.join(site, 'lib/akidb-wasm', f);
    if (!fs.existsSync(dest)) {
      console.log(`# web/dist lacks lib/akidb-wasm/${f}: served from akidb-wasm/pkg`);
      fs.copyFileSync(path.join(pkgDir, f), dest);
    }
  }
  fs.writeFileSync(path.join(site, 'config.json'), JSON.stringify({ modelUrl: '/bundle/manifest.json', fallbackUrl: `${adapter.url}/v1/embed` }));
  // The page from `site`, the packaged bundle under /bundle/.
  web = await serveStatic({ mounts: { '/': site, '/bundle/': BUNDLE }, headers: { 'cache-control': 'no-cache' } });
  browser = await launchChromium(chromium, { viewport: { width: 1280, height: 900 } });
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
});

after(async () => {
  await browser?.close();
  await web?.close();
  await adapter?.close();
  await serve?.stop();
  if (site) fs.rmSync(site, { recursive: true, force: true });
  if (process.env.AKIDB_TEST_VERBOSE) console.log(diagnostics());
});

async function waitState(state) {
  await page.waitForFunction((s) => ['error', s].includes(document.body.dataset.state), state, { timeout: READY_MS, polling: 100 });
  const d = await page.evaluate(() => JSON.parse(JSON.stringify(window.akidbDemo)));
  assert.equal(d.state, state, `page state ${d.state}: ${await page.locator('#status').textContent()}\n${diagnostics()}`);
  return d;
}

async function search(query) {
  const box = page.getByRole('searchbox', { name: /query/i });
  await box.fill(query);
  await page.keyboard.press('Enter');
  await page.waitForFunction((q) => document.getElementById('results').dataset.query === q, query, { timeout: 60_000 });
  return page.evaluate(() => ({
    backend: document.getElementById('results').dataset.backend,
    hits: [...document.querySelectorAll('#results li')].map((li) => ({ title: li.querySelector('.title').textContent, score: Number(li.dataset.score) })),
  }));
}

const tokensEmbedded = async () => {
  const text = await (await fetch(`${serve.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('akidb_tokens_total'));
  assert.ok(line, 'akidb_tokens_total in akidb serve /metrics');
  return Number(line.split(/\s+/).at(-1));
};

test('demo page: the forced server fallback through the edge adapter gives the wasm backend\'s top results', async () => {
  const corpus = JSON.parse(fs.readFileSync(path.join(DIST, 'corpus.json'), 'utf8'));
  await page.goto(`${web.url}/`);
  let d = await waitState('ready');
  assert.equal(d.backend, 'wasm-simd');
  const wasm = {};
  for (const q of corpus.examples) wasm[q] = await search(q);

  const tokensBefore = await tokensEmbedded();
  const countsBefore = { ...adapter.counts };
  const toggle = page.getByRole('switch', { name: /force the server fallback/i });
  await toggle.focus();
  await page.keyboard.press('Space');
  d = await waitState('ready');
  assert.equal(d.backend, 'server');
  assert.equal(d.corpusSource, 'server');
  let worst = 0;
  let swapped = 0;
  for (const q of corpus.examples) {
    const r = await search(q);
    assert.equal(r.backend, 'server');
    assert.equal(r.hits.length, wasm[q].hits.length);
    assert.equal(r.hits[0].title, wasm[q].hits[0].title, `top-1 for ${JSON.stringify(q)}`);
    r.hits.forEach((h, i) => {
      const w = wasm[q].hits[i];
      // The i-th best score, whichever document has it: it moves no more than any one document's score.
      worst = Math.max(worst, Math.abs(h.score - w.score));
      assert.ok(Math.abs(h.score - w.score) < SCORE_TOLERANCE, `${q}: hit ${i}: ${h.score} vs ${w.score}`);
      // On the integer path, two hits whose scores are within the tolerance may trade places below the first.
      if (!INTEGER) assert.equal(h.title, w.title, `${q}: hit ${i}`);
      else if (h.title !== w.title) swapped++;
    });
  }
  console.log(`# edge vs the page's wasm: scores within ${worst.toExponential(2)}, ${swapped} hits below the first traded places`);
  const edge = adapter.counts.edge - countsBefore.edge;
  const batches = Math.ceil(corpus.documents.length / 16);
  console.log(`# through the adapter: ${edge} answers from the edge, ${adapter.counts.origin - countsBefore.origin} from the origin (CORS preflights)`);
  assert.ok(edge >= batches + corpus.examples.length, `${edge} edge answers for ${batches} corpus batches and ${corpus.examples.length} queries`);
  assert.equal(await tokensEmbedded(), tokensBefore, 'akidb serve embedded nothing: the edge answered every embedding');
});
