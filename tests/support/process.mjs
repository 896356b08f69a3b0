// Child processes for the JS suites: a free loopback port, spawning a program with its output kept (for
// the error message when it dies or never gets ready), waiting for an HTTP readiness URL, and a real
// `akidb serve` over a bundle, stopped with SIGTERM.
//
//   const serve = await startAkidbServe();               // target/release/akidb serve --bundle models/…/int8
//   await fetch(`${serve.url}/v1/embed`, { method: 'POST', ... });
//   await serve.stop();
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { bundleDir, repo } from './paths.mjs';

/** A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it; the socket is closed again). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Spawns `command args` with stdout and stderr kept in `output()` (the last 64 KiB). `exited` resolves to
 * {code, signal} when it ends; `stop(signal)` sends the signal (SIGTERM) and waits, killing it with
 * SIGKILL after `killAfterMs`.
 */
export function spawnProcess(command, args, { env = {}, cwd = repo, killAfterMs = 10_000 } = {}) {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-65536);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => {
    child.on('error', (e) => {
      keep(`spawn ${command}: ${e.message}\n`);
      resolve({ code: null, signal: null, error: e });
    });
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  let done = null;
  exited.then((r) => (done = r));
  const stop = async (signal = 'SIGTERM') => {
    if (done) return done;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    const r = await exited;
    clearTimeout(timer);
    return r;
  };
  return {
    child,
    exited,
    stop,
    output: () => output,
    /** The exit status once it has ended, else null. */
    status: () => done,
    describe: () => `${path.basename(command)} ${args.join(' ')}`,
  };
}

/**
 * Polls `url` until it answers `status` (200), the process `proc` (from spawnProcess) exits, or
 * `timeoutMs` passes; the error names the URL and carries the process's output.
 */
export async function waitForHttp(url, { proc, status = 200, timeoutMs = 60_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    const ended = proc?.status();
    if (ended) {
      throw new Error(`${proc.describe()} exited (${JSON.stringify(ended)}) before ${url} answered ${status}:\n${proc.output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === status) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e.cause?.code ?? e.message;
    }
    if (Date.now() > deadline) {
      const out = proc ? `\n${proc.describe()} said:\n${proc.output()}` : '';
      throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (last: ${last})${out}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The release `akidb` binary (target/release/akidb, or $AKIDB_BIN); throws with the command that builds it. */
export function akidbBinary() {
  const bin = process.env.AKIDB_BIN ?? path.join(repo, 'target/release/akidb');
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: cargo build --release -p akidb-native`);
  return bin;
}

/**
 * A real `akidb serve --bundle DIR` on a free loopback port, ready (GET /readyz answers 200) when this
 * resolves. `url` is its base URL; `stop()` sends SIGTERM and waits for it to exit.
 */
export async function startAkidbServe({ bundle = bundleDir('int8'), args = [], timeoutMs = 120_000 } = {}) {
  const port = await freePort();
  const proc = spawnProcess(akidbBinary(), ['serve', '--bundle', bundle, '--addr', `127.0.0.1:${port}`, ...args]);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/readyz`, { proc, timeoutMs });
  } catch (e) {
    await proc.stop('SIGKILL');
    throw e;
  }
  return { url, port, proc, output: proc.output, stop: () => proc.stop() };
}

/**
 * The sum over all series of the Prometheus counter or histogram-count `name` whose labels include every
 * pair of `labels` (other labels, such as a `method` added later, are summed over), from `url`/metrics.
 */
export async function metricSum(url, name, labels = {}) {
  const res = await fetch(`${url}/metrics`);
  if (!res.ok) throw new Error(`GET ${url}/metrics: HTTP ${res.status}`);
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === String(v))) sum += Number(m[3]);
  }
  return sum;
}
