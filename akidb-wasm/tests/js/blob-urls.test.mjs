// The one rule for where a bundle file lives, given its manifest URL: every row of tests/blob-urls.json
// (the table the Rust client, akidb-native/src/remote.rs, is held to as well) through the shipped loader's
// default locator, and through the public helper that row's kind names (modelServerBlobUrl for a model
// server's manifest, siblingUrl for a static bundle directory).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repo } from '../../../tests/support/paths.mjs';

const pkg = process.env.AKIDB_WASM_PKG ?? path.join(repo, 'akidb-wasm/pkg');
const { fileUrl } = await import(path.join(pkg, 'bundle.js'));
const { modelServerBlobUrl, siblingUrl } = await import(path.join(pkg, 'index.js'));
const rows = JSON.parse(fs.readFileSync(path.join(repo, 'tests/blob-urls.json'), 'utf8'));

test('the table is well formed and covers both kinds of manifest URL', () => {
  assert.ok(rows.length >= 10, `${rows.length} rows`);
  for (const row of rows) {
    assert.deepEqual(Object.keys(row).sort(), ['blob_url', 'case', 'manifest_url', 'path', 'sha256']);
    assert.match(row.sha256, /^[0-9a-f]{64}$/, row.case);
  }
  const serverRows = rows.filter((r) => r.blob_url.includes('/v1/blobs/sha256/'));
  assert.ok(serverRows.length >= 5 && serverRows.length < rows.length, 'model-server and static rows');
});

for (const row of rows) {
  test(`${row.case}: ${row.manifest_url}`, () => {
    const entry = { path: row.path, sha256: row.sha256, size: 1, role: 'model' };
    assert.equal(fileUrl(entry, row.manifest_url), row.blob_url, 'the loader\'s default locator');
    const helper = row.blob_url.endsWith(`/v1/blobs/sha256/${row.sha256}`) ? modelServerBlobUrl : siblingUrl;
    assert.equal(helper(entry, row.manifest_url), row.blob_url, helper.name);
  });
}
