// A static file server on loopback for the JS suites: GET/HEAD of files under mounted folders with the
// content types browsers insist on (text/javascript for modules, application/wasm for
// WebAssembly.instantiateStreaming), single Range requests (206/416), a log of every request, a hook for
// a suite's own routes, and one fault: cut the next transfer of a file half-way (to exercise resume).
//
//   const s = await serve({ mounts: { '/': appDir, '/models/': bundleDir } });
//   await page.goto(`${s.url}/`);  s.requests  // [{ method, url, path, range, status }]
//   await s.close();
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.onnx': 'application/octet-stream',
};

/**
 * Serves `mounts` (URL prefix ending in "/" → folder; the longest prefix wins) on 127.0.0.1 at `port`
 * (0: a free one). `headers` go on every answer: an object, or a function of the request's URL (a `URL`,
 * or undefined when the request's URL doesn't parse) that returns one. `route(req, res, url)` runs first: it may answer
 * (return true) or rewrite `url.pathname` for the static lookup. Resolves to { url, port, requests,
 * reset(), cutNext(suffix), close() }.
 */
export function serve({ mounts, port = 0, headers = {}, route } = {}) {
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, path.resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);
  const requests = [];
  let cut = null;
  const headersFor = (url) => (typeof headers === 'function' ? headers(url) : headers);
  const server = http.createServer(async (req, res) => {
    const record = { method: req.method, url: req.url, path: null, range: req.headers.range ?? null, status: null };
    requests.push(record);
    let url;
    const send = (status, body, extra = {}) => {
      record.status = status;
      res.writeHead(status, { ...headersFor(url), 'content-type': 'text/plain; charset=utf-8', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    try {
      url = new URL(req.url, 'http://x');
      record.path = url.pathname;
      if (route && (await route(req, res, url))) {
        record.status = res.statusCode;
        return;
      }
    } catch (e) {
      return send(500, String(e?.stack ?? e));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    let pathname;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      return send(400, 'bad path\n');
    }
    const mount = table.find(([prefix]) => pathname.startsWith(prefix));
    if (!mount || pathname.includes('\0')) return send(404, 'not found\n');
    const [prefix, dir] = mount;
    let file = path.resolve(dir, `./${pathname.slice(prefix.length)}`);
    if (file !== dir && !file.startsWith(dir + path.sep)) return send(404, 'not found\n');
    let stat;
    try {
      stat = fs.statSync(file);
      if (stat.isDirectory()) {
        file = path.join(file, 'index.html');
        stat = fs.statSync(file);
      }
    } catch {
      return send(404, 'not found\n');
    }
    if (!stat.isFile()) return send(404, 'not found\n');
    const common = {
      ...headersFor(url),
      'content-type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'accept-ranges': 'bytes',
    };
    let start = 0;
    let end = stat.size - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      if (start > end) return send(416, '', { 'content-range': `bytes */${stat.size}` });
      record.status = 206;
      res.writeHead(206, { ...common, 'content-range': `bytes ${start}-${end}/${stat.size}`, 'content-length': end - start + 1 });
    } else {
      record.status = 200;
      res.writeHead(200, { ...common, 'content-length': stat.size });
    }
    if (req.method === 'HEAD') return res.end();
    if (cut && !range && url.pathname.endsWith(cut)) {
      // Send the first half, then drop the connection.
      cut = null;
      const half = Math.floor(stat.size / 2);
      const s = fs.createReadStream(file, { start: 0, end: half - 1 });
      s.pipe(res, { end: false });
      s.on('end', () => setTimeout(() => res.destroy(), 50));
      return;
    }
    fs.createReadStream(file, { start, end })
      .on('error', () => res.destroy())
      .pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address();
      resolve({
        url: `http://127.0.0.1:${bound}`,
        port: bound,
        requests,
        /** Forgets the requests logged so far. */
        reset: () => {
          requests.length = 0;
        },
        /** The next full (non-Range) GET of a path ending in `suffix` stops half-way. */
        cutNext: (suffix) => {
          cut = suffix;
        },
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
