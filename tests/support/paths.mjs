// Where things are, for every JS test suite: the repository root and the default locations of the model
// bundles and the golden data (each overridable by the environment variable the suites already honour).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A bundle directory of all-MiniLM-L6-v2 (`int8` or `fp32`). */
export const bundleDir = (variant = 'int8') => path.join(repo, 'models/all-MiniLM-L6-v2', variant);

/** The golden data: sentence-transformers' vectors and token ids (../shared/golden beside the clone). */
export const GOLDEN_DIR = process.env.AKIDB_GOLDEN ?? path.join(repo, '../shared/golden');
