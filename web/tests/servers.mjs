// The demo's two servers as real processes on loopback (tests/support/process.mjs starts and stops them):
// model-server (the bundle and, with --static, the page) and `akidb serve` (the page's server fallback),
// from target/release. Both can be stopped and started again on the same ports, so the page keeps its
// origin (its IndexedDB and service worker).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { bundleDir, repo } from '../../tests/support/paths.mjs';
import { akidbBinary, freePort, spawnProcess, waitForHttp } from '../../tests/support/process.mjs';

const modelServer = path.join(process.env.AKIDB_BIN_DIR ?? path.join(repo, 'target/release'), 'model-server');

/** True when something accepts TCP connections on 127.0.0.1:port (a stopped server's port refuses). */
export function listening(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Starts `command args` and waits until `readyUrl` answers 200; killed if it never does. */
async function startReady(command, args, readyUrl) {
  const proc = spawnProcess(command, args);
  try {
    await waitForHttp(readyUrl, { proc, timeoutMs: 120_000 });
  } catch (e) {
    await proc.stop('SIGKILL');
    throw e;
  }
  return proc;
}

/**
 * Publishes the bundle scripts/demo.sh makes `latest` (int8-dynamic, the integer path) into a fresh data
 * directory and serves it with `site` as the static site; `akidb serve` embeds with the bundle it downloads
 * from that model-server.
 */
export async function startServers(site) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-demo-data-'));
  execFileSync(modelServer, ['publish', '--data', data, bundleDir('int8-dynamic'), '--alias', 'latest'], { stdio: 'pipe' });
  const msPort = await freePort();
  const embedPort = await freePort();
  const s = {
    msPort,
    embedPort,
    base: `http://127.0.0.1:${msPort}`,
    embedUrl: `http://127.0.0.1:${embedPort}/v1/embed`,
    manifestUrl: `http://127.0.0.1:${msPort}/v1/models/all-MiniLM-L6-v2/latest/manifest.json`,
    ms: null,
    embed: null,
    async start() {
      const msArgs = ['serve', '--data', data, '--addr', `127.0.0.1:${msPort}`, '--read-only', '--static', site];
      s.ms = await startReady(modelServer, msArgs, `${s.base}/readyz`);
      const embedArgs = ['serve', '--bundle-url', s.manifestUrl, '--addr', `127.0.0.1:${embedPort}`];
      s.embed = await startReady(akidbBinary(), embedArgs, `http://127.0.0.1:${embedPort}/readyz`);
    },
    async stop() {
      await Promise.all([s.embed?.stop(), s.ms?.stop()]);
    },
    async close() {
      await s.stop();
      fs.rmSync(data, { recursive: true, force: true });
    },
  };
  await s.start();
  return s;
}
