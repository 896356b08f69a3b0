// The contract suite (tests/contract/suite.mjs) against both tiers: a real `akidb serve` on loopback, and the
// built Lambda@Edge package behind the local edge adapter (CloudFront's part played by adapter.mjs), whose
// fallbacks go to that same `akidb serve`. Through the adapter every answer must also say which tier gave it.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { contractSuite } from '../../../tests/contract/suite.mjs';
import { startAdapter } from '../adapter.mjs';
import { PKG, startServe } from './helpers.mjs';

const { handler } = await import(pathToFileURL(path.join(PKG, 'index.mjs')).href);

let serve;
let adapter;
before(async () => {
  serve = await startServe(path.join(PKG, 'model'));
  await handler.ready;
  assert.ok(handler.state.model, `the packaged model loads: ${handler.state.error?.message}`);
  adapter = await startAdapter({ handler, originUrl: serve.url });
});
after(async () => {
  await adapter?.close();
  await serve?.stop();
});

contractSuite('akidb serve', () => ({ url: serve.url }));
contractSuite('Lambda@Edge handler behind the edge adapter', () => ({ url: adapter.url, servedBy: true }));
