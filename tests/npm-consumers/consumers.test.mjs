// @akidb/wasm as its users get it: two tiny apps that install the package from akidb-wasm/pkg with
// `npm ci` (a copy of what `npm pack` ships, see each app's .npmrc) and embed golden sentences in headless
// Chromium (Debian's /usr/bin/chromium through playwright-core; never downloads a browser):
//
//   vite-app/   `import { Embedder } from '@akidb/wasm/bundler'`, built by `vite build` twice: with
//               Vite 8's own .wasm ES-module imports (dist/native) and with vite-plugin-wasm
//               (dist/wasm-plugin); served over HTTP; fetches the bundle, Embedder.fromBundle(files).
//   plain-esm/  no build: an import map sends '@akidb/wasm' to node_modules/@akidb/wasm/index.js;
//               loadEmbedder({ url }) on the main thread and with worker: true.
//
// Each app is served with the int8 bundle at /models/ by server.mjs on a free loopback port. The page
// puts its vectors in window.result; this file compares them with ../shared/golden (sentence-transformers,
// fp32): cosine ≥ 0.995 to the sentence's own golden row, far from another sentence's row.
// run.sh installs and builds first; AKIDB_GOLDEN, AKIDB_BUNDLE and CHROMIUM override the defaults.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../support/chromium.mjs';
import { cosine, loadGolden } from '../support/golden.mjs';
import { GOLDEN_DIR as GOLDEN } from '../support/paths.mjs';
import { APPS, BUNDLE, repo, serve } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DIM = 384;
const MIN_COSINE = 0.995;
const PAGE_TIMEOUT_MS = 120_000;

// What this needs, each with the command that makes it.
const NEEDS = [
  [path.join(repo, 'akidb-wasm/pkg/package.json'), 'bash akidb-wasm/build.sh'],
  [path.join(BUNDLE, 'manifest.json'), 'bash scripts/fetch-models.sh'],
  [path.join(GOLDEN, 'embeddings.f32'), 'the golden vectors in ../shared/golden'],
  [CHROMIUM, 'apt-get install chromium'],
  [path.join(here, 'vite-app/dist/native/index.html'), 'bash tests/npm-consumers/run.sh (npm ci + vite build)'],
  [path.join(here, 'vite-app/dist/wasm-plugin/index.html'), 'bash tests/npm-consumers/run.sh (npm ci + vite build)'],
  [path.join(here, 'plain-esm/node_modules/@akidb/wasm/index.js'), 'bash tests/npm-consumers/run.sh (npm ci)'],
];
const missing = NEEDS.filter(([p]) => !fs.existsSync(p));
if (missing.length > 0) {
  throw new Error(
    `tests/npm-consumers: missing\n${missing
      .map(([p, how]) => `  ${path.relative(repo, p) || p}  (${how})`)
      .join('\n')}`,
  );
}

const golden = loadGolden(GOLDEN);
assert.equal(golden.dim, DIM, 'embeddings.f32 is not [sentences][384]');
const goldenRow = golden.rowOf;

// Two golden sentences: plain English, and accents with Spanish punctuation.
const TEXTS = ['The quick brown fox jumps over the lazy dog.', '¿Dónde está la biblioteca? ¡Aquí!'];

test('the check can tell sentences apart: the two golden rows are far from each other', () => {
  const c = cosine(goldenRow(TEXTS[0]), goldenRow(TEXTS[1]));
  assert.ok(c < 0.5, `golden rows of the two sentences have cosine ${c}`);
});

test("the installed package keeps the bundler glue's side effects (else bundlers drop the wasm start-up)", () => {
  // bundler/akidb_wasm.js instantiates the .wasm by side effect (__wbg_set_wasm, __wbindgen_start);
  // with "sideEffects": false, Vite/rolldown and webpack tree-shake that away and every call fails
  // with "Cannot read properties of undefined (reading 'embedder_…')".
  const pkg = JSON.parse(fs.readFileSync(path.join(here, 'vite-app/node_modules/@akidb/wasm/package.json'), 'utf8'));
  const se = pkg.sideEffects;
  const kept =
    se === undefined ||
    se === true ||
    (Array.isArray(se) && se.some((p) => ['bundler/akidb_wasm.js', 'bundler/*'].includes(p.replace(/^\.\//, ''))));
  assert.ok(
    kept,
    `@akidb/wasm's package.json has "sideEffects": ${JSON.stringify(se)}; it must list "./bundler/akidb_wasm.js" ` +
      '(akidb-wasm/js/package.json)',
  );
});

let browser;
let closeBrowser;
before(async () => {
  ({ context: browser, close: closeBrowser } = await launchChromium(chromium));
});
after(async () => {
  await closeBrowser?.();
});

/** Serves `app`, opens `query` on it, waits for window.result; returns it with the server's request log. */
async function runApp(app, query = '') {
  const server = await serve(APPS[app]);
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => logs.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  try {
    const q = new URLSearchParams(query);
    for (const t of TEXTS) q.append('text', t);
    await page.goto(`${server.url}/?${q}`);
    try {
      await page.waitForFunction(() => window.result !== undefined, null, { timeout: PAGE_TIMEOUT_MS });
    } catch (e) {
      throw new Error(`${app}: no result after ${PAGE_TIMEOUT_MS} ms (${e.message})\n${logs.join('\n')}`);
    }
    const result = await page.evaluate(() => window.result);
    const status = await page.textContent('#status');
    return { result, status, requests: [...server.requests], logs };
  } finally {
    await page.close();
    await server.close();
  }
}

function checkVectors(app, { result, status, logs }) {
  const hint = /reading '(?:embedder_|__wbg)/.test(result.error ?? '')
    ? '\n(the .wasm was never instantiated: see the sideEffects test above)'
    : '';
  assert.equal(result.error, undefined, `${app}: the page failed: ${result.error}${hint}\n${logs.join('\n')}`);
  assert.equal(result.dim, DIM);
  assert.match(result.model, /^all-MiniLM-L6-v2@/);
  assert.deepEqual(result.texts, TEXTS, 'the page embedded other texts than asked');
  assert.equal(result.vectors.length, TEXTS.length);
  TEXTS.forEach((text, i) => {
    const v = result.vectors[i];
    assert.equal(v.length, DIM, `${app}: vector ${i} has ${v.length} numbers`);
    assert.ok(v.every(Number.isFinite), `${app}: vector ${i} has a non-finite number`);
    const norm = Math.hypot(...v);
    assert.ok(Math.abs(norm - 1) < 1e-3, `${app}: vector ${i} has norm ${norm}, not 1`);
    const own = cosine(v, goldenRow(text));
    const other = cosine(v, goldenRow(TEXTS[1 - i]));
    console.log(
      `  ${app}: ${JSON.stringify(text)}: cosine to golden ${own.toFixed(6)} (to the other sentence ${other.toFixed(3)})`,
    );
    assert.ok(own >= MIN_COSINE, `${app}: ${JSON.stringify(text)}: cosine to golden ${own} < ${MIN_COSINE}`);
    assert.ok(other < 0.5, `${app}: ${JSON.stringify(text)} is close to the other sentence's golden row (${other})`);
  });
  assert.match(status, /all-MiniLM-L6-v2@/, `${app}: the page doesn't show the result: ${status}`);
}

/** The server answered 200 to a GET whose path matches `re`. */
function assertFetched(run, re, what) {
  const ok = run.requests.some((r) => r.status === 200 && re.test(r.url));
  const log = run.requests.map((r) => `${r.status} ${r.url}`).join('\n');
  assert.ok(ok, `${what} was not fetched; requests:\n${log}`);
}
const timings = (run) => `load ${run.result.loadMs.toFixed(0)} ms, embed ${run.result.embedMs.toFixed(0)} ms`;

for (const [app, how] of [
  ['vite-native', "Vite 8's own .wasm imports"],
  ['vite-wasm-plugin', 'vite-plugin-wasm'],
]) {
  test(`${app}: @akidb/wasm/bundler through \`vite build\` (${how}) embeds golden sentences`, async () => {
    const run = await runApp(app);
    checkVectors(app, run);
    assert.equal(run.result.entry, '@akidb/wasm/bundler');
    // The .wasm came through Vite's module graph (a hashed asset), the model from /models/.
    assertFetched(run, /^\/assets\/akidb_wasm_bg-[\w-]+\.wasm$/, 'a hashed .wasm asset');
    assertFetched(run, /^\/models\/model\.onnx$/, 'model.onnx');
    console.log(`  ${app}: ${timings(run)}`);
  });
}

for (const worker of [false, true]) {
  const how = worker ? 'in a worker' : 'on the main thread';
  test(`plain-esm: import map → @akidb/wasm (index.js), loadEmbedder ${how}, embeds golden sentences`, async () => {
    const run = await runApp('plain-esm', worker ? 'worker=1' : '');
    checkVectors('plain-esm', run);
    assert.equal(run.result.entry, '@akidb/wasm');
    assert.equal(run.result.backend, 'wasm-simd');
    assert.equal(run.result.worker, worker);
    const installed = '/node_modules/@akidb/wasm/';
    assertFetched(run, new RegExp(`^${installed}index\\.js$`), 'the installed index.js');
    // Chromium runs relaxed SIMD, so the loader picks that build's .wasm.
    assertFetched(run, new RegExp(`^${installed}web/akidb_wasm_relaxed_simd_bg\\.wasm$`), 'the installed relaxed-SIMD .wasm');
    if (worker) assertFetched(run, new RegExp(`^${installed}worker\\.js$`), 'the installed worker.js');
    assertFetched(run, /^\/models\/model\.onnx$/, 'model.onnx');
    console.log(`  plain-esm ${how}: ${timings(run)}`);
  });
}
