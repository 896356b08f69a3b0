import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildApp } from '../lib/app';
import { loadConfig, validateConfig } from '../lib/config';
import { DEFAULT_CONFIG, FIXTURE_EDGE_ZIP, newApp, rawDefaultConfig } from './helpers';

test('the default config validates', () => {
  const cfg = loadConfig(DEFAULT_CONFIG);
  assert.equal(cfg.regions.primary, 'us-east-1');
  assert.deepEqual(cfg.regions.secondary, ['eu-central-1', 'ap-northeast-1']);
  assert.equal(cfg.healthCheck.intervalSeconds, 10);
  assert.equal(cfg.healthCheck.failureThreshold, 3);
});

// Each case breaks one field of the default config; the error must name that field.
const badFields: [string, (c: any) => void][] = [
  ['account', (c) => { c.account = '1234'; }],
  ['domain', (c) => { c.domain = 'Not A Domain'; }],
  ['hostedZone.id', (c) => { c.hostedZone.id = 'zone-1'; }],
  ['regions.primary', (c) => { c.regions.primary = 'eu-west-1'; }],
  ['regions.secondary[1]', (c) => { c.regions.secondary[1] = 'mars-north-1'; }],
  ['failoverRegion', (c) => { c.failoverRegion = 'us-west-2'; }],
  ['geolocation.XX', (c) => { c.geolocation.XX = 'us-east-1'; }],
  ['geolocation.EU', (c) => { c.geolocation.EU = 'us-west-2'; }],
  ['services.akidbServe.memoryMiB', (c) => { c.services.akidbServe.memoryMiB = 1000; }],
  ['services.modelServer.cpu', (c) => { c.services.modelServer.cpu = 300; }],
  ['services.akidbServe.maxTasks', (c) => { c.services.akidbServe.maxTasks = 1; }],
  ['services.modelServer.imageTag', (c) => { c.services.modelServer.imageTag = 'bad tag'; }],
  ['healthCheck.intervalSeconds', (c) => { c.healthCheck.intervalSeconds = 20; }],
  ['healthCheck.failureThreshold', (c) => { c.healthCheck.failureThreshold = 0; }],
  ['alarms.p95LatencySeconds', (c) => { c.alarms.p95LatencySeconds = '0.5'; }],
  ['alarms.email', (c) => { c.alarms.email = 'nobody'; }],
  ['model.alias', (c) => { c.model.alias = '.hidden'; }],
  ['lambdaEdge.timeoutSeconds', (c) => { c.lambdaEdge.timeoutSeconds = 60; }],
  ['logs.retentionDays', (c) => { c.logs.retentionDays = 31; }],
  ['buckets.noncurrentVersionExpirationDays', (c) => { delete c.buckets.noncurrentVersionExpirationDays; }],
  ['model.colour', (c) => { c.model.colour = 'blue'; }],
];
for (const [field, mutate] of badFields) {
  test(`a bad ${field} fails with a message naming it`, () => {
    const raw = rawDefaultConfig();
    mutate(raw);
    assert.throws(() => validateConfig(raw), (e: Error) => {
      assert.match(e.message, new RegExp(`^invalid config: ${field.replace(/[.[\]]/g, '\\$&')}: `));
      return true;
    });
  });
}

test('a config that is not JSON names the file', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-cfg-')), 'broken.json');
  fs.writeFileSync(file, '{"account": ');
  assert.throws(() => loadConfig(file), /config .*broken\.json is not JSON/);
});

test('a missing Lambda@Edge package fails synth and says how to build it', () => {
  const cfg = loadConfig(DEFAULT_CONFIG);
  assert.throws(() => buildApp(newApp(), cfg, { edgeZip: '/nonexistent/akidb-edge.zip' }), /run infra\/lambda-edge\/build\.sh/);
});

test('synth needs no context lookups (no credentials, no network)', () => {
  const app = newApp();
  buildApp(app, loadConfig(DEFAULT_CONFIG), { edgeZip: FIXTURE_EDGE_ZIP });
  const assembly = app.synth();
  assert.equal(assembly.manifest.missing, undefined, `lookups requested: ${JSON.stringify(assembly.manifest.missing)}`);
  assert.deepEqual(assembly.stacks.map((s) => s.stackName).sort(), [
    'AkidbDns', 'AkidbEdge', 'AkidbRegional-ap-northeast-1', 'AkidbRegional-eu-central-1', 'AkidbRegional-us-east-1',
    'AkidbRegistry-ap-northeast-1', 'AkidbRegistry-eu-central-1', 'AkidbRegistry-us-east-1',
  ]);
  for (const s of assembly.stacks) assert.match(s.environment.account, /^\d{12}$/, `${s.stackName} has no explicit account`);
});
