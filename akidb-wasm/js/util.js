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

/** Whether `e` is a wasm trap: a `WebAssembly.RuntimeError`, of this realm or another (its name says it). */
export const isTrap = (e) => e instanceof WebAssembly.RuntimeError || e?.name === 'RuntimeError';

/**
 * `e` as thrown by the wasm core, with what it was doing and why when `e` is a trap
 * (`WebAssembly.RuntimeError`): an allocation that failed (the engine refused to grow the linear memory,
 * near the 4 GiB limit or by its own limits), or a panic, whose message the core's panic hook has also put
 * on the console. `core` is the glue the trap came from: its `memory`, and its `failedAllocationBytes()` and
 * `lastPanicMessage()` (the core's records of the two; either may be missing, or throw in a broken
 * instance, and then the message says what it can; when both are read and empty, it says that neither
 * happened: WebKitGTK's loader traps of 2026-12-04 were such). Other errors (the core's own, with their
 * messages) are returned as they are.
 */
export function explainTrap(e, doing, core) {
  if (!isTrap(e)) return e;
  const mib = (bytes) => `${Math.round(bytes / 2 ** 20)} MiB`;
  // A record read: `known` is false when the core has none or reading it threw (a broken instance).
  const read = (record) => {
    if (typeof record !== 'function') return { known: false };
    try {
      return { known: true, value: record() };
    } catch {
      return { known: false };
    }
  };
  const memory = mib(core.memory.buffer.byteLength);
  // The panic first: a panic traps at once, so a recorded one is this trap's cause, while a failed
  // allocation may have been an earlier one that its caller handled (a `try_reserve`).
  const panic = read(core.lastPanicMessage);
  const failed = panic.value ? { known: true } : read(core.failedAllocationBytes);
  const trapped = `trapped ${doing} (${e.message}) with ${memory} of linear memory`;
  const why = panic.value
    ? `panicked ${doing} (${memory} of linear memory): ${panic.value}`
    : failed.value
      ? `ran out of memory ${doing}: an allocation of ${mib(failed.value)} failed with ${memory} of linear memory (the engine refused to grow it)`
      : panic.known && failed.known
        ? `${trapped}: neither a panic nor a failed allocation was recorded, so the engine faulted or the module's memory was corrupted`
        : `${trapped}: a panic (its message is on the console) or a failed allocation`;
  return new Error(`@akidb/wasm: the wasm core ${why}`, { cause: e });
}
