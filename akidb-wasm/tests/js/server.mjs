// A tiny HTTP server for the browser tests and the benchmark: static files with Range support (the
// package, the model bundles, the test pages, onnxruntime-web), request counting, a one-shot "cut this
// transfer half-way" switch (to exercise Range resume), and the fallback contract
// POST /embed {"texts": [...]} → {"embeddings": [[...]]}, answered by the nodejs build of the wasm core.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../../..');

const MIME = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.html': 'text/html',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
};

export async function startServer({ port = 0 } = {}) {
  const roots = {
    '/pkg/': path.join(repo, 'akidb-wasm/pkg'),
    '/models/': path.join(repo, 'models/all-MiniLM-L6-v2'),
    '/test/': here,
    '/ort/': path.join(here, 'node_modules/onnxruntime-web/dist'),
  };
  const int8 = JSON.parse(fs.readFileSync(path.join(roots['/models/'], 'int8/manifest.json')));
  const blobs = new Map(int8.files.map((f) => [f.sha256, f.path]));
  const state = { requests: [], cutNext: null, embedder: null };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    state.requests.push({ method: req.method, path: url.pathname, range: req.headers.range ?? null });
    res.setHeader('Access-Control-Allow-Origin', '*');
    try {
      if (req.method === 'POST' && url.pathname === '/embed') return await embed(req, res, state);
      if (req.method === 'POST' && url.pathname === '/control/cut') {
        state.cutNext = url.searchParams.get('path');
        return res.end('ok');
      }
      // The model server's scheme, over the int8 bundle.
      const mm = /^\/v1\/models\/([^/]+)\/([^/]+)\/manifest\.json$/.exec(url.pathname);
      if (mm) url.pathname = mm[2].endsWith('int8') ? '/models/int8/manifest.json' : '/nope';
      const blob = /^\/v1\/blobs\/sha256\/([0-9a-f]{64})$/.exec(url.pathname);
      if (blob) url.pathname = `/models/int8/${blobs.get(blob[1]) ?? 'nope'}`;
      const root = Object.keys(roots).find((p) => url.pathname.startsWith(p));
      if (!root) return notFound(res);
      const file = path.join(roots[root], decodeURIComponent(url.pathname.slice(root.length)));
      if (!file.startsWith(roots[root])) return notFound(res);
      let stat;
      try {
        stat = fs.statSync(file);
      } catch {
        return notFound(res);
      }
      if (!stat.isFile()) return notFound(res);
      res.setHeader('Content-Type', MIME[path.extname(file)] ?? 'application/octet-stream');
      res.setHeader('Accept-Ranges', 'bytes');
      res.setHeader('Cache-Control', 'no-store');
      let start = 0;
      let end = stat.size - 1;
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (m) {
        start = Number(m[1]);
        if (m[2]) end = Math.min(end, Number(m[2]));
        if (start > end) {
          res.writeHead(416, { 'Content-Range': `bytes */${stat.size}` });
          return res.end();
        }
        res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${stat.size}`, 'Content-Length': end - start + 1 });
      } else {
        res.writeHead(200, { 'Content-Length': stat.size });
      }
      if (req.method === 'HEAD') return res.end();
      if (state.cutNext && url.pathname.endsWith(state.cutNext) && !m) {
        // Send the first half, then drop the connection.
        state.cutNext = null;
        const half = Math.floor(stat.size / 2);
        const s = fs.createReadStream(file, { start: 0, end: half - 1 });
        s.pipe(res, { end: false });
        s.on('end', () => setTimeout(() => res.destroy(), 50));
        return;
      }
      fs.createReadStream(file, { start, end }).pipe(res);
    } catch (e) {
      res.writeHead(500);
      res.end(String(e?.stack ?? e));
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    state,
    requests: () => state.requests,
    reset: () => (state.requests.length = 0),
    close: () => new Promise((r) => server.close(r)),
  };
}

function notFound(res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
}

async function embed(req, res, state) {
  let body = '';
  for await (const chunk of req) body += chunk;
  const { texts } = JSON.parse(body);
  if (!state.embedder) {
    const { Embedder } = await import(path.join(repo, 'akidb-wasm/pkg/node.mjs'));
    const dir = path.join(repo, 'models/all-MiniLM-L6-v2/int8');
    const manifest = fs.readFileSync(path.join(dir, 'manifest.json'));
    const files = { 'manifest.json': manifest };
    for (const f of JSON.parse(manifest).files) files[f.path] = fs.readFileSync(path.join(dir, f.path));
    state.embedder = Embedder.fromBundle(files);
  }
  const flat = state.embedder.embed(texts);
  const dim = state.embedder.dim;
  const embeddings = texts.map((_, i) => Array.from(flat.subarray(i * dim, (i + 1) * dim)));
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ embeddings }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await startServer({ port: Number(process.env.PORT ?? 8787) });
  console.log(`serving ${repo} at ${s.base}`);
}
