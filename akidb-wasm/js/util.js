// Small helpers the loader's modules share: warnings, a clock, absolute URLs.

/** Reports a warning through `options.onWarning` (default console.warn), prefixed with the package name. */
export const warn = (options, msg) => (options.onWarning ?? console.warn)(`@akidb/wasm: ${msg}`);

export const now = () => (globalThis.performance ? performance.now() : Date.now());

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `url` made absolute against the page (in a browser or worker) so that it means the same everywhere. */
export function absoluteUrl(url) {
  const base = typeof location === 'object' ? location.href : undefined;
  return new URL(url, base).href;
}

/**
 * `e` as thrown by the wasm core, with what it was doing and how big its linear memory was when `e` is a
 * trap (`WebAssembly.RuntimeError`): a panic, whose message the core's panic hook has put on the console,
 * or an allocation that failed (memory.grow refused near the 4 GiB limit or by the host), which says
 * nothing else anywhere. Other errors (the core's own, with their messages) are returned as they are.
 */
export function explainTrap(e, doing, memory) {
  if (!(e instanceof WebAssembly.RuntimeError)) return e;
  const mib = Math.round(memory.buffer.byteLength / 2 ** 20);
  return new Error(
    `@akidb/wasm: the wasm core trapped ${doing} (${e.message}) with ${mib} MiB of linear memory: a panic (its message is on the console) or a failed allocation`,
    { cause: e },
  );
}
