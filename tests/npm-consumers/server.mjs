// The two consumer apps behind a static file server on loopback (tests/support/static-server.mjs), the
// kind a user puts in front of a built app: GET/HEAD of files under a few mounted folders, with the
// content types browsers insist on. No caching headers.
//
//   node tests/npm-consumers/server.mjs APP [port]   serves one app (vite-native, vite-wasm-plugin,
//                                                    plain-esm) and the int8 bundle at /models/ until
//                                                    Ctrl-C, to look at it in a browser
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleDir, repo } from '../support/paths.mjs';
import { serve as serveStatic } from '../support/static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export { repo };
export const BUNDLE = process.env.AKIDB_BUNDLE ?? bundleDir('int8');

/**
 * Serves `mounts` (URL prefix ending in "/" → folder; longest prefix wins) on 127.0.0.1 at `port`
 * (0: a free one), with tests/support/static-server.mjs. Resolves to { url, port, requests, close() };
 * `requests` lists { method, url, path, range, status }.
 */
export const serve = (mounts, port = 0) => serveStatic({ mounts, port });

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
