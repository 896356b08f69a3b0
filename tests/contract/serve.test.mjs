// The contract suite against `akidb serve` alone: `node --test tests/contract/serve.test.mjs` with
// target/release/akidb (or $AKIDB_BIN_DIR/akidb) and the int8 bundle (or $AKIDB_BUNDLE) in place.
import { before, after } from 'node:test';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { contractSuite } from './suite.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const akidb = path.join(process.env.AKIDB_BIN_DIR ?? path.join(repo, 'target/release'), 'akidb');
const bundle = process.env.AKIDB_BUNDLE ?? path.join(repo, 'models/all-MiniLM-L6-v2/int8');

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

let child;
let url;
before(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  child = spawn(akidb, ['serve', '--bundle', bundle, '--addr', `127.0.0.1:${port}`], { stdio: 'inherit' });
  const until = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`akidb serve exited with ${child.exitCode}`);
    if (Date.now() > until) throw new Error('akidb serve not ready in 120 s');
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
});
after(() => child?.kill('SIGTERM'));

contractSuite('akidb serve', () => ({ url }));
