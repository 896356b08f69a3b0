#!/usr/bin/env node
// `cdk synth` entry point. Context: `config` (path, default config/default.json), `edgeZip` (default
// lambda-edge/dist/akidb-edge.zip). Needs no credentials and no network: every stack has an explicit env and
// nothing is looked up. cdk-nag's AwsSolutions pack runs as a policy-validation plugin: an unacknowledged
// finding fails synth.
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../lib/app';
import { loadConfig } from '../lib/config';

const infraDir = path.resolve(__dirname, '..', '..'); // dist/bin → infra/
const app = new cdk.App();
const configPath = path.resolve(app.node.tryGetContext('config') ?? path.join(infraDir, 'config', 'default.json'));
const edgeZip = path.resolve(app.node.tryGetContext('edgeZip') ?? path.join(infraDir, 'lambda-edge', 'dist', 'akidb-edge.zip'));
try {
  buildApp(app, loadConfig(configPath), { edgeZip });
} catch (e) {
  console.error(`synth failed: ${(e as Error).message}`);
  process.exit(1);
}
cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
