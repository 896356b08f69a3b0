#!/usr/bin/env node
// The local edge adapter, for development and end-to-end tests: a small HTTP server that plays CloudFront
// around the Lambda@Edge handler. Each request becomes an origin-request event shaped as AWS documents it
// (lower-case header names with [{key, value}] lists, include-body: the body base64-encoded, cut at 1 MB
// with `inputTruncated`). A generated response is sent as it is (over 1 MB is a 502, as CloudFront does); a
// returned request is forwarded to the origin (the full original body, as CloudFront sends it) and the
// origin's answer passes through the handler's origin-response event.
//
//   node infra/lambda-edge/adapter.mjs --origin http://127.0.0.1:8080 [--addr 127.0.0.1:8787]
//                                      [--package infra/lambda-edge/dist/pkg]
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BODY_LIMIT = 1024 * 1024; // include-body delivers at most 1 MB
export const RESPONSE_LIMIT = 1024 * 1024; // a generated response may be at most 1 MB

const readAll = (stream) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });

/** CloudFront's `{name: [{key, value}]}` from Node's raw header list. */
function cfHeaders(rawHeaders) {
  const out = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const key = rawHeaders[i];
    (out[key.toLowerCase()] ??= []).push({ key, value: rawHeaders[i + 1] });
  }
  return out;
}

/** The origin-request event CloudFront would send for this HTTP request. */
export function originRequestEvent({ method, url, rawHeaders, body, clientIp, origin }) {
  const u = new URL(url, 'http://adapter.invalid');
  const truncated = body.length > BODY_LIMIT;
  return {
    Records: [
      {
        cf: {
          config: {
            distributionDomainName: 'd111111abcdef8.cloudfront.net',
            distributionId: 'ELOCALADAPTER',
            eventType: 'origin-request',
            requestId: crypto.randomBytes(30).toString('base64'),
          },
          request: {
            clientIp,
            headers: cfHeaders(rawHeaders),
            method,
            origin: {
              custom: {
                customHeaders: {},
                domainName: origin.hostname,
                keepaliveTimeout: 5,
                path: '',
                port: Number(origin.port || 80),
                protocol: origin.protocol.replace(':', ''),
                readTimeout: 30,
                sslProtocols: ['TLSv1.2'],
              },
            },
            querystring: u.search.replace(/^\?/, ''),
            uri: u.pathname,
            body: {
              action: 'read-only',
              data: (truncated ? body.subarray(0, BODY_LIMIT) : body).toString('base64'),
              encoding: 'base64',
              inputTruncated: truncated,
            },
          },
        },
      },
    ],
  };
}

// Hop-by-hop and length headers: Node's http client sets its own.
const SKIP_TO_ORIGIN = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/** Sends `request` (as the handler returned it) to `origin`; resolves `{status, headers, body}`. */
function toOrigin(origin, request, originalBody) {
  const headers = {};
  for (const [name, list] of Object.entries(request.headers ?? {})) {
    if (!SKIP_TO_ORIGIN.has(name)) headers[name] = list.map((h) => h.value);
  }
  const body =
    request.body?.action === 'replace'
      ? Buffer.from(request.body.data, request.body.encoding === 'base64' ? 'base64' : 'utf8')
      : originalBody;
  if (body.length > 0 || request.method === 'POST' || request.method === 'PUT') headers['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      {
        agent: false, // a fresh connection: an origin that refuses a body unread closes its connection
        host: origin.hostname,
        port: origin.port,
        method: request.method,
        path: request.uri + (request.querystring ? `?${request.querystring}` : ''),
        headers,
      },
      async (res) => {
        answered = true;
        try {
          resolve({ status: res.statusCode, statusMessage: res.statusMessage, rawHeaders: res.rawHeaders, body: await readAll(res) });
        } catch (e) {
          reject(e);
        }
      },
    );
    // An origin that answers (413) before reading a large body makes the write fail; its answer still counts.
    req.on('error', (e) => setTimeout(() => answered || reject(e), 500));
    req.end(body);
  });
}

/** `headers` without the ones the adapter's own HTTP layer sets. */
function withoutHopHeaders(headers) {
  for (const name of SKIP_TO_ORIGIN) delete headers[name];
  return headers;
}

function send(res, status, headers, body) {
  const list = [];
  for (const values of Object.values(headers ?? {})) for (const { key, value } of values) list.push(key, value);
  list.push('Content-Length', String(body.length));
  res.writeHead(status, list);
  res.end(body);
}

/**
 * Serves `handler` (a Lambda@Edge handler) on `host:port` in front of `originUrl`. Resolves
 * `{ url, counts: {edge, origin}, close() }`; `counts` says who answered how many requests.
 */
export async function startAdapter({ handler, originUrl, host = '127.0.0.1', port = 0 }) {
  const origin = new URL(originUrl);
  const counts = { edge: 0, origin: 0 };
  const server = http.createServer(async (req, res) => {
    try {
      const body = await readAll(req);
      const event = originRequestEvent({
        method: req.method,
        url: req.url,
        rawHeaders: req.rawHeaders,
        body,
        clientIp: req.socket.remoteAddress,
        origin,
      });
      const request = event.Records[0].cf.request;
      const result = await handler(event);
      if (result && 'status' in result) {
        const out = Buffer.from(result.body ?? '', result.bodyEncoding === 'base64' ? 'base64' : 'utf8');
        if (out.length > RESPONSE_LIMIT) {
          send(res, 502, {}, Buffer.from('generated response over 1 MB (CloudFront: LambdaValidationError)\n'));
          return;
        }
        counts.edge++;
        send(res, Number(result.status), result.headers, out);
        return;
      }
      const answer = await toOrigin(origin, result ?? request, body);
      const responseEvent = structuredClone(event);
      responseEvent.Records[0].cf.config.eventType = 'origin-response';
      responseEvent.Records[0].cf.request = result ?? request;
      delete responseEvent.Records[0].cf.request.body; // origin-response events carry no request body
      responseEvent.Records[0].cf.response = {
        status: String(answer.status),
        statusDescription: answer.statusMessage,
        headers: withoutHopHeaders(cfHeaders(answer.rawHeaders)),
      };
      const response = await handler(responseEvent);
      counts.origin++;
      send(res, Number(response.status), response.headers, answer.body);
    } catch (e) {
      // CloudFront answers 502/503 when the function or the origin fails.
      send(res, 502, {}, Buffer.from(`edge adapter: ${e?.message ?? e}\n`));
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const addr = server.address();
  return {
    url: `http://${host}:${addr.port}`,
    counts,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = Object.fromEntries(
    process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
  );
  if (!args.origin) {
    console.error('usage: adapter.mjs --origin http://127.0.0.1:8080 [--addr 127.0.0.1:8787] [--package DIR]');
    process.exit(2);
  }
  const here = path.dirname(fileURLToPath(import.meta.url));
  const pkg = path.resolve(args.package ?? path.join(here, 'dist/pkg'));
  const { handler } = await import(pathToFileURL(path.join(pkg, 'index.mjs')).href);
  const [host, port] = (args.addr ?? '127.0.0.1:8787').split(':');
  const a = await startAdapter({ handler, originUrl: args.origin, host, port: Number(port) });
  await handler.ready;
  console.log(`edge adapter on ${a.url} (package ${pkg}, origin ${args.origin}); model: ${handler.state.model?.model ?? `refused: ${handler.state.error?.message}`}`);
}
