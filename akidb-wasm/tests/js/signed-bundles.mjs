// Signed copies of the int8 bundle for the loader's signature tests, made at test time in a temporary folder
// (no key is ever committed) with the real CLI: `akidb keygen` makes three key pairs (a, b: a rotation; c:
// never trusted) and `akidb bundle sign` signs one folder per case, each holding the bundle's manifest.json
// and links to its files:
//   a/, b/, c/      manifest.json.sig by that key
//   unsigned/       no manifest.json.sig
//   changed/        manifest.json with one byte changed, a's signature of the original beside it
// makeKey() is a key made by Node's own ed25519 in the documented format (key id = the first 16 hex of
// sha256(raw 32-byte public key); `.sig` = {"algorithm":"ed25519","key_id","signature": base64 of 64 bytes}),
// for checking the core against an implementation other than its own.
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleDir } from '../../../tests/support/paths.mjs';
import { akidbBinary } from '../../../tests/support/process.mjs';

/** Runs `akidb ARGS`; the error carries its stderr (an akidb built before `keygen` existed says so). */
function akidb(args) {
  try {
    return execFileSync(akidbBinary(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`akidb ${args.join(' ')} failed (${e.status}): ${e.stderr}\n(target/release/akidb predates keygen? cargo build --release)`);
  }
}

/** A new ed25519 key: { key_id, public_key (base64), sign(bytes) → the .sig file's bytes }. */
export function makeKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
  const keyId = crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16);
  return {
    key_id: keyId,
    public_key: raw.toString('base64'),
    sign: (bytes) =>
      Buffer.from(
        `${JSON.stringify({ algorithm: 'ed25519', key_id: keyId, signature: crypto.sign(null, bytes, privateKey).toString('base64') })}\n`,
      ),
  };
}

/** The trusted-key entry of a key ({key_id, public_key}, what `trustedKeys` takes). */
export const trusted = (key) => ({ key_id: key.key_id, public_key: key.public_key });

/**
 * Makes the folders above under a new temporary directory; returns { dir, keys: {a, b, c} (each the .pub
 * file's JSON), remove() }.
 */
export function makeSignedBundles(source = bundleDir('int8')) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-signed-'));
  const keyDir = path.join(dir, 'keys');
  const manifest = fs.readFileSync(path.join(source, 'manifest.json'));
  const files = JSON.parse(manifest).files.map((f) => f.path);
  const folder = (name, manifestBytes) => {
    const d = path.join(dir, 'bundles', name);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'manifest.json'), manifestBytes);
    for (const f of files) fs.symlinkSync(path.join(source, f), path.join(d, f));
    return d;
  };
  const keys = {};
  for (const name of ['a', 'b', 'c']) {
    akidb(['keygen', '--out', keyDir, '--name', name]);
    keys[name] = JSON.parse(fs.readFileSync(path.join(keyDir, `${name}.pub`), 'utf8'));
    akidb(['bundle', 'sign', '--key', path.join(keyDir, `${name}.key`), folder(name, manifest)]);
  }
  folder('unsigned', manifest);
  // One byte of the version string: the manifest still parses and still lists the same files, so only the
  // signature can tell.
  const changed = Buffer.from(manifest);
  const at = manifest.indexOf('"version"') + '"version": "'.length;
  changed[at] = changed[at] === 0x39 ? 0x38 : changed[at] + 1;
  fs.copyFileSync(path.join(dir, 'bundles/a/manifest.json.sig'), path.join(folder('changed', changed), 'manifest.json.sig'));
  return { dir: path.join(dir, 'bundles'), keys, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
