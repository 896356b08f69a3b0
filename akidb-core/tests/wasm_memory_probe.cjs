// wasm linear memory of @akidb/wasm's Node build through the benchmark's workload (not a cargo test; run
// `bash akidb-wasm/build.sh` first): node akidb-core/tests/wasm_memory_probe.cjs [REPO] [--max-mb N]
// Prints the memory after load, the single sentence, the batch of 32 and both twice more; with --max-mb,
// exits 1 when the last figure is over N. The wasm-bindgen Node glue keeps its instance to itself, so the
// probe wraps WebAssembly.Instance to see the module's memory.
'use strict';
const path = require('path'), fs = require('fs');
const repo = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : path.join(__dirname, '../..');
const maxAt = process.argv.indexOf('--max-mb');
const maxMb = maxAt > 0 ? Number(process.argv[maxAt + 1]) : undefined;
const Orig = WebAssembly.Instance;
let mem;
WebAssembly.Instance = function (m, i) { const inst = new Orig(m, i); mem = inst.exports.memory; return inst; };
const { Embedder } = require(process.env.PKG || path.join(repo, 'akidb-wasm/pkg/node/akidb_wasm.js'));
const bundle = path.join(repo, 'models/all-MiniLM-L6-v2/int8');
const manifest = fs.readFileSync(path.join(bundle, 'manifest.json'));
const files = { 'manifest.json': manifest };
for (const f of JSON.parse(manifest).files) files[f.path] = fs.readFileSync(path.join(bundle, f.path));
const MB = () => (mem.buffer.byteLength / 1e6).toFixed(1);
console.log('start', MB());
const e = Embedder.fromBundle(files);
console.log('loaded', MB());
const s = JSON.parse(fs.readFileSync(path.join(repo, 'akidb-native/src/bench_sentences.json')));
e.embed([s.single]); console.log('single', MB());
e.embed(s.batch); console.log('batch', MB());
for (let i = 0; i < 3; i++) { e.embed([s.single]); e.embed(s.batch); }
console.log('after', MB());
if (maxMb !== undefined && mem.buffer.byteLength / 1e6 > maxMb) {
  console.error(`wasm memory ${MB()} MB is over ${maxMb} MB`);
  process.exit(1);
}
