// The Lambda@Edge handler's benchmark (run by bench.sh; not a test). In one run:
//   init      fresh Node process -> model ready (process start to handler.ready), the built package's
//             index.mjs as Lambda imports it; median of INIT_RUNS processes, with the loader's step times;
//   warm      the handler (CloudFront event in, generated response out) against the package's own
//             `embed` on the same Embedder in the same Node process, interleaved: one 12-token sentence
//             and a batch of 32 real sentences (akidb-native/src/bench_sentences.json), p50/p95;
//   origin    akidb serve's single-request latency (POST /v1/embed over loopback, one at a time), p50/p95;
//   zip       the deployment zip's size against 50 MB.
// Prints a Markdown table and the targets: handler warm p95 <= 1.2x embed p95, init <= 1.5 s, zip <= 30 MB.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { originRequest, startServe, PKG, ZIP, repo } from './tests/helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const INIT_RUNS = Number(process.env.INIT_RUNS ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 200); // single-sentence samples per contender
const BATCH_ROUNDS = Number(process.env.BATCH_ROUNDS ?? 20);
const { single, batch } = JSON.parse(fs.readFileSync(path.join(repo, 'akidb-native/src/bench_sentences.json'), 'utf8'));
const batch32 = batch.slice(0, 32);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);
const f = (x, d = 2) => x.toFixed(d);

// ---- init: fresh processes
const INIT = `
import { pathToFileURL } from 'node:url';
const { handler } = await import(pathToFileURL(process.argv[1] + '/index.mjs').href);
await handler.ready;
if (!handler.state.model) throw handler.state.error;
console.log('INIT ' + JSON.stringify({ readyMs: performance.now(), timings: handler.state.timings }));
`;
const inits = [];
for (let i = 0; i < INIT_RUNS; i++) {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', INIT, PKG]).toString();
  inits.push(JSON.parse(out.split('\n').find((l) => l.startsWith('INIT ')).slice(5)));
}
const initMs = median(inits.map((r) => r.readyMs));
const step = (k) => median(inits.map((r) => r.timings[k]));

// ---- warm: handler vs the package's embed, same process, same Embedder, interleaved
const { handler } = await import(pathToFileURL(path.join(PKG, 'index.mjs')).href);
await handler.ready;
const embedder = handler.state.model.embedder;
const ev = (texts) => originRequest({ body: JSON.stringify({ texts }) });

async function interleaved(texts, rounds) {
  const h = [];
  const e = [];
  for (let i = 0; i < 5; i++) {
    await handler(ev(texts));
    embedder.embed(texts);
  }
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    const r = await handler(ev(texts)); // a fresh event each time, as CloudFront sends
    h.push(performance.now() - t);
    if (r.status !== '200') throw new Error(`handler answered ${r.status}`);
    t = performance.now();
    embedder.embed(texts);
    e.push(performance.now() - t);
  }
  return { h, e };
}
const s1 = await interleaved([single], ROUNDS);
const s32 = await interleaved(batch32, BATCH_ROUNDS);

// ---- origin: akidb serve, one request at a time
const serve = await startServe();
const serveSingle = [];
const serveBatch = [];
try {
  const post = (texts) => fetch(`${serve.url}/v1/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts }) }).then((r) => r.arrayBuffer());
  for (let i = 0; i < 10; i++) await post([single]);
  for (let i = 0; i < ROUNDS; i++) {
    const t = performance.now();
    await post([single]);
    serveSingle.push(performance.now() - t);
  }
  for (let i = 0; i < 3; i++) await post(batch32);
  for (let i = 0; i < BATCH_ROUNDS; i++) {
    const t = performance.now();
    await post(batch32);
    serveBatch.push(performance.now() - t);
  }
} finally {
  await serve.stop();
}

const zipMB = fs.statSync(ZIP).size / 1048576;
const tokens = embedder.tokenize([single])[0].length;

const rows = [
  ['handler (CloudFront event → response)', s1.h, s32.h],
  ['@akidb/wasm `embed`, same process', s1.e, s32.e],
  ['akidb serve (HTTP, loopback)', serveSingle, serveBatch],
];
console.log(`\n| contender | single p50 ms | single p95 ms | batch-32 p50 ms | batch-32 p95 ms |`);
console.log(`|---|---:|---:|---:|---:|`);
for (const [name, a, b] of rows) console.log(`| ${name} | ${f(pct(a, 50))} | ${f(pct(a, 95))} | ${f(pct(b, 50))} | ${f(pct(b, 95))} |`);
const ratio = pct(s1.h, 95) / pct(s1.e, 95);
console.log(`\n| measure | value | target | |`);
console.log(`|---|---:|---|---|`);
console.log(`| handler / embed, single p95 (${tokens}-token sentence) | ${f(ratio)}x | <= 1.2x | ${ratio <= 1.2 ? 'met' : 'NOT met'} |`);
console.log(`| init: fresh Node process → model ready (median of ${INIT_RUNS}) | ${f(initMs / 1000)} s | <= 1.5 s | ${initMs <= 1500 ? 'met' : 'NOT met'} |`);
console.log(`| zip | ${f(zipMB, 1)} MB | <= 30 MB (limit 50) | ${zipMB <= 30 ? 'met' : 'NOT met'} |`);
console.log(
  `\ninit steps (medians, ms): read ${f(step('readMs'), 0)}, sha256 ${f(step('hashMs'), 0)}, wasm compile ${f(step('wasmMs'), 0)}, ` +
    `model parse ${f(step('parseMs'), 0)}, warm-up ${f(step('warmMs'), 0)}; rest of init (Node start, imports) ${f(initMs - step('totalMs'), 0)}`,
);
console.log(`rounds: single ${ROUNDS}, batch-32 ${BATCH_ROUNDS}; ${single.split(' ').length} words, ${tokens} tokens; ${new Date().toISOString()}`);
