// The Lambda@Edge handler's benchmark (run by bench.sh; not a test). In one run:
//   init      fresh Node process -> model ready (process start to handler.ready), the built package's
//             index.mjs as Lambda imports it; median of INIT_RUNS processes, with the loader's step times;
//   warm      the handler (CloudFront event in, generated response out) against the package's own
//             `embed` on the same Embedder in the same Node process, interleaved: one 12-token sentence
//             and a batch of 32 real sentences (akidb-native/src/bench_sentences.json), p50/p95;
//   origin    akidb serve's single-request latency (POST /v1/embed over loopback, one at a time), p50/p95;
//   zip       the deployment zip's size against 50 MB.
// Writes raw samples, not statistics: JSON lines in scripts/lib/benchstats.py's format (bench "edge") to
// the file $BENCH_SAMPLES; bench.sh turns them into the tables and checks the targets (handler warm p95
// <= 1.2x embed p95, init <= 1.5 s, zip <= 30 MB) with that module's nearest-rank percentiles.
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

if (!process.env.BENCH_SAMPLES) throw new Error('set BENCH_SAMPLES to the file the raw samples go to (bench.sh does)');
const samplesOut = fs.openSync(process.env.BENCH_SAMPLES, 'w');
const record = (subject, metric, values) => {
  for (const value of values) fs.writeSync(samplesOut, JSON.stringify({ bench: 'edge', subject, metric, value }) + '\n');
};

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
record('init', 'ready_ms', inits.map((r) => r.readyMs));
for (const step of ['readMs', 'hashMs', 'wasmMs', 'parseMs', 'warmMs', 'totalMs']) {
  record('init', step.replace('Ms', '_ms'), inits.map((r) => r.timings[step]));
}

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

record('package', 'zip_mb', [fs.statSync(ZIP).size / 1048576]);
record('input', 'single_tokens', [embedder.tokenize([single])[0].length]);
record('input', 'single_words', [single.split(' ').length]);
for (const [subject, singles, batches] of [
  ['handler', s1.h, s32.h],
  ['embed', s1.e, s32.e],
  ['serve', serveSingle, serveBatch],
]) {
  record(subject, 'single_ms', singles);
  record(subject, 'batch32_ms', batches);
}
fs.closeSync(samplesOut);
