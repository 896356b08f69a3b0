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
