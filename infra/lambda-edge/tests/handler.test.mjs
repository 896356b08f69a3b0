// The Lambda@Edge handler as the built package runs it (dist/pkg, what build.sh zips), driven by synthetic
// CloudFront origin-request events shaped as AWS documents them: golden vectors, the native core, the token
// counts, every fallback case, and byte-level edge cases answered exactly as a real `akidb serve` answers them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  PKG,
  AKIDB,
  DIM,
  originRequest,
  responseJson,
  assertForwarded,
  startServe,
  golden,
  cosine,
  bundleQuantization,
  agreementFor,
} from './helpers.mjs';
import { request } from '../../../tests/contract/suite.mjs';

const { handler } = await import(pathToFileURL(path.join(PKG, 'index.mjs')).href);
const { createHandler } = await import(pathToFileURL(path.join(PKG, 'src/handler.mjs')).href);
const { makeConfig } = await import(pathToFileURL(path.join(PKG, 'src/config.mjs')).href);
const BUNDLE = path.join(PKG, 'model');
const G = golden();
// The packaged bundle's bars: build.sh packages int8-dynamic (the integer path) unless --bundle says otherwise.
const QUANTIZATION = bundleQuantization(BUNDLE);
const AGREEMENT = agreementFor(QUANTIZATION);

let serve;
before(async () => {
  await handler.ready;
  assert.ok(handler.state.model, `the packaged model loads: ${handler.state.error?.message}`);
  serve = await startServe(BUNDLE);
});
after(async () => serve?.stop());

const embedEvent = (texts) => originRequest({ body: JSON.stringify({ texts }) });

/** The handler's vectors for `texts` via /v1/embed events of at most 32 texts. */
async function edgeVectors(texts) {
  const out = [];
  for (let i = 0; i < texts.length; i += 32) {
    const r = await handler(embedEvent(texts.slice(i, i + 32)));
    assert.equal(r.status, '200', r.body);
    assert.equal(r.headers['x-akidb-served-by'][0].value, 'edge');
    out.push(...responseJson(r).embeddings);
  }
  return out;
}

// The golden sentences through the handler, once for the two tests below.
let goldenVectors;
const edgeGolden = async () => (goldenVectors ??= await edgeVectors(G.sentences));

test(`golden sentences: the ${QUANTIZATION} bundle's min and mean cosine against sentence-transformers`, async () => {
  const vectors = await edgeGolden();
  const cos = vectors.map((v, i) => cosine(v, G.row(i)));
  const min = Math.min(...cos);
  const mean = cos.reduce((a, b) => a + b, 0) / cos.length;
  console.log(`# edge vs golden over ${cos.length} (${QUANTIZATION}): min cosine ${min.toFixed(5)}, mean ${mean.toFixed(5)}`);
  assert.equal(vectors.length, 200);
  assert.ok(min >= AGREEMENT.golden.min, `min cosine ${min}`);
  assert.ok(mean >= AGREEMENT.golden.mean, `mean cosine ${mean}`);
});

test('golden sentences: the same vectors as the native core (akidb embed): 1e-4 per element, a cosine on the integer path', async () => {
  const vectors = await edgeGolden();
  const stdin = G.sentences.map((text) => JSON.stringify({ text })).join('\n') + '\n';
  const lines = execFileSync(AKIDB, ['embed', '--bundle', BUNDLE], { input: stdin, maxBuffer: 64 << 20 })
    .toString()
    .trim()
    .split('\n');
  assert.equal(lines.length, G.sentences.length);
  const native = lines.map((line) => JSON.parse(line).embedding);
  let max = 0;
  native.forEach((n, i) => {
    assert.equal(n.length, DIM);
    for (let j = 0; j < DIM; j++) max = Math.max(max, Math.abs(n[j] - vectors[i][j]));
  });
  const minCos = Math.min(...native.map((n, i) => cosine(n, vectors[i])));
  console.log(`# edge vs native core (${QUANTIZATION}): max abs diff ${max.toExponential(2)}, min cosine ${minCos.toFixed(6)}`);
  AGREEMENT.assertSameVectors(vectors, native, 'edge vs native');
});

test('/v1/embeddings: usage counts the golden token ids; base64 is the float answer\'s f32 bytes', async () => {
  const texts = G.sentences.slice(0, 32);
  const r = await handler(originRequest({ uri: '/v1/embeddings', body: JSON.stringify({ input: texts }) }));
  assert.equal(r.status, '200');
  const j = responseJson(r);
  const expected = G.tokenIds.slice(0, 32).reduce((n, ids) => n + ids.length, 0);
  assert.equal(j.usage.prompt_tokens, expected);
  assert.equal(j.usage.total_tokens, expected);
  const b = await handler(originRequest({ uri: '/v1/embeddings', body: JSON.stringify({ input: texts, encoding_format: 'base64' }) }));
  const jb = responseJson(b);
  jb.data.forEach((d, i) => {
    const bytes = Buffer.from(d.embedding, 'base64');
    const fromBase64 = Array.from({ length: DIM }, (_, k) => bytes.readFloatLE(4 * k));
    assert.deepEqual(fromBase64, j.data[i].embedding.map(Math.fround));
  });
});

test('every answer says who served it: edge on generated responses, origin via the origin-response event', async () => {
  const r = await handler(embedEvent(['a']));
  assert.deepEqual(r.headers['x-akidb-served-by'], [{ key: 'X-Akidb-Served-By', value: 'edge' }]);
  const bad = await handler(embedEvent([]));
  assert.equal(bad.status, '422');
  assert.equal(bad.headers['x-akidb-served-by'][0].value, 'edge');
  const ev = originRequest({ method: 'GET', uri: '/healthz' });
  ev.Records[0].cf.config.eventType = 'origin-response';
  ev.Records[0].cf.response = { status: '200', statusDescription: 'OK', headers: { 'content-type': [{ key: 'Content-Type', value: 'text/plain' }] } };
  const o = await handler(ev);
  assert.equal(o, ev.Records[0].cf.response);
  assert.deepEqual(o.headers['x-akidb-served-by'], [{ key: 'X-Akidb-Served-By', value: 'origin' }]);
  assert.equal(o.headers['content-type'][0].value, 'text/plain', 'the origin\'s headers stay');
});

// ---- fallbacks: each returns the request unchanged

async function expectForward(h, event) {
  const before = structuredClone(event.Records[0].cf.request);
  assertForwarded(await h(event), event, before);
}

test('fallback: body truncated at 1 MB by CloudFront', async () => {
  await expectForward(handler, originRequest({ body: '{"texts": ["a"]}', truncated: true }));
});

test('fallback: a batch larger than the edge limit (33 > 32)', async () => {
  await expectForward(handler, embedEvent(Array(33).fill('a')));
  // 32 is answered at the edge: the limit, not the content, made the difference.
  assert.equal((await handler(embedEvent(Array(32).fill('a')))).status, '200');
});

test('fallback: the model still loading when the cold-start budget is spent', async () => {
  const h = createHandler(makeConfig({ coldStartBudgetMs: 0, log: false }), { bundleDir: BUNDLE });
  await expectForward(h, embedEvent(['cold']));
  await h.ready;
  assert.equal((await h(embedEvent(['cold']))).status, '200', 'once loaded, the same request is answered');
});

test('fallback: anything failing inside (the model throws)', async () => {
  const load = async () => ({
    model: 'broken@0',
    dim: DIM,
    embedder: {
      embed: () => {
        throw new Error('wasm trap: unreachable');
      },
      tokenize: () => [],
    },
  });
  const h = createHandler(makeConfig({ log: false }), { bundleDir: BUNDLE, load });
  await h.ready;
  await expectForward(h, embedEvent(['x']));
});

test('fallback: a model that failed to load', async () => {
  const h = createHandler(makeConfig({ log: false }), { bundleDir: '/nonexistent/bundle' });
  await h.ready;
  assert.match(String(h.state.error), /nonexistent/);
  await expectForward(h, embedEvent(['x']));
});

test('fallback: an answer over CloudFront\'s 1 MB generated-response limit', async () => {
  const h = createHandler(makeConfig({ log: false, maxResponseBytes: 12000 }), { bundleDir: BUNDLE });
  await h.ready;
  assert.equal((await h(embedEvent(['x']))).status, '200', 'one vector (about 8 KB) fits in 12000 bytes');
  await expectForward(h, embedEvent(['x', 'y']));
});

test('fallback: no body (include-body off), other methods and routes', async () => {
  await expectForward(handler, originRequest({}));
  await expectForward(handler, originRequest({ method: 'GET', uri: '/v1/embed' }));
  await expectForward(handler, originRequest({ method: 'OPTIONS', uri: '/v1/embed', headers: { origin: 'http://a.example', 'access-control-request-method': 'POST' } }));
  await expectForward(handler, originRequest({ uri: '/v1/embed/', body: '{"texts": ["a"]}' }));
  await expectForward(handler, originRequest({ method: 'GET', uri: '/v1/models/all-MiniLM-L6-v2/latest/manifest.json' }));
});

// ---- the same answers as akidb serve, byte for byte input

const CT = { 'content-type': 'application/json' };
const bytes = (...parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
const SAME_AS_SERVE = [
  ['emoji', '/v1/embed', CT, bytes('{"texts": ["🙂", "👩‍👩‍👧‍👦 family", "🇯🇵"]}')],
  ['CJK', '/v1/embed', CT, bytes('{"texts": ["東京は日本の首都です", "北京欢迎你", "한국어 문장"]}')],
  ['NUL escaped in a text', '/v1/embed', CT, bytes('{"texts": ["a\\u0000b", "\\u0000"]}')],
  ['escaped surrogate pair', '/v1/embeddings', CT, bytes('{"input": "\\ud83d\\ude42 smile"}')],
  ['raw NUL byte in a string', '/v1/embed', CT, bytes('{"texts": ["a', [0], 'b"]}')],
  ['malformed: unclosed', '/v1/embed', CT, bytes('{"texts": ["a"')],
  ['malformed: single quotes', '/v1/embeddings', CT, bytes("{'input': 'a'}")],
  ['malformed: empty body', '/v1/embeddings', CT, bytes('')],
  ['malformed: BOM', '/v1/embed', CT, bytes('\uFEFF{"texts": ["a"]}')],
  ['not an object', '/v1/embed', CT, bytes('"hello"')],
  ['wrong type inside', '/v1/embed', CT, bytes('{"texts": [["a"]]}')],
  ['text/plain', '/v1/embed', { 'content-type': 'text/plain' }, bytes('{"texts": ["a"]}')],
  ['base64 output of CJK', '/v1/embeddings', CT, bytes('{"input": ["漢字", "かな"], "encoding_format": "base64"}')],
  ['413 by characters, counted as scalar values', '/v1/embed', CT, bytes(JSON.stringify({ texts: ['😀'.repeat(20001)] }))],
];
// Answered by the origin: serde_json's answer depends on where the bytes sit (see src/contract.mjs).
const FORWARDED = [
  ['invalid UTF-8', '/v1/embed', CT, bytes('{"texts": ["a', [0xc3, 0x28], 'b"]}')],
  ['truncated UTF-8 sequence', '/v1/embeddings', CT, bytes('{"input": "', [0xe6, 0x97], '"}')],
  ['lone surrogate escape', '/v1/embeddings', CT, bytes('{"input": "\\udc00"}')],
];

for (const [name, route, headers, body] of [...SAME_AS_SERVE, ...FORWARDED]) {
  const forwarded = FORWARDED.some((c) => c[0] === name);
  test(`same answer as akidb serve: ${name}${forwarded ? ' (forwarded)' : ''}`, async () => {
    const origin = await request(serve.url, { path: route, headers, body });
    const event = originRequest({ uri: route, headers, body });
    const before = structuredClone(event.Records[0].cf.request);
    const r = await handler(event);
    if (forwarded) {
      assertForwarded(r, event, before);
      assert.ok(origin.status >= 400, `akidb serve refuses it too: ${origin.status}`);
      return;
    }
    assert.equal(Number(r.status), origin.status, `edge ${r.status} ${r.body.slice(0, 200)} vs origin ${origin.body.toString().slice(0, 200)}`);
    const e = responseJson(r);
    const o = origin.json();
    if (origin.status !== 200) {
      assert.equal(e.error.type, o.error.type);
      return;
    }
    assert.equal(e.model, o.model);
    if (e.usage) assert.deepEqual(e.usage, o.usage);
    const rows = (j) => (j.embeddings ?? j.data.map((d) => (typeof d.embedding === 'string' ? decode(d.embedding) : d.embedding)));
    AGREEMENT.assertSameVectors(rows(e), rows(o), name);
  });
}

const decode = (s) => {
  const b = Buffer.from(s, 'base64');
  return Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(4 * i));
};

test('text bodies (bodyEncoding text) are read as well as base64 ones', async () => {
  const r = await handler(originRequest({ body: '{"texts": ["東京"]}', bodyEncoding: 'text' }));
  assert.equal(r.status, '200');
  const b = await handler(originRequest({ body: '{"texts": ["東京"]}' }));
  assert.deepEqual(responseJson(r), responseJson(b));
});
