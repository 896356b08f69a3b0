// Shared pieces of the Lambda@Edge tests: paths, CloudFront events as AWS documents them, `akidb serve` as a
// real process on a free loopback port, the zip unpacked and invoked in a fresh Node process, and the golden
// data.
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BARS, INTEGER_PATH_AGREEMENT, cosine, loadGolden } from '../../../tests/support/golden.mjs';
import { freePort, startAkidbServe } from '../../../tests/support/process.mjs';

export const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repo = path.resolve(here, '../..');
export const PKG = path.join(here, 'dist/pkg');
export const ZIP = path.join(here, 'dist/akidb-edge.zip');
export const AKIDB = path.join(process.env.AKIDB_BIN_DIR ?? path.join(repo, 'target/release'), 'akidb');
export const GOLDEN = process.env.AKIDB_GOLDEN ?? path.join(repo, '../shared/golden');
export const DIM = 384;

/** A CloudFront origin-request event (include body), as in AWS's Lambda@Edge event-structure docs. */
export function originRequest({ method = 'POST', uri = '/v1/embed', headers = { 'content-type': 'application/json' }, body, querystring = '', truncated = false, bodyEncoding = 'base64' }) {
  const cfHeaders = {
    host: [{ key: 'Host', value: 'origin.example.com' }],
    'user-agent': [{ key: 'User-Agent', value: 'Amazon CloudFront' }],
    via: [{ key: 'Via', value: '2.0 2afae0d44e2540f472c0635ab62c232b.cloudfront.net (CloudFront)' }],
    'x-forwarded-for': [{ key: 'X-Forwarded-For', value: '203.0.113.178' }],
  };
  for (const [name, value] of Object.entries(headers)) {
    cfHeaders[name.toLowerCase()] = [{ key: name.replace(/(^|-)([a-z])/g, (_, d, c) => d + c.toUpperCase()), value }];
  }
  const request = {
    clientIp: '203.0.113.178',
    headers: cfHeaders,
    method,
    origin: {
      custom: {
        customHeaders: {},
        domainName: 'origin.example.com',
        keepaliveTimeout: 5,
        path: '',
        port: 443,
        protocol: 'https',
        readTimeout: 30,
        sslProtocols: ['TLSv1.2'],
      },
    },
    querystring,
    uri,
  };
  if (body !== undefined) {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    request.body = {
      action: 'read-only',
      data: bodyEncoding === 'base64' ? bytes.toString('base64') : bytes.toString('utf8'),
      encoding: bodyEncoding,
      inputTruncated: truncated,
    };
  }
  return {
    Records: [
      {
        cf: {
          config: {
            distributionDomainName: 'd111111abcdef8.cloudfront.net',
            distributionId: 'EDFDVBD6EXAMPLE',
            eventType: 'origin-request',
            requestId: '4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==',
          },
          request,
        },
      },
    ],
  };
}

/** The body of a generated response, parsed. */
export const responseJson = (r) => JSON.parse(Buffer.from(r.body, r.bodyEncoding === 'base64' ? 'base64' : 'utf8').toString('utf8'));

/** Asserts that the handler returned `event`'s request, unchanged (the same object, equal to a copy taken before). */
export function assertForwarded(result, event, before) {
  assert.ok(!('status' in result), `a generated response (${result.status}: ${result.body?.slice?.(0, 200)}) instead of the request`);
  assert.equal(result, event.Records[0].cf.request, 'the same request object');
  assert.deepEqual(result, before, 'the request unchanged');
}

export { freePort };

/** `akidb serve` on the bundle `bundle` (tests/support/process.mjs), ready: `{ url, stop() }`. */
export function startServe(bundle = path.join(PKG, 'model'), extraArgs = []) {
  return startAkidbServe({ bundle, args: extraArgs });
}

/** The zip `zip` unpacked into a fresh temporary directory (the caller removes it). */
export function unzipFresh(zip = ZIP) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-edge-zip-'));
  execFileSync('unzip', ['-q', zip, '-d', dir]);
  return dir;
}

// A fresh Node process as the Lambda runtime: import index.mjs, invoke `events`, print what came back.
const INVOKE = `
import { pathToFileURL } from 'node:url';
const [dir, eventsJson] = process.argv.slice(1);
const { handler } = await import(pathToFileURL(dir + '/index.mjs').href);
const out = [];
for (const event of JSON.parse(eventsJson)) out.push({ event, result: await handler(event) });
await handler.ready;
out.push({ event: JSON.parse(eventsJson)[0], result: await handler(JSON.parse(eventsJson)[0]) });
console.log('RESULTS ' + JSON.stringify(out));
`;

/**
 * Imports the unpacked package `dir` in a fresh Node process and invokes `events`, then the first event
 * again once the model has loaded (or been refused): `{ results: [{event, result}], logs }` (its stdout).
 */
export function invoke(dir, events) {
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', INVOKE, dir, JSON.stringify(events)], { maxBuffer: 64 << 20 }).toString();
  const line = stdout.split('\n').find((l) => l.startsWith('RESULTS '));
  return { results: JSON.parse(line.slice('RESULTS '.length)), logs: stdout };
}

/** The golden data (sentence-transformers' vectors and token ids), through the shared test module. */
export const golden = () => loadGolden(GOLDEN);

export { cosine };

/** The `quantization` of the bundle in `dir` (`int8-dynamic`, `int8-weights`, `none`; absent is `none`). */
export function bundleQuantization(dir) {
  return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).quantization ?? 'none';
}

/**
 * How a bundle of `quantization` is held to sentence-transformers and to the native core:
 * - `golden`: the min/mean cosine bars (int8-dynamic, the integer path: 0.994 / 0.999; int8 weights on
 *   the exact path: 0.995 / 0.999; fp32: 0.99999);
 * - `assertSameVectors(edge, native, what)`: the exact paths equal within 1e-4 per element; the integer path,
 *   whose activations are rounded to 255 levels at run time (a last-bit difference before a rounding
 *   boundary moves a whole level), within a cosine of INTEGER_PATH_AGREEMENT per vector.
 */
export function agreementFor(quantization) {
  const integer = quantization === 'int8-dynamic';
  const golden = integer ? BARS.int8Dynamic : quantization === 'none' ? { min: BARS.fp32.min, mean: BARS.fp32.min } : BARS.int8;
  const assertSameVectors = (edge, native, what) => {
    assert.equal(edge.length, native.length, `${what}: as many vectors`);
    edge.forEach((v, i) => {
      assert.equal(v.length, native[i].length, `${what}: row ${i}'s width`);
      if (integer) {
        const c = cosine(v, native[i]);
        assert.ok(c >= INTEGER_PATH_AGREEMENT, `${what}: row ${i}: cosine ${c} to the native core's`);
      } else {
        v.forEach((x, k) => assert.ok(Math.abs(x - native[i][k]) <= 1e-4, `${what}: row ${i}[${k}]: ${x} vs ${native[i][k]}`));
      }
    });
  };
  return { integer, golden, assertSameVectors };
}
