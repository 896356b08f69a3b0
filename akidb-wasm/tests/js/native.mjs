// The native core's vectors for the golden sentences (the `akidb` CLI from target/release: JSON lines in,
// JSON lines out), the reference every wasm build is held to (max abs diff <= 1e-4).
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { bundleDir, repo } from '../../../tests/support/paths.mjs';

/** `akidb embed --bundle` over `sentences` with the `variant` bundle (int8, fp32): one flat Float32Array. */
export function nativeVectors(sentences, variant = 'int8') {
  const bin = path.join(repo, 'target/release/akidb');
  const input = sentences.map((text) => JSON.stringify({ text })).join('\n') + '\n';
  const r = spawnSync(bin, ['embed', '--bundle', bundleDir(variant)], { input, maxBuffer: 1 << 28, encoding: 'utf8' });
  assert.equal(r.status, 0, `akidb embed failed: ${r.stderr}`);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l).embedding);
  assert.equal(rows.length, sentences.length);
  return Float32Array.from(rows.flat());
}
