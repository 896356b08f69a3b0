// The Lambda@Edge handler: answers `POST /v1/embed` and `POST /v1/embeddings` at CloudFront's edge with the
// @akidb/wasm core, exactly as `akidb serve` would, and otherwise returns the request unchanged so that
// CloudFront forwards it to the regional origin (`akidb serve`).
//
// Associated with the origin-request event (include body). The same function on the origin-response event
// marks the origin's answers `x-akidb-served-by: origin`; CloudFront skips origin-response for responses an
// origin-request function generated, so edge answers keep `edge`.
import { parseEmbedRequest, ROUTES } from './contract.mjs';
import { loadBundle } from './model.mjs';

export const SERVED_BY = 'x-akidb-served-by';

const STATUS_TEXT = {
  200: 'OK',
  400: 'Bad Request',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
};

// The CORS headers akidb serve's permissive CorsLayer puts on every answer: browsers call either tier from
// pages on other origins, and read x-akidb-served-by.
const CORS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': '*',
  vary: 'origin, access-control-request-method, access-control-request-headers',
};

const cfHeader = (key, value) => [{ key, value }];
const titleCase = (name) => name.replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());

/** A CloudFront generated response; `body` is a JSON-serialisable value. */
function respond(status, body) {
  const headers = { 'content-type': cfHeader('Content-Type', 'application/json') };
  // As akidb serve's error answers: never cached.
  if (status >= 400) headers['cache-control'] = cfHeader('Cache-Control', 'no-store');
  for (const [name, value] of Object.entries(CORS)) headers[name] = cfHeader(titleCase(name), value);
  headers[SERVED_BY] = cfHeader('X-Akidb-Served-By', 'edge');
  return {
    status: String(status),
    statusDescription: STATUS_TEXT[status],
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    bodyEncoding: 'text',
  };
}

const errorBody = (type, message) => ({ error: { message, type } });

/** Lower-case header name -> first value, from CloudFront's `{name: [{key, value}]}`. */
function flatHeaders(headers = {}) {
  const out = {};
  for (const [name, values] of Object.entries(headers)) {
    if (Array.isArray(values) && values.length > 0) out[name.toLowerCase()] = values[0].value;
  }
  return out;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * A handler for `config` (see config.mjs) whose model is the bundle in `bundleDir`, loading from now on,
 * its manifest's signature checked against the keys in `trustedKeysFile` (none: not checked).
 * `load(dir, {warmup, trustedKeysFile})` is the loader (model.mjs's by default). The function has `.ready`
 * (a promise that settles when loading ends, never rejects) and `.state` (`{ model, error, timings }`).
 */
export function createHandler(config, { bundleDir, trustedKeysFile = null, load = loadBundle } = {}) {
  const log = config.log ? (fields) => console.log(JSON.stringify({ source: 'akidb-edge', ...fields })) : () => {};
  const state = { model: null, error: null, timings: null };
  const ready = (async () => {
    try {
      const m = await load(bundleDir, { warmup: config.warmup, trustedKeysFile });
      state.model = m;
      state.timings = m.timings;
      // Once per container: which key signed the bundle, or that nothing checked it.
      const signature = m.signedBy ? { signed_by: m.signedBy } : { signature: 'not checked (no trusted keys configured)' };
      log({ event: 'model-loaded', model: m.model, ...signature, timings: m.timings });
    } catch (e) {
      // Every invocation of this container falls back from now on; the origin keeps serving.
      state.error = e;
      log({ event: 'model-refused', error: String(e?.message ?? e) });
    }
  })();

  const forward = (request, reason, detail) => {
    if (reason !== 'not-an-embed-route') log({ event: 'fallback', reason, uri: request.uri, ...(detail && { detail }) });
    return request;
  };

  async function onOriginRequest(request) {
    const t0 = performance.now();
    if (request.method !== 'POST' || !ROUTES.has(request.uri)) return forward(request, 'not-an-embed-route');
    // No body means the behaviour doesn't include it (include-body off): only the origin can answer.
    if (!request.body || typeof request.body.data !== 'string') return forward(request, 'no-body');
    if (request.body.inputTruncated) return forward(request, 'body-truncated');
    const body = Buffer.from(request.body.data, request.body.encoding === 'base64' ? 'base64' : 'utf8');
    const limits = { maxTexts: config.maxTexts, maxChars: config.maxChars, dim: state.model?.dim };
    const parsed = parseEmbedRequest(request.uri, flatHeaders(request.headers), body, limits);
    if (parsed.kind === 'error') return respond(parsed.status, errorBody(parsed.type, parsed.message));
    if (parsed.kind === 'origin') return forward(request, parsed.reason);
    const { texts } = parsed;
    if (texts.length > config.edgeMaxTexts) return forward(request, 'batch-over-edge-limit');

    if (!state.model && !state.error) {
      await Promise.race([ready, sleep(config.coldStartBudgetMs - (performance.now() - t0))]);
    }
    const m = state.model;
    if (!m) return forward(request, state.error ? 'model-refused' : 'cold-start-budget');

    const vectors = m.embedder.embed(texts);
    const rows = texts.map((_, i) => vectors.subarray(i * m.dim, (i + 1) * m.dim));
    let out;
    if (request.uri === '/v1/embed') {
      out = JSON.stringify({ model: m.model, dim: m.dim, embeddings: rows.map((r) => Array.from(r)) });
    } else {
      const tokens = m.embedder.tokenize(texts).reduce((n, ids) => n + ids.length, 0);
      const embedding =
        parsed.encodingFormat === 'base64'
          ? // OpenAI's base64: the little-endian f32 bytes (Float32Array is little-endian on x86-64 and arm64).
            (r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength).toString('base64')
          : (r) => Array.from(r);
      out = JSON.stringify({
        object: 'list',
        data: rows.map((r, index) => ({ object: 'embedding', embedding: embedding(r), index })),
        model: m.model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      });
    }
    if (Buffer.byteLength(out) > config.maxResponseBytes) return forward(request, 'response-over-1mb');
    return respond(200, out);
  }

  async function handler(event) {
    const cf = event?.Records?.[0]?.cf;
    if (cf?.config?.eventType === 'origin-response') {
      const response = cf.response;
      response.headers ??= {};
      response.headers[SERVED_BY] ??= cfHeader('X-Akidb-Served-By', 'origin');
      return response;
    }
    const request = cf?.request;
    if (!request) throw new Error('not a CloudFront origin-request or origin-response event');
    try {
      return await onOriginRequest(request);
    } catch (e) {
      // Anything unexpected inside: the origin answers instead.
      return forward(request, 'internal-error', String(e?.message ?? e));
    }
  }
  handler.ready = ready;
  handler.state = state;
  return handler;
}
