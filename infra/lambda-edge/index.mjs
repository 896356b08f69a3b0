// Lambda@Edge entry point (handler `index.handler`, nodejs22.x, origin-request with include body, and
// origin-response). Reads the package's config.json (written by build.sh: Lambda@Edge has no environment
// variables) and starts loading the packaged model at init; see src/handler.mjs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readConfig } from './src/config.mjs';
import { createHandler } from './src/handler.mjs';

const root = path.dirname(fileURLToPath(import.meta.url));
const config = readConfig(path.join(root, 'config.json'));

export const handler = createHandler(config, {
  bundleDir: path.resolve(root, config.bundleDir),
  trustedKeysFile: config.trustedKeysFile ? path.resolve(root, config.trustedKeysFile) : null,
});
