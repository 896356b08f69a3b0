// Signed bundles at the edge (issue #19): keys made now with `akidb keygen`, the bundle signed with
// `akidb bundle sign`, a package built with `build.sh --trusted-keys` into a temporary directory, then
// unpacked and imported by a fresh Node process as Lambda does. Accepted: a bundle signed by either key of
// a rotated pair (the log names the key). Refused at init, every invocation forwarded to the origin, the
// error naming the key id (when there is one) and the manifest: one changed byte in manifest.json, a
// signature by an untrusted key, no signature, a signature by a revoked key (removed from the trusted
// keys). build.sh refuses to package a bundle that its handler would refuse. Without trusted keys the
// handler loads as before and logs once that signatures are not checked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AKIDB, PKG, ZIP, here, invoke, originRequest, unzipFresh } from './helpers.mjs';

const BUNDLE = path.join(PKG, 'model');
const EVENTS = [originRequest({ body: '{"texts": ["signed at the edge"]}' })];

let tmp;
const keys = {}; // name -> the .pub file's JSON
const sigs = {}; // name -> manifest.json.sig bytes made with that key
let bundle;
let zip;

function writeTrust(file, names) {
  fs.writeFileSync(file, JSON.stringify({ keys: names.map((n) => ({ key_id: keys[n].key_id, public_key: keys[n].public_key })) }));
  return file;
}

function build(args) {
  return execFileSync('bash', [path.join(here, 'build.sh'), ...args], { stdio: 'pipe' }).toString();
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-edge-sig-'));
  const keyDir = path.join(tmp, 'keys');
  for (const name of ['a', 'b', 'untrusted']) {
    execFileSync(AKIDB, ['keygen', '--out', keyDir, '--name', name], { stdio: 'pipe' });
    keys[name] = JSON.parse(fs.readFileSync(path.join(keyDir, `${name}.pub`), 'utf8'));
    assert.match(keys[name].key_id, /^[0-9a-f]{16}$/);
  }
  // A copy of the packaged bundle, signed by each key in turn (each signature kept).
  bundle = path.join(tmp, 'bundle');
  fs.cpSync(BUNDLE, bundle, { recursive: true });
  fs.rmSync(path.join(bundle, 'manifest.json.sig'), { force: true });
  for (const name of ['untrusted', 'b', 'a']) {
    execFileSync(AKIDB, ['bundle', 'sign', '--key', path.join(keyDir, `${name}.key`), bundle], { stdio: 'pipe' });
    sigs[name] = fs.readFileSync(path.join(bundle, 'manifest.json.sig'));
    assert.equal(JSON.parse(sigs[name]).key_id, keys[name].key_id);
  }
  // Signed by a; a and b trusted (a rotation in progress).
  const out = build(['--bundle', bundle, '--trusted-keys', writeTrust(path.join(tmp, 'trust-ab.json'), ['a', 'b']), '--out', path.join(tmp, 'dist')]);
  assert.match(out, new RegExp(`signed by trusted key ${keys.a.key_id}`));
  zip = path.join(tmp, 'dist/akidb-edge.zip');
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The signed package unpacked, changed by `edit(dir)`, invoked in a fresh Node process. */
function run(edit = () => {}) {
  const dir = unzipFresh(zip);
  try {
    edit(dir);
    return { ...invoke(dir, EVENTS), dir };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const loadLog = (logs, event) =>
  logs
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.event === event);

function assertAccepted({ results, logs }, name) {
  const last = results.at(-1).result;
  assert.equal(last.status, '200', `answered at the edge: ${JSON.stringify(last).slice(0, 300)}\n${logs}`);
  const [loaded] = loadLog(logs, 'model-loaded');
  assert.equal(loaded?.signed_by, keys[name].key_id, logs);
}

/** Refused at init: every invocation forwarded unchanged, the error naming `keyId` (if any) and the manifest. */
function assertRefused({ results, logs, dir }, keyId) {
  for (const { event, result } of results) assert.deepEqual(result, event.Records[0].cf.request, 'the request unchanged');
  const [refused] = loadLog(logs, 'model-refused');
  assert.ok(refused, `a model-refused log line:\n${logs}`);
  assert.match(refused.error, /manifest\.json/, 'the error names the manifest');
  assert.ok(refused.error.includes(path.join(dir, 'model')), `the manifest's path in ${refused.error}`);
  if (keyId) assert.ok(refused.error.includes(keyId), `key id ${keyId} in ${refused.error}`);
  assert.equal(loadLog(logs, 'model-loaded').length, 0);
}

test('the zip carries the signature beside the manifest, the trusted keys and the config naming them', () => {
  const list = execFileSync('unzip', ['-Z1', zip]).toString().trim().split('\n');
  assert.ok(list.includes('model/manifest.json.sig'), 'model/manifest.json.sig in the zip');
  assert.ok(list.includes('trusted-keys.json'), 'trusted-keys.json in the zip');
  assert.equal(JSON.parse(execFileSync('unzip', ['-p', zip, 'config.json'])).trustedKeysFile, 'trusted-keys.json');
  assert.deepEqual(execFileSync('unzip', ['-p', zip, 'model/manifest.json.sig']), sigs.a);
  assert.ok(!list.some((f) => f.endsWith('.key')), 'no private key in the zip');
});

test('signed by a trusted key: loads and answers, the load log names the key', () => {
  assertAccepted(run(), 'a');
});

test('rotated keys: a bundle signed by the other trusted key loads too', () => {
  assertAccepted(
    run((dir) => fs.writeFileSync(path.join(dir, 'model/manifest.json.sig'), sigs.b)),
    'b',
  );
});

test('one changed byte in manifest.json: refused, naming the key id and the manifest', () => {
  const r = run((dir) => {
    const file = path.join(dir, 'model/manifest.json');
    const bytes = fs.readFileSync(file);
    const at = bytes.indexOf('1.0.0');
    assert.ok(at > 0, 'the version in the manifest');
    bytes[at] = '2'.charCodeAt(0); // still valid JSON, every file hash still right: only the signature can tell
    fs.writeFileSync(file, bytes);
  });
  assertRefused(r, keys.a.key_id);
});

test('a signature by an untrusted key: refused, naming that key id', () => {
  assertRefused(
    run((dir) => fs.writeFileSync(path.join(dir, 'model/manifest.json.sig'), sigs.untrusted)),
    keys.untrusted.key_id,
  );
});

test('no signature with trusted keys configured: refused, naming the manifest', () => {
  assertRefused(run((dir) => fs.rmSync(path.join(dir, 'model/manifest.json.sig'))));
});

test('a revoked key (removed from the trusted keys): refused, naming it', () => {
  assertRefused(
    run((dir) => writeTrust(path.join(dir, 'trusted-keys.json'), ['b'])),
    keys.a.key_id,
  );
});

test('an empty trusted-keys list in the package: refused (configured keys always mean a check)', () => {
  assertRefused(run((dir) => writeTrust(path.join(dir, 'trusted-keys.json'), [])));
});

test('without trusted keys (the default build): loads, and the log says once that nothing was checked', () => {
  const dir = unzipFresh(ZIP);
  try {
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'))).trustedKeysFile, '');
    const { results, logs } = invoke(dir, EVENTS);
    assert.equal(results.at(-1).result.status, '200');
    const loaded = loadLog(logs, 'model-loaded');
    assert.equal(loaded.length, 1);
    assert.match(loaded[0].signature, /not checked/);
    assert.equal(loaded[0].signed_by, undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('build.sh refuses to package a bundle its handler would refuse', () => {
  const failure = (args) => {
    try {
      build([...args, '--out', path.join(tmp, 'refused')]);
    } catch (e) {
      return e.stderr.toString();
    }
    assert.fail(`build.sh ${args.join(' ')} succeeded`);
  };
  // Signed by a, only the untrusted key trusted.
  const onlyUntrusted = writeTrust(path.join(tmp, 'trust-untrusted.json'), ['untrusted']);
  assert.match(failure(['--bundle', bundle, '--trusted-keys', onlyUntrusted]), new RegExp(`would refuse.*${keys.a.key_id}`));
  // An empty list.
  const empty = writeTrust(path.join(tmp, 'trust-empty.json'), []);
  assert.match(failure(['--bundle', bundle, '--trusted-keys', empty]), /lists no keys/);
  // No signature at all.
  const unsigned = path.join(tmp, 'unsigned');
  fs.cpSync(bundle, unsigned, { recursive: true });
  fs.rmSync(path.join(unsigned, 'manifest.json.sig'));
  assert.match(failure(['--bundle', unsigned, '--trusted-keys', onlyUntrusted]), /manifest\.json\.sig is missing/);
  assert.ok(!fs.existsSync(path.join(tmp, 'refused/akidb-edge.zip')), 'no zip built');
});
