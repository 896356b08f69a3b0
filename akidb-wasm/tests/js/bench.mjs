// Benchmark (not a test): @akidb/wasm vs onnxruntime-web 1.30 (wasm, SIMD, numThreads = 1, the same int8
// model file, the same sentences: akidb-native/src/bench_sentences.json), in Node and in headless
// Chromium, interleaved rounds, medians. Run: bash akidb-wasm/tests/bench.sh
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

  // Chromium: a fresh browser per round; akidb cold from the network, then from IndexedDB after a reload.
  const { startServer } = await import('./server.mjs');
  const { launch } = await import('./browser.mjs');
  const server = await startServer();
  const web = { akidb: [], ort: [] };
  const url = `${server.base}/models/int8/manifest.json`;
  for (let round = 0; round < ROUNDS; round++) {
    const b = await launch();
    const page = b.context.pages()[0] ?? (await b.context.newPage());
    const open = async () => {
      await page.goto(`${server.base}/test/bench.html`);
      await page.waitForFunction(() => window.ready === true);
    };
    await open();
    const net = await page.evaluate((a) => window.benchAkidbCold(a), { url, sentences, clear: true });
    await open();
    const idb = await page.evaluate((a) => window.benchAkidbCold(a), { url, sentences, clear: false });
    if (idb.stats.fetched.length) throw new Error('the IndexedDB run fetched model files');
    const warm = await page.evaluate((a) => window.benchAkidbWarm(a), { sentences });
    web.akidb.push({
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
    web.ort.push(await page.evaluate((a) => window.benchOrt(a), { modelUrl: `${server.base}/models/int8/model.onnx`, sentences, ids }));
    process.stderr.write(`chromium round ${round + 1}: akidb single ${f(warm.singleMs)} ms, ort ${f(web.ort.at(-1).singleMs)} ms\n`);
    await b.close();
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
  row(`Chromium: warm single, ${singleTokens} tokens (ms)`, med(web.akidb, 'singleMs'), med(web.ort, 'singleMs'));
  row('Chromium: batch of 32 (ms)', med(web.akidb, 'batchMs'), med(web.ort, 'batchMs'));
  row('Chromium: batch throughput (sentences/s)', med(web.akidb, 'sentPerS'), med(web.ort, 'sentPerS'), false);
  row('Chromium: cold start, network → first embedding (ms)', med(web.akidb, 'coldMs'), med(web.ort, 'coldMs'), true, 0);
  row('Chromium: akidb IndexedDB → first embedding vs ORT first session creation (ms)', med(web.akidb, 'idbMs'), med(web.ort, 'firstCreateMs'), true, 0);
  row('Chromium: ORT later session creation in the same page (ms)', undefined, med(web.ort, 'laterCreateMs'), true, 0);
  row('Chromium: wasm linear memory after the runs (MB)', med(web.akidb, 'wasmMemMB'), undefined, true, 0);
  row('.wasm raw (MB)', ours.raw, theirs.raw, true, 2);
  row('.wasm gzip -9 (MB)', ours.gz, theirs.gz, true, 2);
  console.log(`\n@akidb/wasm vs onnxruntime-web 1.30 (wasm SIMD, 1 thread), int8 all-MiniLM-L6-v2, ${ROUNDS} interleaved rounds, medians`);
  console.log(`min cosine akidb vs ORT on the batch: ${cos.toFixed(6)}\n`);
  console.log('| | @akidb/wasm | onnxruntime-web | ratio |\n|---|---|---|---|');
  console.log(rows.join('\n'));
  console.log(
    `\nChromium, IndexedDB → first embedding, where the time goes (ms, medians): bundle out of IndexedDB and hashed (WebCrypto) ${f(med(web.akidb, 'idbFetchMs'), 0)}` +
      ` and .wasm ready ${f(med(web.akidb, 'idbWasmReadyMs'), 0)} (both from the start, in parallel), model load (fromHashedBundle: sizes and digests checked,` +
      ` parse, type, fold weights) ${f(med(web.akidb, 'idbModelMs'), 0)}, first embedding (compiles its plan) ${f(med(web.akidb, 'idbFirstEmbedMs'), 0)}`,
  );
  console.log(
    `Chromium, network → first embedding (a first visit), where the time goes (ms, medians): bundle downloaded, verified and` +
      ` written to IndexedDB ${f(med(web.akidb, 'netFetchMs'), 0)}, .wasm ready ${f(med(web.akidb, 'netWasmReadyMs'), 0)} (in parallel),` +
      ` fromHashedBundle ${f(med(web.akidb, 'netModelMs'), 0)}, first embedding ${f(med(web.akidb, 'netFirstEmbedMs'), 0)}`,
  );
  console.log(`akidb matmul kernels (Node): ${node.akidb[0].kernels.join(', ')}`);
}

if (process.argv[2] === '--child') await child(process.argv[3]);
else await main();
