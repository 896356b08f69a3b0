import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as cdk from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../lib/app';
import { acknowledge } from '../lib/nag';
import { FIXTURE_EDGE_ZIP, defaultConfig, newApp } from './helpers';

function report(app: cdk.App): any {
  return JSON.parse(fs.readFileSync(path.join(app.outdir, 'validation-report.json'), 'utf8'));
}

test('cdk-nag AwsSolutions: the whole app synthesizes with no unacknowledged error', () => {
  const app = newApp();
  buildApp(app, defaultConfig(), { edgeZip: FIXTURE_EDGE_ZIP });
  cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  // A finding that is not acknowledged makes synth throw "Validation failed" (next test).
  assert.doesNotThrow(() => app.synth());
  for (const plugin of report(app).pluginReports) {
    const errors = plugin.violations.filter((v: any) => v.severity === 'error');
    assert.deepEqual(errors.map((v: any) => `${v.ruleName} at ${v.violatingConstructs[0]?.constructPath}`), [], plugin.pluginName);
  }
});

test('cdk-nag fails synth on an unacknowledged finding (the gate is live)', () => {
  const app = newApp();
  const stack = new cdk.Stack(app, 'NagProbe', { env: { account: '111111111111', region: 'us-east-1' } });
  new s3.Bucket(stack, 'PlainBucket');
  cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  assert.throws(() => app.synth(), /Validation failed/);
  const rules = report(app).pluginReports[0].violations.map((v: any) => v.ruleName);
  assert.ok(rules.includes('AwsSolutions-S10'), `expected S10 among ${rules}`);
});

test('an acknowledgement without a reason is refused', () => {
  const stack = new cdk.Stack(newApp(), 'Ack');
  assert.throws(() => acknowledge(stack, [{ id: 'AwsSolutions-S1', reason: 'because' }]), /needs a reason/);
});
