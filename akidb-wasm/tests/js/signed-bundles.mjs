// Signed copies of the int8 bundle for the loader's signature tests, made at test time in a temporary folder
// (no key is ever committed): three key pairs (a, b: a rotation; c: never trusted) and one folder per case,
// each holding the bundle's manifest.json and links to its files:
//   a/, b/, c/      manifest.json.sig by that key
//   unsigned/       no manifest.json.sig
//   changed/        manifest.json with one byte changed, a's signature of the original beside it
// Keys and signatures come from Node's ed25519 in the documented format (akidb_core::signing's module docs):
// key id = the first 16 hex of sha256(raw 32-byte public key); `.sig` = {"algorithm":"ed25519","key_id",
// "signature": base64 of 64 bytes}.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleDir } from '../../../tests/support/paths.mjs';

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
 * Makes the folders above under a new temporary directory; resolves to { dir, keys: {a, b, c}, manifest
 * (the original bytes), changedAt (the byte changed), remove() }.
 */
export function makeSignedBundles(source = bundleDir('int8')) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-signed-'));
  const manifest = fs.readFileSync(path.join(source, 'manifest.json'));
  const files = JSON.parse(manifest).files.map((f) => f.path);
  const keys = { a: makeKey(), b: makeKey(), c: makeKey() };
  const folder = (name, manifestBytes, sig) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'manifest.json'), manifestBytes);
    for (const f of files) fs.symlinkSync(path.join(source, f), path.join(d, f));
    if (sig) fs.writeFileSync(path.join(d, 'manifest.json.sig'), sig);
  };
  for (const [name, key] of Object.entries(keys)) folder(name, manifest, key.sign(manifest));
  folder('unsigned', manifest, null);
  // One byte of the version string: the manifest still parses and still lists the same files, so only the
  // signature can tell.
  const changed = Buffer.from(manifest);
  const changedAt = manifest.indexOf('"version"') + '"version": "'.length;
  changed[changedAt] = changed[changedAt] === 0x39 ? 0x38 : changed[changedAt] + 1;
  folder('changed', changed, keys.a.sign(manifest));
  return { dir, keys, manifest, changedAt, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
