// The one typed config of the CDK app. `config/default.json` holds the defaults as plain JSON (the cost model
// reads it too); `loadConfig` validates every field and names the offending one, so a bad config fails synth
// before any construct is built.
import * as fs from 'node:fs';

export const CONTINENTS = ['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'] as const;
export type Continent = (typeof CONTINENTS)[number];

export interface ServiceConfig {
  /** Fargate CPU units (1024 = 1 vCPU). */
  cpu: number;
  memoryMiB: number;
  minTasks: number;
  maxTasks: number;
  imageTag: string;
}

export interface AkidbConfig {
  account: string;
  domain: string;
  hostedZone: { id: string; name: string };
  regions: { primary: string; secondary: string[] };
  /** The region CloudFront's origin group fails over to. */
  failoverRegion: string;
  /** Continent code → region answering `api.<domain>` for viewers on that continent. */
  geolocation: Partial<Record<Continent, string>>;
  services: { akidbServe: ServiceConfig; modelServer: ServiceConfig; syncImage: string };
  autoscaling: { cpuTargetPercent: number; averageLatencyTargetSeconds: number };
  healthCheck: { path: string; intervalSeconds: 10 | 30; failureThreshold: number };
  alarms: { p95LatencySeconds: number; http5xxPerMinute: number; email: string };
  model: { name: string; version: string; alias: string };
  lambdaEdge: { memoryMiB: number; timeoutSeconds: number };
  logs: { retentionDays: number };
  buckets: { noncurrentVersionExpirationDays: number };
}

export class ConfigError extends Error {
  constructor(field: string, problem: string) {
    super(`invalid config: ${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

// Regions with an Origin Shield, ECS Fargate and Route 53 latency records; the app refuses others rather than
// failing half-way through a deploy.
const KNOWN_REGIONS = new Set([
  'us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'ca-central-1', 'sa-east-1', 'eu-central-1', 'eu-west-1',
  'eu-west-2', 'eu-west-3', 'eu-north-1', 'eu-south-1', 'ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3',
  'ap-southeast-1', 'ap-southeast-2', 'ap-south-1', 'me-south-1', 'af-south-1',
]);
// Fargate's valid (cpu, memory) pairs: memory range in MiB per CPU size.
const FARGATE_MEMORY: Record<number, [number, number, number]> = {
  256: [512, 2048, 512], 512: [1024, 4096, 1024], 1024: [2048, 8192, 1024],
  2048: [4096, 16384, 1024], 4096: [8192, 30720, 1024],
};
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/; // model-server's rule for names, versions and aliases
const IMAGE_TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

type Json = unknown;

function obj(v: Json, field: string): Record<string, Json> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(field, 'expected an object');
  return v as Record<string, Json>;
}

function onlyKeys(o: Record<string, Json>, field: string, keys: string[]): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new ConfigError(field ? `${field}.${k}` : k, `unknown field (expected one of ${keys.join(', ')})`);
  }
  for (const k of keys) {
    if (!(k in o)) throw new ConfigError(field ? `${field}.${k}` : k, 'missing');
  }
}

function str(v: Json, field: string, re?: RegExp, what?: string): string {
  if (typeof v !== 'string') throw new ConfigError(field, 'expected a string');
  if (re && !re.test(v)) throw new ConfigError(field, `${JSON.stringify(v)} is not ${what ?? `matching ${re}`}`);
  return v;
}

function int(v: Json, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(field, 'expected an integer');
  if (v < min || v > max) throw new ConfigError(field, `${v} is outside ${min}..${max}`);
  return v;
}

function num(v: Json, field: string, minExclusive: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(field, 'expected a number');
  if (v <= minExclusive || v > max) throw new ConfigError(field, `${v} is outside (${minExclusive}, ${max}]`);
  return v;
}

function region(v: Json, field: string): string {
  const r = str(v, field);
  if (!KNOWN_REGIONS.has(r)) throw new ConfigError(field, `${JSON.stringify(r)} is not a supported AWS region`);
  return r;
}

function service(v: Json, field: string): ServiceConfig {
  const o = obj(v, field);
  onlyKeys(o, field, ['cpu', 'memoryMiB', 'minTasks', 'maxTasks', 'imageTag']);
  const cpu = int(o.cpu, `${field}.cpu`, 256, 4096);
  const mem = FARGATE_MEMORY[cpu];
  if (!mem) throw new ConfigError(`${field}.cpu`, `${cpu} is not a Fargate CPU size (256, 512, 1024, 2048, 4096)`);
  const memoryMiB = int(o.memoryMiB, `${field}.memoryMiB`, mem[0], mem[1]);
  if ((memoryMiB - mem[0]) % mem[2] !== 0) {
    throw new ConfigError(`${field}.memoryMiB`, `${memoryMiB} is not a Fargate memory size for cpu ${cpu} (steps of ${mem[2]} from ${mem[0]})`);
  }
  const minTasks = int(o.minTasks, `${field}.minTasks`, 1, 100);
  const maxTasks = int(o.maxTasks, `${field}.maxTasks`, 1, 1000);
  if (maxTasks < minTasks) throw new ConfigError(`${field}.maxTasks`, `${maxTasks} is below minTasks ${minTasks}`);
  return { cpu, memoryMiB, minTasks, maxTasks, imageTag: str(o.imageTag, `${field}.imageTag`, IMAGE_TAG, 'an image tag') };
}

export function validateConfig(raw: Json): AkidbConfig {
  const o = obj(raw, '(root)');
  onlyKeys(o, '', ['account', 'domain', 'hostedZone', 'regions', 'failoverRegion', 'geolocation', 'services',
    'autoscaling', 'healthCheck', 'alarms', 'model', 'lambdaEdge', 'logs', 'buckets']);
  const account = str(o.account, 'account', /^\d{12}$/, 'a 12-digit AWS account id');
  const domain = str(o.domain, 'domain', DNS_NAME, 'a lower-case DNS name');

  const hz = obj(o.hostedZone, 'hostedZone');
  onlyKeys(hz, 'hostedZone', ['id', 'name']);
  const hostedZone = {
    id: str(hz.id, 'hostedZone.id', /^[A-Z0-9]{1,32}$/, 'a Route 53 hosted zone id (upper-case letters and digits)'),
    name: str(hz.name, 'hostedZone.name', DNS_NAME, 'a lower-case DNS name'),
  };
  if (domain !== hostedZone.name && !domain.endsWith(`.${hostedZone.name}`)) {
    throw new ConfigError('domain', `${domain} is not inside hostedZone.name ${hostedZone.name}`);
  }

  const rg = obj(o.regions, 'regions');
  onlyKeys(rg, 'regions', ['primary', 'secondary']);
  const primary = region(rg.primary, 'regions.primary');
  if (primary !== 'us-east-1') {
    // CloudFront's certificate, Lambda@Edge and the Route 53 health-check metrics all live in us-east-1, and
    // the primary regional stack shares that region with the edge stack.
    throw new ConfigError('regions.primary', `${primary}: the primary region must be us-east-1`);
  }
  if (!Array.isArray(rg.secondary) || rg.secondary.length === 0) throw new ConfigError('regions.secondary', 'expected a non-empty list of regions');
  const secondary = rg.secondary.map((r, i) => region(r, `regions.secondary[${i}]`));
  const all = [primary, ...secondary];
  if (new Set(all).size !== all.length) throw new ConfigError('regions.secondary', 'a region is listed twice');

  const failoverRegion = region(o.failoverRegion, 'failoverRegion');
  if (!secondary.includes(failoverRegion)) throw new ConfigError('failoverRegion', `${failoverRegion} is not one of regions.secondary`);

  const geo = obj(o.geolocation, 'geolocation');
  const geolocation: Partial<Record<Continent, string>> = {};
  for (const [k, v] of Object.entries(geo)) {
    if (!(CONTINENTS as readonly string[]).includes(k)) throw new ConfigError(`geolocation.${k}`, `unknown continent code (expected one of ${CONTINENTS.join(', ')})`);
    const r = region(v, `geolocation.${k}`);
    if (!all.includes(r)) throw new ConfigError(`geolocation.${k}`, `${r} is not a deployed region`);
    geolocation[k as Continent] = r;
  }

  const sv = obj(o.services, 'services');
  onlyKeys(sv, 'services', ['akidbServe', 'modelServer', 'syncImage']);
  const services = {
    akidbServe: service(sv.akidbServe, 'services.akidbServe'),
    modelServer: service(sv.modelServer, 'services.modelServer'),
    // Pinned by tag: the init container that copies the model-server data directory from the bucket.
    syncImage: str(sv.syncImage, 'services.syncImage', /^[a-z0-9./-]+:[A-Za-z0-9._-]+$/, 'an image reference with a tag'),
  };

  const as = obj(o.autoscaling, 'autoscaling');
  onlyKeys(as, 'autoscaling', ['cpuTargetPercent', 'averageLatencyTargetSeconds']);
  const autoscaling = {
    cpuTargetPercent: int(as.cpuTargetPercent, 'autoscaling.cpuTargetPercent', 10, 90),
    averageLatencyTargetSeconds: num(as.averageLatencyTargetSeconds, 'autoscaling.averageLatencyTargetSeconds', 0, 30),
  };

  const hc = obj(o.healthCheck, 'healthCheck');
  onlyKeys(hc, 'healthCheck', ['path', 'intervalSeconds', 'failureThreshold']);
  const interval = int(hc.intervalSeconds, 'healthCheck.intervalSeconds', 10, 30);
  if (interval !== 10 && interval !== 30) throw new ConfigError('healthCheck.intervalSeconds', `${interval}: Route 53 allows 10 (fast) or 30`);
  const healthCheck = {
    path: str(hc.path, 'healthCheck.path', /^\/[A-Za-z0-9/_.-]*$/, 'an absolute URL path'),
    intervalSeconds: interval as 10 | 30,
    failureThreshold: int(hc.failureThreshold, 'healthCheck.failureThreshold', 1, 10),
  };

  const al = obj(o.alarms, 'alarms');
  onlyKeys(al, 'alarms', ['p95LatencySeconds', 'http5xxPerMinute', 'email']);
  const alarms = {
    p95LatencySeconds: num(al.p95LatencySeconds, 'alarms.p95LatencySeconds', 0, 60),
    http5xxPerMinute: int(al.http5xxPerMinute, 'alarms.http5xxPerMinute', 1, 1_000_000),
    email: str(al.email, 'alarms.email', /^$|^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'empty or an e-mail address'),
  };

  const md = obj(o.model, 'model');
  onlyKeys(md, 'model', ['name', 'version', 'alias']);
  const model = {
    name: str(md.name, 'model.name', NAME, 'a model-server name'),
    version: str(md.version, 'model.version', NAME, 'a model-server version'),
    alias: str(md.alias, 'model.alias', NAME, 'a model-server alias'),
  };

  const le = obj(o.lambdaEdge, 'lambdaEdge');
  onlyKeys(le, 'lambdaEdge', ['memoryMiB', 'timeoutSeconds']);
  const lambdaEdge = {
    memoryMiB: int(le.memoryMiB, 'lambdaEdge.memoryMiB', 128, 10240),
    // Origin-request triggers may run at most 30 s.
    timeoutSeconds: int(le.timeoutSeconds, 'lambdaEdge.timeoutSeconds', 1, 30),
  };

  const lg = obj(o.logs, 'logs');
  onlyKeys(lg, 'logs', ['retentionDays']);
  const retention = int(lg.retentionDays, 'logs.retentionDays', 1, 3653);
  const validRetention = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
  if (!validRetention.includes(retention)) throw new ConfigError('logs.retentionDays', `${retention} is not a CloudWatch Logs retention (${validRetention.join(', ')})`);

  const bk = obj(o.buckets, 'buckets');
  onlyKeys(bk, 'buckets', ['noncurrentVersionExpirationDays']);

  return {
    account, domain, hostedZone, regions: { primary, secondary }, failoverRegion, geolocation, services,
    autoscaling, healthCheck, alarms, model, lambdaEdge, logs: { retentionDays: retention },
    buckets: { noncurrentVersionExpirationDays: int(bk.noncurrentVersionExpirationDays, 'buckets.noncurrentVersionExpirationDays', 1, 3650) },
  };
}

export function loadConfig(path: string): AkidbConfig {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read config ${path}: ${(e as Error).message}`);
  }
  let raw: Json;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`config ${path} is not JSON: ${(e as Error).message}`);
  }
  return validateConfig(raw);
}

/** Names every stack and host derives from the config, in one place. */
export function names(cfg: AkidbConfig) {
  return {
    regions: [cfg.regions.primary, ...cfg.regions.secondary],
    apiHost: `api.${cfg.domain}`,
    cdnHost: `cdn.${cfg.domain}`,
    regionalHost: (region: string) => `${region}.api.${cfg.domain}`,
    latencyHost: `latency.api.${cfg.domain}`,
    modelBucket: (region: string) => `akidb-models-${cfg.account}-${region}`,
    registryStack: (region: string) => `AkidbRegistry-${region}`,
    regionalStack: (region: string) => `AkidbRegional-${region}`,
    edgeStack: 'AkidbEdge',
    dnsStack: 'AkidbDns',
    repositories: { akidbServe: 'akidb-serve', modelServer: 'model-server' },
  };
}
