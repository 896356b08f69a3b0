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
