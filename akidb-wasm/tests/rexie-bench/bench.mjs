// Serves page.html, the bench's wasm (pkg/), akidb-wasm/js and the int8 bundle on loopback and runs
// bench-page.js in Debian's headless Chromium; prints the figures as JSON and a table.
//   node bench.mjs PKG_DIR [RUNS]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchChromium } from '../../../tests/support/chromium.mjs';
import { bundleDir, repo } from '../../../tests/support/paths.mjs';
import { serve } from '../../../tests/support/static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [pkg, runs = '7'] = process.argv.slice(2);
if (!pkg) throw new Error('usage: node bench.mjs PKG_DIR [RUNS]');

const server = await serve({
  mounts: {
    '/': here,
    '/pkg/': pkg,
    '/js/': path.join(repo, 'akidb-wasm/js'),
    '/core/': path.join(repo, 'akidb-wasm/pkg/web'),
    '/model/': bundleDir('int8'),
  },
});
const { context, close } = await launchChromium(chromium);
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const load = async () => {
    await page.goto(`${server.url}/page.html`);
    await page.waitForFunction(() => typeof window.benchOnce === 'function', null, { timeout: 30_000 }).catch(() => {
      throw new Error(`page did not load: ${errors.join('; ')}`);
    });
  };
  await load();
  const r = await page.evaluate(() => window.benchSetup());
  const samples = Object.fromEntries(r.ways.map((w) => [w, []]));
  for (let i = 0; i <= Number(runs); i++) {
    // Alternate the order so neither way always follows the other; round 0 is a warm-up.
    for (const way of i % 2 ? [...r.ways].reverse() : r.ways) {
      await load();
      const ms = await page.evaluate((w) => window.benchOnce(w), way);
      if (i > 0) samples[way].push(ms);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  r.readMs = Object.fromEntries(
    Object.entries(samples).map(([k, xs]) => [k, { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) }]),
  );
  console.log(JSON.stringify(r));
  console.log(`\n${r.userAgent}\n${r.files.join(', ')}; ${runs} rounds after a warm-up, each read in a fresh page load\n`);
  console.log(`| way | median ms | min | max |\n|---|---|---|---|`);
  for (const [k, v] of Object.entries(r.readMs)) {
    console.log(`| ${k} | ${v.median.toFixed(0)} | ${v.min.toFixed(0)} | ${v.max.toFixed(0)} |`);
  }
  console.log(`| write (once): js | ${r.writeMs.js.toFixed(0)} | | |\n| write (once): rexie | ${r.writeMs.rexie.toFixed(0)} | | |`);
} finally {
  await close();
  await server.close();
}
