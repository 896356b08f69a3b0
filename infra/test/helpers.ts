// Shared by the assertion tests: the default config, the fixture Lambda@Edge zip, and one synthesized app.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { AkidbStacks, buildApp } from '../lib/app';
import { AkidbConfig, loadConfig } from '../lib/config';

export const INFRA_DIR = path.resolve(__dirname, '..', '..');
export const DEFAULT_CONFIG = path.join(INFRA_DIR, 'config', 'default.json');
/** A stand-in for infra/lambda-edge/dist/akidb-edge.zip (one index.mjs), so synth tests need not build it. */
export const FIXTURE_EDGE_ZIP = path.join(INFRA_DIR, 'test', 'fixtures', 'fixture-akidb-edge.zip');

export function defaultConfig(): AkidbConfig {
  return loadConfig(DEFAULT_CONFIG);
}

export function rawDefaultConfig(): Record<string, any> {
  return JSON.parse(fs.readFileSync(DEFAULT_CONFIG, 'utf8'));
}

export function newApp(): cdk.App {
  return new cdk.App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'akidb-infra-test-')) });
}

let shared: { app: cdk.App; stacks: AkidbStacks; cfg: AkidbConfig } | undefined;

/** The default app, built once per process and shared by the read-only assertion files (a synth takes seconds). */
export function synthDefault(): { app: cdk.App; stacks: AkidbStacks; cfg: AkidbConfig } {
  if (!shared) {
    const cfg = defaultConfig();
    const app = newApp();
    shared = { app, stacks: buildApp(app, cfg, { edgeZip: FIXTURE_EDGE_ZIP }), cfg };
  }
  return shared;
}

/** The resources of a template of one type, as [logicalId, resource] pairs. */
export function resourcesOf(template: { toJSON(): any }, type: string): [string, any][] {
  return Object.entries(template.toJSON().Resources as Record<string, any>).filter(([, r]) => r.Type === type);
}
