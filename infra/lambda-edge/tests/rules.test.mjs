// src/contract.mjs and src/config.mjs on their own (no model): which requests the edge answers, refuses or
// forwards, and the config's checks. The end-to-end answers are checked against akidb serve in
// handler.test.mjs and by the contract suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEmbedRequest, contentTypeKind } from '../src/contract.mjs';
import { makeConfig, DEFAULTS } from '../src/config.mjs';

const LIMITS = { maxTexts: 256, maxChars: 20000, dim: 384 };
const CT = { 'content-type': 'application/json' };
const parse = (route, body, headers = CT, limits = LIMITS) => parseEmbedRequest(route, headers, Buffer.from(body), limits);

test('Content-Type judged as axum does; unusual spellings left to the origin', () => {
  for (const v of ['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/vnd.api+json']) {
    assert.equal(contentTypeKind(v), 'json', v);
  }
  for (const v of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) assert.equal(contentTypeKind(v), 'other', v);
  for (const v of ['json', 'application/json;', 'application/json; a=b; c=d', '']) assert.equal(contentTypeKind(v), 'unsure', v);
});

test('texts out of both routes', () => {
  assert.deepEqual(parse('/v1/embed', '{"texts": ["a", ""]}'), { kind: 'texts', texts: ['a', ''], encodingFormat: 'float' });
  assert.deepEqual(parse('/v1/embeddings', '{"input": "a", "model": "m", "user": "u", "extra": [1]}'), { kind: 'texts', texts: ['a'], encodingFormat: 'float' });
  assert.deepEqual(parse('/v1/embeddings', '{"input": ["a"], "encoding_format": "base64", "dimensions": 384}'), { kind: 'texts', texts: ['a'], encodingFormat: 'base64' });
});

test('refusals: status and type as akidb serve gives them', () => {
  const cases = [
    ['/v1/embed', '{"texts": [', CT, 400],
    ['/v1/embed', '', CT, 400],
    ['/v1/embed', '{"texts": ["a"]}', { 'content-type': 'text/plain' }, 415],
    ['/v1/embed', '{"texts": ["a"]}', { ...CT, 'content-encoding': 'br' }, 415],
    ['/v1/embed', '{"texts": []}', CT, 422],
    ['/v1/embed', '{"texts": ["a"], "x": 1}', CT, 422],
    ['/v1/embed', '{"texts": {"a": 1}}', CT, 422],
    ['/v1/embed', '7', CT, 422],
    ['/v1/embeddings', '{"input": [[1, 2], [3]]}', CT, 422],
    ['/v1/embeddings', '{"input": ["a", 1]}', CT, 422],
    ['/v1/embeddings', '{"input": "a", "user": 7}', CT, 422],
    ['/v1/embeddings', '{"input": "a", "encoding_format": "int8"}', CT, 422],
    ['/v1/embeddings', '{"input": "a", "dimensions": 383}', CT, 422],
    ['/v1/embed', JSON.stringify({ texts: Array(257).fill('a') }), CT, 413],
    ['/v1/embed', JSON.stringify({ texts: ['😀'.repeat(20001)] }), CT, 413],
    ['/v1/embed', JSON.stringify({ texts: ['a', 'b'.repeat(20001)] }), CT, 413],
  ];
  for (const [route, body, headers, status] of cases) {
    const r = parse(route, body, headers);
    assert.equal(r.kind, 'error', `${route} ${body.slice(0, 40)}: ${JSON.stringify(r).slice(0, 200)}`);
    assert.equal(r.status, status, `${route} ${body.slice(0, 40)}`);
    assert.equal(r.type, 'invalid_request_error');
    assert.ok(r.message.length > 0);
  }
  assert.match(parse('/v1/embeddings', '{"input": [1, 2]}').message, /token-id input is not supported: send text/);
  assert.match(parse('/v1/embeddings', '{"input": [[1.5], []]}').message, /token-id input/, 'any numbers, as serde_json::Number');
  assert.equal(parse('/v1/embed', '{"texts": ["a"]}', { ...CT, 'content-encoding': ' ' }).kind, 'texts', 'an empty coding is identity');
  assert.match(parse('/v1/embeddings', '{"input": "a", "dimensions": 64}').message, /384/);
  // 20000 emoji are 40000 UTF-16 units but 20000 characters: within the limit.
  assert.equal(parse('/v1/embed', JSON.stringify({ texts: ['😀'.repeat(20000)] })).kind, 'texts');
});

test('left to the origin: cases where serde_json\'s answer depends on where the oddity sits', () => {
  const cases = [
    ['/v1/embed', Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x22, 0xff, 0x22, 0x5d, 0x7d]), 'invalid-utf8'],
    ['/v1/embed', '{"texts": ["\\ud800"]}', 'json-edge-case'],
    ['/v1/embeddings', '{"input": "a", "x": "\\udc00"}', 'json-edge-case'],
    ['/v1/embeddings', '{"input": "a", "x": 1e400}', 'json-edge-case'],
    ['/v1/embeddings', `{"input": "a", "x": ${'['.repeat(150)}${']'.repeat(150)}}`, 'json-edge-case'],
    ['/v1/embed', '[["a"]]', 'array-body'],
    ['/v1/embed', '{"texts": ["a"], "texts": ["b"]}', 'duplicate-key'],
    ['/v1/embeddings', '{"input": "a", "input": "b"}', 'duplicate-key'],
    ['/v1/embeddings', '{"input": "a", "dimensions": 384.0}', 'dimensions-spelling'],
  ];
  for (const [route, body, reason] of cases) assert.deepEqual(parse(route, body), { kind: 'origin', reason }, String(body));
  // Before the model is loaded its size is unknown: `dimensions` is left to the origin.
  assert.deepEqual(parse('/v1/embeddings', '{"input": "a", "dimensions": 384}', CT, { ...LIMITS, dim: undefined }), { kind: 'origin', reason: 'dimensions-before-load' });
  assert.deepEqual(parse('/v1/embed', '{"texts": ["a"]}', { 'content-type': 'application/json; q' }), { kind: 'origin', reason: 'unusual-content-type' });
});

test('config: defaults, overrides, and clear errors', () => {
  assert.deepEqual(makeConfig({}), DEFAULTS);
  assert.equal(makeConfig({ coldStartBudgetMs: 0 }).coldStartBudgetMs, 0);
  assert.throws(() => makeConfig({ coldStartBudget: 1 }, 'config.json'), /config.json: unknown key "coldStartBudget"/);
  assert.throws(() => makeConfig({ edgeMaxTexts: -1 }), /edgeMaxTexts must be a non-negative integer/);
  assert.throws(() => makeConfig({ edgeMaxTexts: 0 }), /edgeMaxTexts must be at least 1/);
  assert.throws(() => makeConfig({ warmup: 'yes' }), /warmup must be a boolean/);
  assert.throws(() => makeConfig({ bundleDir: 3 }), /bundleDir must be a string/);
});
