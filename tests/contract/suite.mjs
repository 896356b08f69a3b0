// The embedding contract of AkiDB Edge, one source of truth for every tier that answers it: `akidb serve`
// (the origin) and the Lambda@Edge handler behind CloudFront (or the local edge adapter that plays
// CloudFront). Each case is raw HTTP (exact bytes and headers, so content types, encodings and broken bodies
// are what the case says) with the status, error type and response shape every tier must give.
//
//   import { contractSuite } from '../../tests/contract/suite.mjs';
//   contractSuite('akidb serve', () => ({ url: 'http://127.0.0.1:8080' }));
//   contractSuite('edge adapter', () => ({ url, servedBy: true }));   // also checks x-akidb-served-by
//
// `servedBy: true` checks that the edge answered what it should answer itself (`edge`) and left the rest to
// the origin (`origin`): every case says which (`edge: true` = the edge must answer it).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

export const DIM = 384;

/** One HTTP exchange with exact bytes: resolves `{ status, headers, body, json() }`. */
export function request(baseUrl, { method = 'POST', path, headers = {}, body }) {
  const u = new URL(path, baseUrl);
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const h = { ...headers };
  if (bytes !== undefined) h['content-length'] = String(bytes.length);
  return new Promise((resolve, reject) => {
    let answered = false;
    // A fresh connection each time (agent: false): a server that refuses a body unread (413 on the announced
    // length) closes its connection, which must not break the next case.
    const req = http.request({ host: u.hostname, port: u.port, method, path: u.pathname + u.search, headers: h, agent: false }, (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: buf,
          json: () => JSON.parse(buf.toString('utf8')),
        });
      });
      res.on('error', reject);
    });
    // The server may answer and close before it has read all of a large body: the write then fails with
    // EPIPE/ECONNRESET although the answer is on its way; give it a moment before calling that a failure.
    req.on('error', (e) => setTimeout(() => answered || reject(e), 500));
    req.end(bytes);
  });
}

const JSON_CT = { 'content-type': 'application/json' };
const ORIGIN = 'http://page.example';

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const assertUnitVector = (v, what) => {
  assert.equal(v.length, DIM, `${what}: ${v.length} components`);
  assert.ok(v.every(Number.isFinite), `${what}: finite`);
  assert.ok(Math.abs(norm(v) - 1) < 1e-3, `${what}: norm ${norm(v)}`);
};
const decodeBase64 = (s) => {
  const b = Buffer.from(s, 'base64');
  assert.equal(b.length, DIM * 4, 'base64 embedding: 384 little-endian f32');
  return Array.from({ length: DIM }, (_, i) => b.readFloatLE(i * 4));
};

function checkEmbed(texts) {
  return (j) => {
    assert.match(j.model, /^[^@\s]+@[^@\s]+$/, 'model is name@version');
    assert.equal(j.dim, DIM);
    assert.equal(j.embeddings.length, texts.length);
    j.embeddings.forEach((v, i) => assertUnitVector(v, `embeddings[${i}]`));
    assert.deepEqual(Object.keys(j).sort(), ['dim', 'embeddings', 'model']);
  };
}

function checkOpenAi(n, { base64 = false } = {}) {
  return (j) => {
    assert.equal(j.object, 'list');
    assert.match(j.model, /^[^@\s]+@[^@\s]+$/);
    assert.equal(j.data.length, n);
    j.data.forEach((d, i) => {
      assert.equal(d.object, 'embedding');
      assert.equal(d.index, i);
      if (base64) assert.equal(typeof d.embedding, 'string', 'base64: the embedding is a string');
      assertUnitVector(base64 ? decodeBase64(d.embedding) : d.embedding, `data[${i}]`);
    });
    assert.ok(Number.isInteger(j.usage.prompt_tokens) && j.usage.prompt_tokens >= 2 * n, 'prompt_tokens counts [CLS] and [SEP]');
    assert.equal(j.usage.total_tokens, j.usage.prompt_tokens);
  };
}

const post = (path, body, headers = JSON_CT) => ({ method: 'POST', path, headers, body });
const json = (v) => JSON.stringify(v);

// Each case: the request; `status`; `type` for errors (and `message`, a RegExp, where the contract fixes
// it); `check(json)` for successes; `edge`: whether the edge answers it itself.
export const CASES = [
  // ---- successes
  { name: 'embed: one text', req: post('/v1/embed', json({ texts: ['hello world'] })), status: 200, check: checkEmbed(['hello world']), edge: true },
  {
    name: 'embed: empty string, emoji, CJK, NUL, combining marks',
    req: post('/v1/embed', json({ texts: ['', '🙂🚀 emoji', '東京は日本の首都です', 'a\u0000b', 'e\u0301te\u0301'] })),
    status: 200,
    check: checkEmbed([1, 2, 3, 4, 5]),
    edge: true,
  },
  { name: 'embed: content type with charset', req: post('/v1/embed', json({ texts: ['x'] }), { 'content-type': 'application/json; charset=utf-8' }), status: 200, check: checkEmbed(['x']), edge: true },
  { name: 'embed: application/*+json', req: post('/v1/embed', json({ texts: ['x'] }), { 'content-type': 'application/vnd.api+json' }), status: 200, check: checkEmbed(['x']), edge: true },
  { name: 'embed: Content-Encoding identity', req: post('/v1/embed', json({ texts: ['x'] }), { ...JSON_CT, 'content-encoding': 'identity' }), status: 200, check: checkEmbed(['x']), edge: true },
  { name: 'embeddings: string input', req: post('/v1/embeddings', json({ input: 'hello world', model: 'text-embedding-3-small' })), status: 200, check: checkOpenAi(1), edge: true },
  {
    name: 'embeddings: array input, float, unknown fields ignored',
    req: post('/v1/embeddings', json({ input: ['a', 'b c'], encoding_format: 'float', user: 'u-1', model: null })),
    status: 200,
    check: checkOpenAi(2),
    edge: true,
  },
  { name: 'embeddings: base64', req: post('/v1/embeddings', json({ input: ['hello world', '🙂'], encoding_format: 'base64' })), status: 200, check: checkOpenAi(2, { base64: true }), edge: true },
  { name: 'embeddings: dimensions equal to the model', req: post('/v1/embeddings', json({ input: 'x', dimensions: DIM })), status: 200, check: checkOpenAi(1), edge: true },
  {
    name: 'embed: a batch over the edge limit (33) is answered, by the origin',
    req: post('/v1/embed', json({ texts: Array.from({ length: 33 }, (_, i) => `sentence ${i}`) })),
    status: 200,
    check: checkEmbed(Array(33)),
    edge: false,
  },
  {
    name: 'embed: a body over 1 MB (JSON whitespace) is answered, by the origin',
    req: post('/v1/embed', `{"texts": ["padded"]${' '.repeat(1_100_000)}}`),
    status: 200,
    check: checkEmbed(['padded']),
    edge: false,
  },

  // ---- malformed JSON: 400
  { name: 'malformed JSON', req: post('/v1/embed', '{"texts": ['), status: 400, type: 'invalid_request_error', edge: true },
  { name: 'empty body', req: post('/v1/embed', ''), status: 400, type: 'invalid_request_error', edge: true },
  { name: 'trailing characters', req: post('/v1/embed', '{"texts": ["a"]} x'), status: 400, type: 'invalid_request_error', edge: true },
  { name: 'a byte-order mark', req: post('/v1/embed', `\uFEFF${json({ texts: ['a'] })}`), status: 400, type: 'invalid_request_error', edge: true },
  { name: 'raw control character in a string', req: post('/v1/embed', '{"texts": ["a\u0001b"]}'), status: 400, type: 'invalid_request_error', edge: true },
  { name: 'embeddings: malformed JSON', req: post('/v1/embeddings', '{"input": "a",}'), status: 400, type: 'invalid_request_error', edge: true },
  {
    name: 'invalid UTF-8 in a text (answered by the origin)',
    req: post('/v1/embed', Buffer.concat([Buffer.from('{"texts": ["ab'), Buffer.from([0xff, 0xfe]), Buffer.from('"]}')])),
    status: 400,
    type: 'invalid_request_error',
    edge: false,
  },
  { name: 'lone surrogate escape (answered by the origin)', req: post('/v1/embed', '{"texts": ["\\ud800"]}'), status: 400, type: 'invalid_request_error', edge: false },

  // ---- not JSON: 415
  { name: 'no Content-Type', req: post('/v1/embed', json({ texts: ['a'] }), {}), status: 415, type: 'invalid_request_error', edge: true },
  { name: 'text/plain', req: post('/v1/embed', json({ texts: ['a'] }), { 'content-type': 'text/plain' }), status: 415, type: 'invalid_request_error', edge: true },
  { name: 'Content-Encoding gzip', req: post('/v1/embed', json({ texts: ['a'] }), { ...JSON_CT, 'content-encoding': 'gzip' }), status: 415, edge: true },

  // ---- invalid input: 422
  { name: 'embed: empty list', req: post('/v1/embed', json({ texts: [] })), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embed: texts is a string', req: post('/v1/embed', json({ texts: 'a' })), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embed: a number in texts', req: post('/v1/embed', json({ texts: ['a', 1] })), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embed: wrong field name', req: post('/v1/embed', json({ text: ['a'] })), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embed: an extra field', req: post('/v1/embed', json({ texts: ['a'], model: 'x' })), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embed: null body', req: post('/v1/embed', 'null'), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embed: duplicate field (answered by the origin)', req: post('/v1/embed', '{"texts": ["a"], "texts": ["b"]}'), status: 422, type: 'invalid_request_error', edge: false },
  { name: 'embeddings: empty object', req: post('/v1/embeddings', '{}'), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embeddings: empty input list', req: post('/v1/embeddings', json({ input: [] })), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embeddings: token ids', req: post('/v1/embeddings', json({ input: [101, 7592, 102] })), status: 422, type: 'invalid_request_error', message: /token-id input is not supported: send text/, edge: true },
  { name: 'embeddings: lists of token ids', req: post('/v1/embeddings', json({ input: [[101, 7592, 102], [101, 102]] })), status: 422, type: 'invalid_request_error', message: /token-id input is not supported: send text/, edge: true },
  { name: 'embeddings: unknown encoding_format', req: post('/v1/embeddings', json({ input: 'a', encoding_format: 'int8' })), status: 422, type: 'invalid_request_error', edge: true },
  { name: 'embeddings: other dimensions', req: post('/v1/embeddings', json({ input: 'a', dimensions: 256 })), status: 422, type: 'invalid_request_error', message: /384/, edge: true },
  { name: 'embeddings: model not a string', req: post('/v1/embeddings', json({ input: 'a', model: 3 })), status: 422, type: 'invalid_request_error', edge: true },

  // ---- limits: 413
  { name: 'embed: 257 texts', req: post('/v1/embed', json({ texts: Array(257).fill('a') })), status: 413, type: 'invalid_request_error', edge: true },
  { name: 'embed: a text of 20001 characters', req: post('/v1/embed', json({ texts: ['a', 'b'.repeat(20001)] })), status: 413, type: 'invalid_request_error', edge: true },
  { name: 'embed: 20000 characters (emoji: 40000 UTF-16 units) is within the limit', req: post('/v1/embed', json({ texts: ['🙂'.repeat(20000)] })), status: 200, check: checkEmbed(['x']), edge: true },
  { name: 'embed: body over --max-body-bytes (2 MiB)', req: post('/v1/embed', `{"texts": ["a"]${' '.repeat(2_200_000)}}`), status: 413, type: 'invalid_request_error', edge: false },

  // ---- routes and methods
  { name: 'unknown route: 404 not_found', req: { method: 'POST', path: '/v1/nope', headers: JSON_CT, body: '{}' }, status: 404, type: 'not_found', edge: false },
  { name: 'GET /v1/embed: 405 method_not_allowed', req: { method: 'GET', path: '/v1/embed', headers: {} }, status: 405, type: 'method_not_allowed', edge: false },
];

/** Registers the contract's tests against the target `getTarget()` returns: `{ url, servedBy }`. */
export function contractSuite(name, getTarget) {
  describe(`embedding contract: ${name}`, () => {
    for (const c of CASES) {
      test(c.name, async () => {
        const target = getTarget();
        const res = await request(target.url, { ...c.req, headers: { origin: ORIGIN, ...c.req.headers } });
        const text = res.body.toString('utf8').slice(0, 300);
        assert.equal(res.status, c.status, `status ${res.status}: ${text}`);
        assert.match(String(res.headers['content-type']), /^application\/json/, 'a JSON answer');
        assert.equal(res.headers['access-control-allow-origin'], '*', 'CORS open to any origin');
        const j = res.json();
        if (c.status >= 400) {
          assert.deepEqual(Object.keys(j), ['error'], `error shape: ${text}`);
          assert.equal(typeof j.error.message, 'string');
          assert.ok(j.error.message.length > 0, 'the error says what went wrong');
          assert.equal(typeof j.error.type, 'string');
          if (c.type) assert.equal(j.error.type, c.type, j.error.message);
          if (c.message) assert.match(j.error.message, c.message);
        } else {
          c.check(j);
        }
        if (target.servedBy) {
          assert.equal(res.headers['x-akidb-served-by'], c.edge ? 'edge' : 'origin', 'which tier answered');
        }
      });
    }
    test('CORS preflight is answered (by the origin)', async () => {
      const target = getTarget();
      const res = await request(target.url, {
        method: 'OPTIONS',
        path: '/v1/embed',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      assert.ok(res.status === 200 || res.status === 204, `preflight status ${res.status}`);
      assert.equal(res.headers['access-control-allow-origin'], '*');
      if (target.servedBy) assert.equal(res.headers['x-akidb-served-by'], 'origin');
    });
  });
}
