// Benchmark (not a test): @akidb/wasm vs onnxruntime-web 1.30 (wasm, SIMD, numThreads = 1, the same int8
// model file, the same sentences: akidb-native/src/bench_sentences.json), in Node and in the browser engines
// ($AKIDB_BROWSERS, default headless Chromium and WebKitGTK, through tests/support/browsers.mjs), interleaved
// rounds; @akidb/wasm once per build the runtime runs (wasm-relaxed-simd, wasm-simd: its WASM_VARIANTS),
// with its wasm linear memory after the runs and its .wasm's size. Writes raw samples (scripts/lib/benchstats.py's JSON lines) to $BENCH_SAMPLES (default
// target/bench/wasm-samples.jsonl) and what goes beside them to wasm-samples.meta.json; bench_table.py
// makes the tables. @akidb/wasm runs the bundle $BENCH_BUNDLE names (default int8-dynamic, the integer path
// the demo and the deployments serve; int8: the exact path), onnxruntime-web the int8 bundle's model file
// either way. Run: bash akidb-wasm/tests/bench.sh
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { measure, ortEngine, now, minCosine } from './bench-engines.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
/** The bundle @akidb/wasm runs (BENCH_BUNDLE: int8, int8-dynamic, fp32); onnxruntime-web runs `ortModel`. */
const bundleName = process.env.BENCH_BUNDLE ?? 'int8-dynamic';
const bundle = path.join(repo, 'models/all-MiniLM-L6-v2', bundleName);
const ortModel = path.join(repo, 'models/all-MiniLM-L6-v2/int8/model.onnx');
const sentences = JSON.parse(fs.readFileSync(path.join(repo, 'akidb-native/src/bench_sentences.json'), 'utf8'));
const ROUNDS = Number(process.env.ROUNDS ?? 3);
/** The threads build's pool size (BENCH_THREADS; the target is at 2). */
const THREADS = Number(process.env.BENCH_THREADS ?? 2);

function readBundle() {
  const manifest = fs.readFileSync(path.join(bundle, 'manifest.json'));
  const files = { 'manifest.json': manifest };
  for (const f of JSON.parse(manifest).files) files[f.path] = fs.readFileSync(path.join(bundle, f.path));
  return files;
}

/** The subject of an akidb build's samples: `akidb:wasm-simd`, ... */
const akidbSubject = (variant) => `akidb:${variant}`;

async function child(engine) {
  const rss0 = process.memoryUsage().rss;
  const t0 = now();
  let embed, kernels, memory;
  if (engine.startsWith('akidb:')) {
    // The nodejs glue keeps its instance to itself: its memory is seen by wrapping WebAssembly.Instance (as
    // akidb-core/tests/wasm_memory_probe.cjs does). node.mjs loads the build AKIDB_WASM_VARIANT names.
    const Instance = WebAssembly.Instance;
    WebAssembly.Instance = function (m, i) {
      const inst = new Instance(m, i);
      memory = inst.exports.memory;
      return inst;
    };
    const { Embedder, variant } = await import(path.join(repo, 'akidb-wasm/pkg/node.mjs'));
    WebAssembly.Instance = Instance;
    if (akidbSubject(variant) !== engine) throw new Error(`asked for ${engine}, node.mjs loaded ${variant}`);
    const e = Embedder.fromBundle(readBundle());
    embed = (texts) => e.embed(texts);
    kernels = () => e.matmulKernels();
  } else {
    const ort = await import('onnxruntime-web');
    const ids = JSON.parse(process.env.BENCH_IDS);
    const eng = await ortEngine(ort, fs.readFileSync(ortModel), { tokenize: (t) => t.map((s) => ids[s]) }, 384);
    embed = eng.embed;
  }
  await embed([sentences.single]);
  const coldMs = now() - t0;
  const r = await measure(embed, sentences);
  r.coldMs = coldMs;
  r.rssMB = (process.memoryUsage().rss - rss0) / 1e6;
  r.batch = Array.from(await embed(sentences.batch));
  if (kernels) r.kernels = kernels();
  if (memory) r.wasmMemMB = memory.buffer.byteLength / 1e6;
  process.stdout.write(JSON.stringify(r));
}

const f = (x, d = 1) => (x === undefined ? '–' : x.toFixed(d));

async function main() {
  const { Embedder } = await import(path.join(repo, 'akidb-wasm/pkg/node.mjs'));
  const { wasmRelaxedSimdSupported } = await import(path.join(repo, 'akidb-wasm/pkg/features.js'));
  const tokenizer = Embedder.fromBundle(readBundle());
  const all = [sentences.single, ...sentences.batch];
  const ids = Object.fromEntries(all.map((s, i) => [s, Array.from(tokenizer.tokenize(all)[i])]));
  const singleTokens = ids[sentences.single].length;
  const batchTokens = sentences.batch.reduce((n, s) => n + ids[s].length, 0);
  const longest = Math.max(...sentences.batch.map((s) => ids[s].length));
  tokenizer.free();

  // Node: each engine in its own process (memory), interleaved rounds; the builds this Node runs (Node 20:
  // wasm-simd only).
  const nodeVariants = [...(wasmRelaxedSimdSupported() ? ['wasm-relaxed-simd'] : []), 'wasm-simd'];
  const nodeEngines = [...nodeVariants.map(akidbSubject), 'ort'];
  const node = Object.fromEntries(nodeEngines.map((e) => [e, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const engine of nodeEngines) {
      const variant = engine.startsWith('akidb:') ? engine.slice('akidb:'.length) : undefined;
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', engine], {
        cwd: here,
        env: { ...process.env, BENCH_IDS: JSON.stringify(ids), ...(variant && { AKIDB_WASM_VARIANT: variant }) },
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
  const web = Object.fromEntries(engines.map((e) => [e, { ort: [] }]));
  const labels = {};
  const webVariants = {};
  const url = `${server.base}/models/${bundleName}/manifest.json`;
  for (let round = 0; round < ROUNDS; round++) {
    for (const engine of engines) {
      const page = await launchBrowser(engine);
      labels[engine] = page.label;
      try {
        // Cross-origin isolated only for the threads build (server.mjs isolates unless ?not-isolated): the
        // other builds and onnxruntime-web run on the page they ran on before, which onnxruntime-web needs in
        // WebKitGTK (isolated, it fails there with an out-of-bounds memory access).
        const open = async (isolated = false) => {
          await page.goto(`${server.base}/test/bench.html${isolated ? '' : '?not-isolated'}`);
          await page.waitForFunction(() => window.ready === true);
        };
        await open(true);
        webVariants[engine] = await page.evaluate(() => window.akidbVariants());
        const warms = [];
        // Each build on a freshly opened page (one realm runs one build).
        for (const variant of webVariants[engine]) {
          // The threads build runs in worker mode (where the loader picks it), on THREADS workers; the
          // single-thread builds on the page's thread, as before.
          const threaded = variant === 'wasm-threads';
          const mode = threaded ? { worker: true, threads: THREADS } : {};
          await open(threaded);
          const net = await page.evaluate((a) => window.benchAkidbCold(a), { url, sentences, clear: true, variant, ...mode });
          await open(threaded);
          const idb = await page.evaluate((a) => window.benchAkidbCold(a), { url, sentences, clear: false, variant, ...mode });
          if (idb.stats.fetched.length) throw new Error(`${engine}: the IndexedDB run fetched model files`);
          const warm = await page.evaluate((a) => window.benchAkidbWarm(a), { sentences });
          if (warm.variant !== variant) throw new Error(`${engine}: asked for ${variant}, ran ${warm.variant}`);
          warms.push(warm);
          (web[engine][akidbSubject(variant)] ??= []).push({
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
        }
        await open();
        const modelUrl = `${server.base}/models/int8/model.onnx`;
        web[engine].ort.push(await page.evaluate((a) => window.benchOrt(a), { modelUrl, sentences, ids }));
        const akidbSingles = warms.map((w) => `${w.variant} ${f(w.singleMs)} ms`).join(', ');
        process.stderr.write(`${engine} round ${round + 1}: akidb single ${akidbSingles}; ort ${f(web[engine].ort.at(-1).singleMs)} ms\n`);
      } finally {
        await page.close();
      }
    }
  }
  await server.close();

  // Everything measured, as raw samples (one JSON line each, scripts/lib/benchstats.py's format) for
  // akidb-wasm/tests/bench_table.py, which turns them into the tables; plus what the tables print beside
  // the figures (engine versions, token counts, .wasm sizes, agreement of the two engines' vectors).
  const lines = [];
  const emit = (subject, metric, values) => {
    for (const value of [values].flat()) {
      if (value !== undefined && Number.isFinite(value)) lines.push(JSON.stringify({ bench: 'wasm', subject, metric, value }));
    }
  };
  const emitRuns = (where, engine, runs) => {
    for (const r of runs) {
      const subject = `${where}/${engine}`;
      emit(subject, 'single_ms', r.singleSamples);
      emit(subject, 'batch32_ms', r.batchSamples);
      emit(subject, 'batch_sentences_per_s', r.batchSamples.map((ms) => sentences.batch.length / (ms / 1e3)));
      emit(subject, 'cold_ms', r.coldMs);
      emit(subject, 'rss_growth_mb', r.rssMB);
      emit(subject, 'wasm_memory_mb', r.wasmMemMB);
      emit(subject, 'idb_first_embedding_ms', r.idbMs);
      emit(subject, 'first_session_ms', r.firstCreateMs);
      emit(subject, 'later_session_ms', r.laterCreateMs);
      // Where a browser load's time goes, from the network (net_) and from IndexedDB (idb_).
      const phases = { FetchMs: 'fetch_ms', WasmReadyMs: 'wasm_ready_ms', ModelMs: 'model_ms', FirstEmbedMs: 'first_embed_ms' };
      for (const [k, metric] of Object.entries(phases)) {
        emit(subject, `net_${metric}`, r[`net${k}`]);
        emit(subject, `idb_${metric}`, r[`idb${k}`]);
      }
    }
  };
  for (const engine of nodeEngines) emitRuns('node', engine, node[engine]);
  for (const e of engines) for (const [engine, runs] of Object.entries(web[e])) emitRuns(e, engine, runs);
  const out = process.env.BENCH_SAMPLES ?? path.join(repo, 'target/bench/wasm-samples.jsonl');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${lines.join('\n')}\n`);

  const size = (file) => {
    const buf = fs.readFileSync(file);
    return { raw: buf.length / 1e6, gzip: zlib.gzipSync(buf, { level: 9 }).length / 1e6 };
  };
  const meta = {
    rounds: ROUNDS,
    threads: THREADS,
    bundle: bundleName,
    singleTokens,
    batchSentences: sentences.batch.length,
    batchTokens,
    longest,
    engines: Object.fromEntries([['node', `Node ${process.versions.node}`], ...engines.map((e) => [e, labels[e]])]),
    // The builds each runtime ran, best first (the first is what its loader picks).
    variants: { node: nodeVariants, ...webVariants },
    wasm: {
      [akidbSubject('wasm-threads')]: size(path.join(repo, 'akidb-wasm/pkg/web-threads/akidb_wasm_bg.wasm')),
      [akidbSubject('wasm-relaxed-simd')]: size(path.join(repo, 'akidb-wasm/pkg/web/akidb_wasm_relaxed_simd_bg.wasm')),
      [akidbSubject('wasm-simd')]: size(path.join(repo, 'akidb-wasm/pkg/web/akidb_wasm_bg.wasm')),
      ort: size(path.join(here, 'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm')),
    },
    minCosine: minCosine(Float32Array.from(node[nodeEngines[0]][0].batch), Float32Array.from(node.ort[0].batch), 384),
    kernels: node[nodeEngines[0]][0].kernels,
  };
  fs.writeFileSync(`${out.replace(/\.jsonl$/, '')}.meta.json`, `${JSON.stringify(meta, null, 1)}\n`);
  process.stderr.write(`raw samples: ${path.relative(repo, out)} (${lines.length} lines)\n`);
}

if (process.argv[2] === '--child') await child(process.argv[3]);
else await main();
