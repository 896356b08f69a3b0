// The handler's configuration. Lambda@Edge has no environment variables, so the build writes config.json
// into the package (build.sh --cold-start-budget-ms etc.); the handler reads it once at init.
import fs from 'node:fs';

export const DEFAULTS = Object.freeze({
  // The packaged bundle's directory, relative to the package root.
  bundleDir: 'model',
  // The trusted signing keys ({"keys": [{key_id, public_key}, ...]}, the format of `akidb --trusted-keys`),
  // relative to the package root; build.sh --trusted-keys copies the file in as trusted-keys.json. Empty:
  // the bundle's signature is not checked (the load log says so).
  trustedKeysFile: '',
  // How long an invocation waits for a model that is still loading before it lets CloudFront forward the
  // request to the origin. 0 = never wait.
  coldStartBudgetMs: 3000,
  // The largest batch the edge embeds itself; larger ones go to the origin (2 vCPU-seconds of wasm at most,
  // and well inside the 1 MB generated-response limit).
  edgeMaxTexts: 32,
  // akidb serve's own limits (--max-texts, --max-chars), so the edge refuses what the origin would.
  maxTexts: 256,
  maxChars: 20000,
  // CloudFront refuses a generated response over 1 MB (headers included); bigger answers go to the origin.
  maxResponseBytes: 1_000_000,
  // Embed one sentence at load so the first request doesn't compile the single-sentence plan.
  warmup: true,
  // One JSON line per fallback and per load on stdout (CloudWatch Logs).
  log: true,
});

const INTEGER_KEYS = ['coldStartBudgetMs', 'edgeMaxTexts', 'maxTexts', 'maxChars', 'maxResponseBytes'];

/** DEFAULTS overridden by `values`; throws on an unknown key or a value of the wrong kind. */
export function makeConfig(values = {}, where = 'config') {
  const config = { ...DEFAULTS };
  for (const [key, value] of Object.entries(values)) {
    if (!(key in DEFAULTS)) throw new Error(`${where}: unknown key ${JSON.stringify(key)}`);
    if (INTEGER_KEYS.includes(key) && !(Number.isSafeInteger(value) && value >= 0)) {
      throw new Error(`${where}: ${key} must be a non-negative integer, not ${JSON.stringify(value)}`);
    }
    if (typeof DEFAULTS[key] !== typeof value) {
      throw new Error(`${where}: ${key} must be a ${typeof DEFAULTS[key]}, not ${JSON.stringify(value)}`);
    }
    config[key] = value;
  }
  if (config.edgeMaxTexts < 1) throw new Error(`${where}: edgeMaxTexts must be at least 1`);
  return Object.freeze(config);
}

/** The config in the JSON file `file`. */
export function readConfig(file) {
  let values;
  try {
    values = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${e.message}`);
  }
  return makeConfig(values, file);
}
