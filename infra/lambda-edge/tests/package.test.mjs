// The deployment zip itself: unpacked into a fresh directory it is a working Lambda package (a fresh Node
// process imports index.mjs as Lambda's runtime does and answers at the edge), it holds only what the
// handler needs, and a flipped byte in any packaged model file is refused at init, after which every
// invocation falls back to the origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ZIP, originRequest, here, unzipFresh, invoke } from './helpers.mjs';

const EVENTS = [
  originRequest({ body: '{"texts": ["hello from the edge"]}' }),
  originRequest({ uri: '/v1/embeddings', body: '{"input": "hello"}' }),
  originRequest({ body: '{"texts": []}' }),
];

test('the zip: index.mjs, src/, config.json, model/, node_modules/@akidb/wasm (its two nodejs builds only)', () => {
  const list = execFileSync('unzip', ['-Z1', ZIP]).toString().trim().split('\n');
  for (const need of ['index.mjs', 'config.json', 'src/handler.mjs', 'model/manifest.json', 'model/model.onnx', 'model/tokenizer.json', 'node_modules/@akidb/wasm/node/akidb_wasm_bg.wasm']) {
    assert.ok(list.includes(need), `${need} in the zip`);
  }
  const wasmFiles = list.filter((f) => f.endsWith('.wasm'));
  // node.mjs picks one at run time: relaxed SIMD on Node 22 (Lambda's runtime), SIMD128 on Node 20.
  assert.deepEqual(
    wasmFiles.sort(),
    ['node_modules/@akidb/wasm/node-relaxed-simd/akidb_wasm_bg.wasm', 'node_modules/@akidb/wasm/node/akidb_wasm_bg.wasm'],
    'the nodejs builds, no browser build',
  );
  assert.ok(!list.some((f) => f.startsWith('node_modules/playwright')), 'no dev dependencies');
  const size = fs.statSync(ZIP).size;
  assert.ok(size < 50 * 1024 * 1024, `zip ${size} bytes under 50 MB`);
  const config = JSON.parse(execFileSync('unzip', ['-p', ZIP, 'config.json']).toString());
  assert.equal(config.bundleDir, 'model');
  assert.ok(Number.isInteger(config.coldStartBudgetMs));
});

test('unpacked zip in a fresh Node process: answers at the edge', () => {
  const dir = unzipFresh();
  try {
    const { results } = invoke(dir, EVENTS);
    // The first invocations may wait for the model (cold-start budget); the one after `ready` must answer.
    const last = results.at(-1).result;
    assert.equal(last.status, '200', JSON.stringify(last).slice(0, 300));
    assert.equal(JSON.parse(last.body).embeddings[0].length, 384);
    assert.equal(results[2].result.status, '422', 'bad input refused at the edge even while loading');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const file of ['model.onnx', 'tokenizer.json']) {
  test(`a flipped byte in model/${file}: refused at init, every invocation falls back`, () => {
    const dir = unzipFresh();
    try {
      const target = path.join(dir, 'model', file);
      const buf = fs.readFileSync(target);
      const at = Math.floor(buf.length / 2);
      buf[at] ^= 0x01; // same size: only the hash can tell
      fs.writeFileSync(target, buf);
      const { results, logs } = invoke(dir, EVENTS.slice(0, 2));
      for (const { event, result } of results) {
        assert.deepEqual(result, event.Records[0].cf.request, 'the request unchanged');
      }
      assert.match(logs, /"event":"model-refused"/);
      assert.match(logs, new RegExp(`${file.replace('.', '\\.')}.*(sha256|hash|digest)|(sha256|hash|digest).*${file.replace('.', '\\.')}`, 'i'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('build.sh refuses a bad config value', () => {
  let err;
  try {
    execFileSync('bash', [path.join(here, 'build.sh'), '--edge-max-texts', 'lots'], { stdio: 'pipe' });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'build.sh failed');
  assert.match(err.stderr.toString(), /edgeMaxTexts must be a non-negative integer/);
});
