// The HTTP server of the browser tests and the benchmark, on tests/support/static-server.mjs: the package,
// the model bundles, the test pages and onnxruntime-web as static files (Range, a request log, a one-shot
// "cut this transfer half-way" switch: POST /control/cut?path=SUFFIX), plus the model server's URL scheme
// over the int8 bundle, at the root and under a path prefix (/edge): GET {prefix}/v1/models/{name}/{version}
// /manifest.json (a version ending in "int8") and GET {prefix}/v1/blobs/sha256/{hex}. `mounts` adds folders
// (the signed bundles the suite makes). Every answer is cross-origin isolated (COOP same-origin, COEP
// require-corp, as model-server sends for the demo: the threads build runs) except with `?not-isolated` in
// the URL (a page loaded that way is not isolated). POST /control/down?path=PREFIX makes every path under PREFIX answer
// 503 until POST /control/up (a server gone away, for the offline cases).
//
//   node akidb-wasm/tests/js/server.mjs     serves at PORT (default 8787) until Ctrl-C
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../../../tests/support/static-server.mjs';
import { bundleDir, repo } from '../../../tests/support/paths.mjs';

export { repo };

const here = path.dirname(fileURLToPath(import.meta.url));

const ISOLATED = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/** The path prefixes under which the model server's scheme is served. */
export const MODEL_SERVER_PREFIXES = ['', '/edge'];

export async function startServer({ port = 0, mounts = {} } = {}) {
  const int8 = JSON.parse(fs.readFileSync(path.join(bundleDir('int8'), 'manifest.json')));
  const blobs = new Map(int8.files.map((f) => [f.sha256, f.path]));
  const prefixes = MODEL_SERVER_PREFIXES.map((p) => p.replace(/[/]/g, '\\/')).join('|');
  const manifestRe = new RegExp(`^(?:${prefixes})\\/v1\\/models\\/[^/]+\\/([^/]+)\\/manifest\\.json$`);
  let down = null;
  const blobRe = new RegExp(`^(?:${prefixes})\\/v1\\/blobs\\/sha256\\/([0-9a-f]{64})$`);
  const server = await serve({
    port,
    mounts: {
      '/pkg/': path.join(repo, 'akidb-wasm/pkg'),
      '/models/': path.join(repo, 'models/all-MiniLM-L6-v2'),
      '/test/': here,
      '/ort/': path.join(here, 'node_modules/onnxruntime-web/dist'),
      ...mounts,
    },
    headers: (url) => ({
      'access-control-allow-origin': '*',
      'cache-control': 'no-store',
      ...(url?.searchParams.has('not-isolated') ? {} : ISOLATED),
    }),
    route: (req, res, url) => {
      if (req.method === 'POST' && url.pathname === '/control/cut') {
        server.cutNext(url.searchParams.get('path'));
        res.end('ok');
        return true;
      }
      if (req.method === 'POST' && (url.pathname === '/control/down' || url.pathname === '/control/up')) {
        down = url.pathname === '/control/down' ? url.searchParams.get('path') : null;
        res.end('ok');
        return true;
      }
      if (down && url.pathname.startsWith(down)) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('down for the test\n');
        return true;
      }
      const manifest = manifestRe.exec(url.pathname);
      if (manifest) url.pathname = manifest[1].endsWith('int8') ? '/models/int8/manifest.json' : '/nope';
      const blob = blobRe.exec(url.pathname);
      if (blob) url.pathname = `/models/int8/${blobs.get(blob[1]) ?? 'nope'}`;
      return false;
    },
  });
  return {
    base: server.url,
    requests: () => server.requests,
    reset: server.reset,
    close: server.close,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await startServer({ port: Number(process.env.PORT ?? 8787) });
  console.log(`serving ${repo} at ${s.base}`);
}
