// Builds every stack of the app from one validated config, and wires their deployment order:
// registries → secondary regions (replica buckets) → primary region (replication source) → edge → DNS.
import * as cdk from 'aws-cdk-lib';
import { AkidbConfig, names } from './config';
import { DnsStack } from './dns-stack';
import { EdgeStack } from './edge-stack';
import { RegionalStack } from './regional-stack';
import { RegistryStack } from './registry-stack';

export interface AkidbStacks {
  registries: Record<string, RegistryStack>;
  regionals: Record<string, RegionalStack>;
  edge: EdgeStack;
  dns: DnsStack;
}

export function buildApp(app: cdk.App, cfg: AkidbConfig, opts: { edgeZip: string }): AkidbStacks {
  const n = names(cfg);
  const registries: Record<string, RegistryStack> = {};
  const regionals: Record<string, RegionalStack> = {};
  for (const region of n.regions) {
    const env = { account: cfg.account, region };
    registries[region] = new RegistryStack(app, n.registryStack(region), { cfg, env, description: `akidb container registries (${region})` });
    regionals[region] = new RegionalStack(app, n.regionalStack(region), { cfg, region, description: `akidb origin tier (${region})` });
    regionals[region].addStackDependency(registries[region], 'services pull their images from the registry');
  }
  for (const region of cfg.regions.secondary) {
    regionals[cfg.regions.primary].addStackDependency(regionals[region], 'replication rules name the replica buckets');
  }
  const edge = new EdgeStack(app, n.edgeStack, { cfg, edgeZip: opts.edgeZip, description: 'akidb CDN tier (CloudFront, Lambda@Edge, site bucket)' });
  for (const region of n.regions) edge.addStackDependency(regionals[region], 'CloudFront origins are the regional names');
  const dns = new DnsStack(app, n.dnsStack, { cfg, distribution: edge.distribution, description: 'akidb DNS: geolocation + latency tree, health checks' });
  for (const region of n.regions) dns.addStackDependency(regionals[region], 'records alias the regional names');
  return { registries, regionals, edge, dns };
}
