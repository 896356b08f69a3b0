// Fetching one file: retries with backoff, Range resume of a broken transfer, size checks against the
// manifest, and sha256 (WebCrypto when present, else the wasm core's).

import { sleep } from './util.js';

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

/** Lower-case hex sha256 of `bytes`; `wasm` resolves to the initialised core, used without WebCrypto. */
export async function sha256(bytes, wasm) {
  if (globalThis.crypto?.subtle) return hex(await crypto.subtle.digest('SHA-256', bytes));
  return (await wasm).sha256Hex(bytes);
}

/**
 * Fetches `url` into a Uint8Array of `size` bytes, reporting each chunk through `onBytes(n)`. A broken
 * transfer is resumed with a Range request where the server answers 206, otherwise restarted.
 */
export async function download(url, size, { retries, fetchImpl, onBytes, signal }) {
  let buf = new Uint8Array(size);
  let got = 0;
  let lastError;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep(Math.min(200 * 2 ** (attempt - 1), 2000));
    try {
      const headers = got > 0 ? { Range: `bytes=${got}-` } : {};
      const res = await fetchImpl(url, { headers, signal, cache: 'no-store' });
      if (got > 0 && res.status === 200) {
        onBytes(-got); // the server ignored Range: start over
        got = 0;
      } else if (!res.ok) {
        throw new Error(`GET ${url}: HTTP ${res.status}`);
      }
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (got + value.length > size) throw new Error(`GET ${url}: more than the manifest's ${size} bytes`);
        buf.set(value, got);
        got += value.length;
        onBytes(value.length);
      }
      if (got !== size) throw new Error(`GET ${url}: ${got} of ${size} bytes`);
      return buf;
    } catch (e) {
      lastError = e;
      if (signal?.aborted) throw e;
    }
  }
  throw lastError;
}
