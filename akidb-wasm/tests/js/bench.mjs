// Benchmark (not a test): @akidb/wasm vs onnxruntime-web 1.30 (wasm, SIMD, numThreads = 1, the same int8
// model file, the same sentences: akidb-native/src/bench_sentences.json), in Node and in the browser engines
// ($AKIDB_BROWSERS, default headless Chromium and WebKitGTK, through tests/support/browsers.mjs), interleaved
// rounds, medians. The raw samples are written to $BENCH_SAMPLES (default target/bench/wasm-samples.json).
// Run: bash akidb-wasm/tests/bench.sh
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { measure, ortEngine, now, median, minCosine } from './bench-engines.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const bundle = path.join(repo, 'models/all-MiniLM-L6-v2/int8');
const sentences = JSON.parse(fs.readFileSync(path.join(repo, 'akidb-native/src/bench_sentences.json'), 'utf8'));
const ROUNDS = Number(process.env.ROUNDS ?? 3);

function readBundle() {
  const manifest = fs.readFileSync(path.join(bundle, 'manifest.json'));
  const files = { 'manifest.json': manifest };
  for (const f of JSON.parse(manifest).files) files[f.path] = fs.readFileSync(path.join(bundle, f.path));
  return files;
}

async function child(engine) {
  const rss0 = process.memoryUsage().rss;
  const t0 = now();
  let embed, kernels;
  if (engine === 'akidb') {
    const { Embedder } = await import(path.join(repo, 'akidb-wasm/pkg/node.mjs'));
    const e = Embedder.fromBundle(readBundle());
    embed = (texts) => e.embed(texts);
    kernels = () => e.matmulKernels();
  } else {
    const ort = await import('onnxruntime-web');
    const ids = JSON.parse(process.env.BENCH_IDS);
    const eng = await ortEngine(ort, fs.readFileSync(path.join(bundle, 'model.onnx')), { tokenize: (t) => t.map((s) => ids[s]) }, 384);
    embed = eng.embed;
  }
  await embed([sentences.single]);
  const coldMs = now() - t0;
  const r = await measure(embed, sentences);
  r.coldMs = coldMs;
  r.rssMB = (process.memoryUsage().rss - rss0) / 1e6;
  r.batch = Array.from(await embed(sentences.batch));
  if (kernels) r.kernels = kernels();
  process.stdout.write(JSON.stringify(r));
}

const f = (x, d = 1) => (x === undefined ? '–' : x.toFixed(d));

async function main() {
  const { Embedder } = await import(path.join(repo, 'akidb-wasm/pkg/node.mjs'));
  const tokenizer = Embedder.fromBundle(readBundle());
  const all = [sentences.single, ...sentences.batch];
  const ids = Object.fromEntries(all.map((s, i) => [s, Array.from(tokenizer.tokenize(all)[i])]));
  const singleTokens = ids[sentences.single].length;
  const batchTokens = sentences.batch.reduce((n, s) => n + ids[s].length, 0);
  const longest = Math.max(...sentences.batch.map((s) => ids[s].length));
  tokenizer.free();

  // Node: each engine in its own process (memory), interleaved rounds.
  const node = { akidb: [], ort: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const engine of ['akidb', 'ort']) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', engine], {
        cwd: here,
        env: { ...process.env, BENCH_IDS: JSON.stringify(ids) },
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      });
      if (r.status !== 0) throw new Error(`${engine} child failed: ${r.stderr}`);
      node[engine].push(JSON.parse(r.stdout));
      process.stderr.write(`node round ${round + 1} ${engine}: single ${f(node[engine].at(-1).singleMs)} ms\n`);
    }
  }

  // Each browser engine: a fresh browser per round (engines interleaved within a round); akidb cold from the
  // network, then from IndexedDB after a reload.
  const { startServer } = await import('./server.mjs');
  const { enginesToTest, launchBrowser } = await import('../../../tests/support/browsers.mjs');
  const engines = enginesToTest(process.env.AKIDB_BROWSERS ?? 'chromium,webkit');
  const server = await startServer();
  const web = Object.fromEntries(engines.map((e) => [e, { akidb: [], ort: [] }]));
  const labels = {};
  const url = `${server.base}/models/int8/manifest.json`;
  for (let round = 0; round < ROUNDS; round++) {
    for (const engine of engines) {
      const page = await launchBrowser(engine);
      labels[engine] = page.label;
      try {
        const open = async () => {
          await page.goto(`${server.base}/test/bench.html`);
          await page.waitForFunction(() => window.ready === true);
        };
        await open();
        const net = await page.evaluate((a) => window.benchAkidbCold(a), { url, sentences, clear: true });
        await open();
        const idb = await page.evaluate((a) => window.benchAkidbCold(a), { url, sentences, clear: false });
        if (idb.stats.fetched.length) throw new Error(`${engine}: the IndexedDB run fetched model files`);
        const warm = await page.evaluate((a) => window.benchAkidbWarm(a), { sentences });
        web[engine].akidb.push({
          ...warm,
          coldMs: net.coldMs,
          netFetchMs: net.stats.fetchMs,
          netWasmReadyMs: net.stats.wasmReadyMs,
          netModelMs: net.stats.modelMs,
          netFirstEmbedMs: net.firstEmbedMs,
          idbMs: idb.coldMs,
          idbFetchMs: idb.stats.fetchMs,
          idbWasmReadyMs: idb.stats.wasmReadyMs,
          idbModelMs: idb.stats.modelMs,
          idbFirstEmbedMs: idb.firstEmbedMs,
        });
        await open();
        const ortModel = `${server.base}/models/int8/model.onnx`;
        web[engine].ort.push(await page.evaluate((a) => window.benchOrt(a), { modelUrl: ortModel, sentences, ids }));
        process.stderr.write(
          `${engine} round ${round + 1}: akidb single ${f(warm.singleMs)} ms, ort ${f(web[engine].ort.at(-1).singleMs)} ms\n`,
        );
      } finally {
        await page.close();
      }
    }
  }
  await server.close();

  const med = (rs, k) => (rs.length && rs[0][k] !== undefined ? median(rs.map((r) => r[k])) : undefined);
  const size = (file) => {
    const buf = fs.readFileSync(file);
    return { raw: buf.length / 1e6, gz: zlib.gzipSync(buf, { level: 9 }).length / 1e6 };
  };
  const ours = size(path.join(repo, 'akidb-wasm/pkg/web/akidb_wasm_bg.wasm'));
  const theirs = size(path.join(here, 'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm'));
  const cos = minCosine(Float32Array.from(node.akidb[0].batch), Float32Array.from(node.ort[0].batch), 384);

  const rows = [];
  const row = (what, a, o, lowerIsBetter = true, d = 1) =>
    rows.push(`| ${what} | ${f(a, d)} | ${f(o, d)} | ${a && o ? (lowerIsBetter ? (a / o).toFixed(2) + '×' : (a / o).toFixed(2) + '×') : '–'} |`);
  row(`Node: warm single, ${singleTokens} tokens (ms)`, med(node.akidb, 'singleMs'), med(node.ort, 'singleMs'));
  row(`Node: batch of 32, ${batchTokens} tokens, ORT pads to 32×${longest} (ms)`, med(node.akidb, 'batchMs'), med(node.ort, 'batchMs'));
  row('Node: batch throughput (sentences/s)', med(node.akidb, 'sentPerS'), med(node.ort, 'sentPerS'), false);
  row('Node: cold start, disk → first embedding (ms)', med(node.akidb, 'coldMs'), med(node.ort, 'coldMs'), true, 0);
  row('Node: RSS growth after the runs (MB)', med(node.akidb, 'rssMB'), med(node.ort, 'rssMB'), true, 0);
  const name = (e) => labels[e].split(' (')[0];
  const first = engines[0];
  const firstName = name(first);
  row(`${firstName}: warm single, ${singleTokens} tokens (ms)`, med(web[first].akidb, 'singleMs'), med(web[first].ort, 'singleMs'));
  row(`${firstName}: batch of 32 (ms)`, med(web[first].akidb, 'batchMs'), med(web[first].ort, 'batchMs'));
  row(`${firstName}: batch throughput (sentences/s)`, med(web[first].akidb, 'sentPerS'), med(web[first].ort, 'sentPerS'), false);
  row(`${firstName}: cold start, network → first embedding (ms)`, med(web[first].akidb, 'coldMs'), med(web[first].ort, 'coldMs'), true, 0);
  row(
    `${firstName}: akidb IndexedDB → first embedding vs ORT first session creation (ms)`,
    med(web[first].akidb, 'idbMs'),
    med(web[first].ort, 'firstCreateMs'),
    true,
    0,
  );
  row(`${firstName}: ORT later session creation in the same page (ms)`, undefined, med(web[first].ort, 'laterCreateMs'), true, 0);
  row(`${firstName}: wasm linear memory after the runs (MB)`, med(web[first].akidb, 'wasmMemMB'), undefined, true, 0);
  row('.wasm raw (MB)', ours.raw, theirs.raw, true, 2);
  row('.wasm gzip -9 (MB)', ours.gz, theirs.gz, true, 2);
  console.log(`\n@akidb/wasm vs onnxruntime-web 1.30 (wasm SIMD, 1 thread), int8 all-MiniLM-L6-v2, ${ROUNDS} interleaved rounds, medians`);
  console.log(`min cosine akidb vs ORT on the batch: ${cos.toFixed(6)}\n`);
  console.log('| | @akidb/wasm | onnxruntime-web | ratio |\n|---|---|---|---|');
  console.log(rows.join('\n'));
  // The engines side by side (same run, same machine, rounds interleaved).
  const cols = engines.map((e) => web[e]);
  const line = (what, vals, d = 1) => `| ${what} | ${vals.map((v) => f(v, d)).join(' | ')} |`;
  console.log(`\nThe browser engines side by side (medians of ${ROUNDS} rounds; ${engines.map((e) => labels[e]).join(', ')})\n`);
  console.log(`| | ${engines.map(name).join(' | ')} |\n|---|${engines.map(() => '---|').join('')}`);
  console.log(
    [
      line(`@akidb/wasm: warm single, ${singleTokens} tokens (ms)`, cols.map((c) => med(c.akidb, 'singleMs'))),
      line('@akidb/wasm: batch throughput, 32 sentences (sentences/s)', cols.map((c) => med(c.akidb, 'sentPerS'))),
      line('onnxruntime-web: warm single (ms)', cols.map((c) => med(c.ort, 'singleMs'))),
      line('onnxruntime-web: batch throughput (sentences/s)', cols.map((c) => med(c.ort, 'sentPerS'))),
      line('@akidb/wasm: cold start, network → first embedding (ms)', cols.map((c) => med(c.akidb, 'coldMs')), 0),
      line('@akidb/wasm: IndexedDB → first embedding (ms)', cols.map((c) => med(c.akidb, 'idbMs')), 0),
    ].join('\n'),
  );

  // The raw samples (every timing of every round), for whoever wants more than medians.
  const samplesFile = process.env.BENCH_SAMPLES ?? path.join(repo, 'target/bench/wasm-samples.json');
  fs.mkdirSync(path.dirname(samplesFile), { recursive: true });
  const raw = (rs) => rs.map(({ singleSamples, batchSamples, coldMs, idbMs }) => ({ singleSamples, batchSamples, coldMs, idbMs }));
  fs.writeFileSync(
    samplesFile,
    JSON.stringify(
      {
        unit: 'ms',
        sentences: { single: singleTokens, batch: sentences.batch.length, batchTokens },
        node: { akidb: raw(node.akidb), ort: raw(node.ort) },
        browsers: Object.fromEntries(engines.map((e) => [e, { label: labels[e], akidb: raw(web[e].akidb), ort: raw(web[e].ort) }])),
      },
      null,
      1,
    ),
  );
  console.log(`\nraw samples: ${path.relative(repo, samplesFile)}`);
  console.log(
    `\n${firstName}, IndexedDB → first embedding, where the time goes (ms, medians): bundle out of IndexedDB and hashed (WebCrypto) ${f(med(web[first].akidb, 'idbFetchMs'), 0)}` +
      ` and .wasm ready ${f(med(web[first].akidb, 'idbWasmReadyMs'), 0)} (both from the start, in parallel), model load (fromHashedBundle: sizes and digests checked,` +
      ` parse, type, fold weights) ${f(med(web[first].akidb, 'idbModelMs'), 0)}, first embedding (compiles its plan) ${f(med(web[first].akidb, 'idbFirstEmbedMs'), 0)}`,
  );
  console.log(
    `${firstName}, network → first embedding (a first visit), where the time goes (ms, medians): bundle downloaded, verified and` +
      ` written to IndexedDB ${f(med(web[first].akidb, 'netFetchMs'), 0)}, .wasm ready ${f(med(web[first].akidb, 'netWasmReadyMs'), 0)} (in parallel),` +
      ` fromHashedBundle ${f(med(web[first].akidb, 'netModelMs'), 0)}, first embedding ${f(med(web[first].akidb, 'netFirstEmbedMs'), 0)}`,
  );
  console.log(`akidb matmul kernels (Node): ${node.akidb[0].kernels.join(', ')}`);
}

if (process.argv[2] === '--child') await child(process.argv[3]);
else await main();
