// The official Node client, defaults only (base64 on the wire), against akidb serve.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url + '/../');
const OpenAI = require(require.resolve('openai', { paths: [process.env.NODE_PATH] }));
const base = process.env.AKIDB_BASE;
const texts = ['The quick brown fox jumps over the lazy dog.', 'emoji 🙂 and ünïcödé'];

const client = new (OpenAI.default ?? OpenAI)({ baseURL: `${base}/v1`, apiKey: 'not-needed' });
const got = await client.embeddings.create({ model: 'all-MiniLM-L6-v2', input: texts });
const want = (await (await fetch(`${base}/v1/embed`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ texts }),
})).json()).embeddings;

assert.equal(got.data.length, texts.length);
got.data.forEach((item, i) => {
  assert.equal(item.index, i);
  assert.equal(item.embedding.length, 384);
  const diff = Math.max(...item.embedding.map((x, j) => Math.abs(x - want[i][j])));
  assert.ok(diff <= 1e-6, `text ${i}: differs from /v1/embed by ${diff}`);
});
await assert.rejects(
  client.embeddings.create({ model: 'm', input: 'x', dimensions: 64 }),
  (e) => e.status === 422 && /fixed size of 384/.test(e.message),
);
console.log('node openai: ok');
