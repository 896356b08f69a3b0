// The golden suite in Node on the nodejs build of @akidb/wasm, plus wasm vs native (the `akidb` CLI)
// on all 200 golden sentences, for the int8, int8-dynamic (integer path) and (when present) fp32 bundles; and the Node entry's
// verifyManifestSignature on a signature made by Node's own ed25519. It runs on the build the Node entry
// picks: wasm-simd on Node 20; wasm-relaxed-simd on Node 21+ or with --experimental-wasm-relaxed-simd
// (run.sh runs the suite both ways).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { bundleDir, repo } from '../../../tests/support/paths.mjs';
import { BARS, INTEGER_PATH_AGREEMENT, cosineBars, loadGolden, maxAbsDiff, minRowCosine } from '../../../tests/support/golden.mjs';
import { makeKey, trusted } from './signed-bundles.mjs';
import { nativeVectors } from './native.mjs';
import { explainTrap } from '../../js/util.js';

const { Embedder, failedAllocationBytes, lastPanicMessage, verifyManifestSignature, variant } = await import(path.join(repo, 'akidb-wasm/pkg/node.mjs'));

const golden = loadGolden();
const { sentences, tokenIds: goldenIds, dim } = golden;

function readBundle(variant) {
  const dir = bundleDir(variant);
  const manifest = fs.readFileSync(path.join(dir, 'manifest.json'));
  const files = new Map([['manifest.json', manifest]]);
  for (const f of JSON.parse(manifest).files) files.set(f.path, fs.readFileSync(path.join(dir, f.path)));
  return files;
}

const cosines = (flat) => cosineBars(flat, golden);

/** The native CLI's vectors for all golden sentences (one run per bundle). */
const nativeRuns = new Map();
const native = (variant) => {
  if (!nativeRuns.has(variant)) nativeRuns.set(variant, nativeVectors(sentences, variant));
  return nativeRuns.get(variant);
};

const int8 = Embedder.fromBundle(readBundle('int8'));

/** The build this Node should run: the forced one (AKIDB_WASM_VARIANT), else from its version and flags
 * (not from the entry's own probe): relaxed SIMD is on by default from Node 21; Node 20 refuses it without
 * the flag. */
const expectedVariant =
  process.env.AKIDB_WASM_VARIANT ??
  (Number(process.versions.node.split('.')[0]) >= 21 || process.execArgv.includes('--experimental-wasm-relaxed-simd')
    ? 'wasm-relaxed-simd'
    : 'wasm-simd');

test(`the Node entry runs the build this Node should (${expectedVariant})`, () => {
  assert.equal(variant, expectedVariant);
});

test('token ids equal the reference for every sentence', () => {
  const ids = int8.tokenize(sentences);
  assert.equal(ids.length, sentences.length);
  const bad = sentences.map((_, i) => i).filter((i) => JSON.stringify(Array.from(ids[i])) !== JSON.stringify(goldenIds[i]));
  assert.deepEqual(bad, [], `sentences tokenized differently: ${bad.slice(0, 5)}`);
});

test('int8: cosine bars and wasm vs native max abs diff <= 1e-4 on all 200 sentences', () => {
  const flat = int8.embed(sentences);
  assert.equal(flat.length, sentences.length * dim);
  assert.equal(int8.dim, dim);
  const { min, mean } = cosines(flat);
  const diff = maxAbsDiff(flat, native('int8'));
  console.log(`${variant} int8 in Node: min cosine ${min.toFixed(6)}, mean ${mean.toFixed(6)}; wasm vs native max abs diff ${diff.toExponential(2)}`);
  assert.ok(min >= BARS.int8.min, `min cosine ${min}`);
  assert.ok(mean >= BARS.int8.mean, `mean cosine ${mean}`);
  assert.ok(diff <= 1e-4, `wasm vs native max abs diff ${diff}`);
});

test('fp32: cosine >= 0.99999 for every sentence and wasm vs native <= 1e-4', { skip: !fs.existsSync(path.join(bundleDir('fp32'), 'manifest.json')) && 'no fp32 bundle' }, () => {
  const fp32 = Embedder.fromBundle(readBundle('fp32'));
  const flat = fp32.embed(sentences);
  fp32.free();
  const { min, mean } = cosines(flat);
  const diff = maxAbsDiff(flat, native('fp32'));
  console.log(`${variant} fp32 in Node: min cosine ${min.toFixed(7)}, mean ${mean.toFixed(7)}; wasm vs native max abs diff ${diff.toExponential(2)}`);
  assert.ok(min >= BARS.fp32.min, `min cosine ${min}`);
  assert.ok(diff <= 1e-4, `wasm vs native max abs diff ${diff}`);
});

test('int8-dynamic: integer weight products on akidb\'s int8 kernel; token ids, the integer path\'s bars and wasm vs native (cosine per sentence) on all 200 sentences', () => {
  const dynamic = Embedder.fromBundle(readBundle('int8-dynamic'));
  const ids = dynamic.tokenize(sentences);
  const bad = sentences.map((_, i) => i).filter((i) => JSON.stringify(Array.from(ids[i])) !== JSON.stringify(goldenIds[i]));
  assert.deepEqual(bad, [], `sentences tokenized differently: ${bad.slice(0, 5)}`);
  const flat = dynamic.embed(sentences);
  const kernels = dynamic.matmulKernels();
  dynamic.free();
  assert.ok(kernels.includes('akidb_wasm_i32_8x4'), `weight products on akidb's int8 kernel: ${kernels}`);
  const { min, mean } = cosines(flat);
  console.log(`${variant} int8-dynamic in Node: min cosine ${min.toFixed(6)}, mean ${mean.toFixed(6)}; kernels ${kernels.join(' ')}`);
  assert.ok(min >= BARS.int8Dynamic.min, `min cosine ${min}`);
  assert.ok(mean >= BARS.int8Dynamic.mean, `mean cosine ${mean}`);
  assert.ok(maxAbsDiff(flat, native('int8')) > 1e-4, 'different vectors from the exact int8 path');
  // The native reference runs the integer path too unless this CPU keeps int8-dynamic bundles on the
  // exact one (x86-64 with AVX-512 but no VNNI or AMX: then its vectors are the int8 bundle's).
  const reference = native('int8-dynamic');
  if (maxAbsDiff(reference, native('int8')) === 0) {
    console.log('# NOT COMPARED: the native CLI runs int8-dynamic on the exact path on this CPU');
  } else {
    const agreement = minRowCosine(flat, reference, dim);
    console.log(`${variant} int8-dynamic: wasm vs native min cosine ${agreement.toFixed(6)}, max abs diff ${maxAbsDiff(flat, reference).toExponential(2)}`);
    assert.ok(agreement >= INTEGER_PATH_AGREEMENT, `wasm vs native min cosine ${agreement}`);
  }
});

test('a corrupt or missing bundle file is named', () => {
  const files = readBundle('int8');
  const tok = Uint8Array.from(files.get('tokenizer.json'));
  tok[10] ^= 1;
  files.set('tokenizer.json', tok);
  assert.throws(() => Embedder.fromBundle(files), /tokenizer\.json/);
  const plain = Object.fromEntries(readBundle('int8'));
  delete plain['model.onnx'];
  assert.throws(() => Embedder.fromBundle(plain), /model\.onnx/);
});

test('fromHashedBundle takes WebCrypto digests, compares them and names a mismatch', async () => {
  const files = readBundle('int8');
  const sha256s = new Map();
  for (const [p, bytes] of files) {
    if (p !== 'manifest.json') sha256s.set(p, Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex'));
  }
  const hashed = Embedder.fromHashedBundle(files, sha256s);
  assert.deepEqual(hashed.embed(sentences.slice(0, 3)), int8.embed(sentences.slice(0, 3)));
  hashed.free();
  const wrong = new Map(sha256s).set('model.onnx', sha256s.get('tokenizer.json'));
  assert.throws(() => Embedder.fromHashedBundle(files, wrong), /model\.onnx.*corrupt|corrupt.*model\.onnx/);
  const partial = new Map(sha256s);
  partial.delete('tokenizer.json');
  assert.throws(() => Embedder.fromHashedBundle(files, Object.fromEntries(partial)), /tokenizer\.json: no sha256/);
});

test('a trap in the wasm core comes out saying what the core was doing, why, and how big its memory was', () => {
  // A real trap: a module whose one function is `unreachable`, as a Rust panic or a failed allocation ends.
  const trapping = new WebAssembly.Instance(
    new WebAssembly.Module(
      new Uint8Array([
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
        0x03, 0x02, 0x01, 0x00, // one function of that type
        0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // exported as "f"
        0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable, end
      ]),
    ),
  );
  let trap;
  try {
    trapping.exports.f();
  } catch (e) {
    trap = e;
  }
  assert.ok(trap instanceof WebAssembly.RuntimeError);
  const memory = new WebAssembly.Memory({ initial: 32 }); // 32 pages of 64 KiB
  // The real core's records, in an instance that has neither run out nor panicked.
  assert.equal(failedAllocationBytes(), 0);
  assert.equal(lastPanicMessage(), undefined);
  const core = { memory, failedAllocationBytes, lastPanicMessage };
  const explained = explainTrap(trap, 'loading the bundle', core);
  // Both records read, both empty: neither cause happened, which leaves the engine or corrupted memory.
  assert.match(explained.message, /trapped loading the bundle \(.*unreachable.*\) with 2 MiB of linear memory: neither a panic nor a failed allocation was recorded/);
  assert.equal(explained.cause, trap);
  // What the records say when the core ran out, or panicked.
  const oom = explainTrap(trap, 'loading the bundle', { ...core, failedAllocationBytes: () => 150 * 2 ** 20 });
  assert.match(oom.message, /ran out of memory loading the bundle: an allocation of 150 MiB failed with 2 MiB of linear memory/);
  const panicked = explainTrap(trap, 'embedding', { ...core, lastPanicMessage: () => 'panicked at src/x.rs:1:2:\nboom' });
  assert.match(panicked.message, /panicked embedding \(2 MiB of linear memory\): panicked at src\/x\.rs:1:2:\nboom/);
  // A record that throws (a broken instance) leaves the generic message.
  const broken = explainTrap(trap, 'embedding', { memory, failedAllocationBytes: () => { throw trap; } });
  assert.match(broken.message, /trapped embedding .* a panic .* or a failed allocation/);
  // A trap made in another realm (a worker's, a frame's) is one too.
  const foreign = vm.runInNewContext('new WebAssembly.RuntimeError("unreachable")');
  assert.ok(!(foreign instanceof WebAssembly.RuntimeError));
  assert.match(explainTrap(foreign, 'embedding', core).message, /trapped embedding \(unreachable\)/);
  // The core's own errors keep their messages.
  const own = new Error('texts[1] is not a string');
  assert.equal(explainTrap(own, 'embedding', core), own);
});

test('embed rejects non-strings and handles an empty list', () => {
  assert.throws(() => int8.embed(['ok', 3]), /texts\[1\]/);
  assert.equal(int8.embed([]).length, 0);
});

test('the Node entry verifies a manifest signed by Node’s ed25519 (the documented format) and refuses a changed byte', () => {
  const key = makeKey();
  const manifest = fs.readFileSync(path.join(bundleDir('int8'), 'manifest.json'));
  const keys = JSON.stringify({ keys: [trusted(key)] });
  assert.equal(verifyManifestSignature(manifest, key.sign(manifest), keys, 'int8/manifest.json'), key.key_id);
  const changed = Buffer.from(manifest);
  changed[changed.length >> 1] ^= 1;
  assert.throws(
    () => verifyManifestSignature(changed, key.sign(manifest), keys, 'int8/manifest.json'),
    (e) => e.message.includes(key.key_id) && e.message.includes('int8/manifest.json') && /does not verify/.test(e.message),
  );
  assert.equal(verifyManifestSignature(manifest, undefined, '{"keys":[]}', 'int8/manifest.json'), undefined, 'no keys: nothing checked');
});
