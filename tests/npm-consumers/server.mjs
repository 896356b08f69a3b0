// A tiny static file server on loopback, the kind a user puts in front of a built app: GET/HEAD of files
// under a few mounted folders, with the content types browsers insist on (text/javascript for modules,
// application/wasm for WebAssembly.instantiateStreaming). No caching headers, no range requests.
//
//   node tests/npm-consumers/server.mjs APP [port]   serves one app (vite-native, vite-wasm-plugin,
//                                                    plain-esm) and the int8 bundle at /models/ until
//                                                    Ctrl-C, to look at it in a browser
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const BUNDLE = process.env.AKIDB_BUNDLE ?? path.join(repo, 'models/all-MiniLM-L6-v2/int8');

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
};

/**
 * Serves `mounts` (URL prefix ending in "/" → folder; longest prefix wins) on 127.0.0.1 at `port`
 * (0: a free one). Resolves to { url, port, requests, close() }; `requests` lists "STATUS /path".
 */
export function serve(mounts, port = 0) {
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, path.resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);
  const requests = [];
  const server = http.createServer((req, res) => {
    const send = (status, body, headers = {}) => {
      requests.push(`${status} ${req.url}`);
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
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
    requests.push(`200 ${req.url}`);
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': stat.size,
    });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(file)
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
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

/** The two apps as this folder lays them out: what each serves at "/", the int8 bundle at /models/. */
export const APPS = {
  'vite-native': { '/': path.join(here, 'vite-app/dist/native'), '/models/': BUNDLE },
  'vite-wasm-plugin': { '/': path.join(here, 'vite-app/dist/wasm-plugin'), '/models/': BUNDLE },
  'plain-esm': { '/': path.join(here, 'plain-esm'), '/models/': BUNDLE },
};

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const name = process.argv[2];
  if (!APPS[name]) {
    console.error(`usage: node server.mjs ${Object.keys(APPS).join('|')} [port]`);
    process.exit(2);
  }
  const s = await serve(APPS[name], Number(process.argv[3] ?? 0));
  console.log(`${name}: ${s.url}/`);
}
