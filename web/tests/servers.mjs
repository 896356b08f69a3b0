// The demo's two servers as real processes on loopback: model-server (the bundle and, with --static, the
// page) and `akidb serve` (the page's server fallback), from target/release. Each can be stopped and
// started again on the same port, so the page keeps its origin (its IndexedDB and service worker).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = (name) => path.join(process.env.AKIDB_BIN_DIR ?? path.join(repo, 'target/release'), name);
export const BUNDLE = path.join(repo, 'models/all-MiniLM-L6-v2/int8');

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
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

class Proc {
  constructor(name, file, args) {
    this.name = name;
    this.out = '';
    this.child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d) => {
      this.out = (this.out + d).slice(-8000);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  async waitReady(url, timeoutMs = 120_000) {
    const until = Date.now() + timeoutMs;
    let exited = false;
    this.exited.then(() => (exited = true));
    while (Date.now() < until) {
      if (exited) throw new Error(`${this.name} exited before ${url} was ready:\n${this.out}`);
      try {
        const res = await fetch(url);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name}: ${url} not ready after ${timeoutMs} ms:\n${this.out}`);
  }

  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * Publishes the int8 bundle into a fresh data directory (alias `latest`) and serves it with `site` as the
 * static site; `akidb serve` embeds with the bundle it downloads from that model-server.
 */
export async function startServers(site) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-demo-data-'));
  execFileSync(bin('model-server'), ['publish', '--data', data, BUNDLE, '--alias', 'latest'], { stdio: 'pipe' });
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
      s.ms = new Proc('model-server', bin('model-server'), [
        'serve',
        '--data',
        data,
        '--addr',
        `127.0.0.1:${msPort}`,
        '--read-only',
        '--static',
        site,
      ]);
      await s.ms.waitReady(`${s.base}/readyz`);
      s.embed = new Proc('akidb serve', bin('akidb'), [
        'serve',
        '--bundle-url',
        s.manifestUrl,
        '--addr',
        `127.0.0.1:${embedPort}`,
      ]);
      await s.embed.waitReady(`http://127.0.0.1:${embedPort}/readyz`);
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
