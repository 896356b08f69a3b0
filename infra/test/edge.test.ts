import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import * as vm from 'node:vm';
import { Template } from 'aws-cdk-lib/assertions';
import { FAILOVER_STATUS_CODES, PRECOMPRESSED_FUNCTION } from '../lib/edge-stack';
import { resourcesOf, synthDefault } from './helpers';

const { stacks, cfg } = synthDefault();
const template = Template.fromStack(stacks.edge);
const resources = template.toJSON().Resources as Record<string, any>;
const [, distributionResource] = resourcesOf(template, 'AWS::CloudFront::Distribution')[0];
const dist = distributionResource.Properties.DistributionConfig;
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad'; // AWS managed policy id
const ONE_YEAR_S = 365 * 24 * 3600;

function behavior(pathPattern: string): any {
  const b = dist.CacheBehaviors.find((x: any) => x.PathPattern === pathPattern);
  assert.ok(b, `no cache behaviour for ${pathPattern}`);
  return b;
}
function cachePolicy(b: any): any {
  assert.ok(b.CachePolicyId.Ref, 'expected a cache policy of this stack');
  return resources[b.CachePolicyId.Ref].Properties.CachePolicyConfig;
}
function origin(id: string): any {
  const o = dist.Origins.find((x: any) => x.Id === id);
  assert.ok(o, `no origin ${id}`);
  return o;
}
const group = dist.OriginGroups.Items[0];

test('/v1/blobs/*: key is the path only, TTL up to a year from the origin, origin group, not compressed', () => {
  const b = behavior('/v1/blobs/*');
  const p = cachePolicy(b);
  const key = p.ParametersInCacheKeyAndForwardedToOrigin;
  assert.deepEqual(key.QueryStringsConfig, { QueryStringBehavior: 'none' });
  assert.deepEqual(key.HeadersConfig, { HeaderBehavior: 'none' });
  assert.deepEqual(key.CookiesConfig, { CookieBehavior: 'none' });
  assert.equal(key.EnableAcceptEncodingGzip, false);
  assert.equal(key.EnableAcceptEncodingBrotli, false);
  assert.equal(p.MinTTL, 0);
  assert.equal(p.MaxTTL, ONE_YEAR_S);
  assert.equal(b.OriginRequestPolicyId, undefined, 'blobs must not forward viewer headers (Range is handled by CloudFront)');
  assert.equal(b.Compress, false);
  assert.deepEqual(b.AllowedMethods, ['GET', 'HEAD', 'OPTIONS']);
  assert.equal(b.TargetOriginId, group.Id);
});

test('/v1/models*: short default TTL, origin max-age / stale-while-revalidate honoured (min 0)', () => {
  const b = behavior('/v1/models*');
  const p = cachePolicy(b);
  assert.equal(p.DefaultTTL, 60);
  assert.equal(p.MinTTL, 0);
  assert.equal(p.MaxTTL, ONE_YEAR_S, 'version manifests are immutable: the origin may ask for a year');
  const key = p.ParametersInCacheKeyAndForwardedToOrigin;
  assert.deepEqual(key.QueryStringsConfig, { QueryStringBehavior: 'none' });
  assert.deepEqual(key.CookiesConfig, { CookieBehavior: 'none' });
  assert.equal(b.TargetOriginId, group.Id);
});

for (const p of ['/v1/embed', '/v1/embeddings']) {
  test(`${p}: not cached, POST allowed, Lambda@Edge origin-request with body on a published version`, () => {
    const b = behavior(p);
    assert.equal(b.CachePolicyId, CACHING_DISABLED);
    assert.ok(b.AllowedMethods.includes('POST'));
    assert.equal(b.ViewerProtocolPolicy, 'https-only');
    assert.equal(b.LambdaFunctionAssociations.length, 1);
    const assoc = b.LambdaFunctionAssociations[0];
    assert.equal(assoc.EventType, 'origin-request');
    assert.equal(assoc.IncludeBody, true);
    const version = resources[assoc.LambdaFunctionARN.Ref];
    assert.equal(version?.Type, 'AWS::Lambda::Version', 'Lambda@Edge needs a numbered version, not $LATEST');
    const fn = resources[version.Properties.FunctionName.Ref];
    assert.equal(fn.Properties.Runtime, 'nodejs22.x');
    assert.equal(fn.Properties.Handler, 'index.handler');
    assert.equal(fn.Properties.MemorySize, cfg.lambdaEdge.memoryMiB);
    // The regional origin sits behind the handler; POST cannot target an origin group.
    assert.equal(origin(b.TargetOriginId).DomainName, `api.${cfg.domain}`);
  });
}

test('the origin group fails over to the failover region on 5xx, both members behind Origin Shield in the primary region', () => {
  assert.deepEqual([...group.FailoverCriteria.StatusCodes.Items].sort(), [...FAILOVER_STATUS_CODES].sort());
  assert.deepEqual(FAILOVER_STATUS_CODES, [500, 502, 503, 504]);
  const members = group.Members.Items.map((m: any) => origin(m.OriginId));
  assert.deepEqual(members.map((o: any) => o.DomainName), [`api.${cfg.domain}`, `${cfg.failoverRegion}.api.${cfg.domain}`]);
  for (const o of members) {
    assert.deepEqual(o.OriginShield, { Enabled: true, OriginShieldRegion: cfg.regions.primary });
    assert.equal(o.CustomOriginConfig.OriginProtocolPolicy, 'https-only');
    assert.deepEqual(o.CustomOriginConfig.OriginSSLProtocols, ['TLSv1.2']);
  }
});

test('HTTP/2 and HTTP/3, TLS 1.2+ with a DNS-validated certificate for the CDN name', () => {
  assert.equal(dist.HttpVersion, 'http2and3');
  assert.deepEqual(dist.Aliases, [`cdn.${cfg.domain}`]);
  assert.equal(dist.ViewerCertificate.MinimumProtocolVersion, 'TLSv1.2_2021');
  assert.equal(dist.ViewerCertificate.SslSupportMethod, 'sni-only');
  const cert = resources[dist.ViewerCertificate.AcmCertificateArn.Ref];
  assert.equal(cert.Type, 'AWS::CertificateManager::Certificate');
  assert.equal(cert.Properties.ValidationMethod, 'DNS');
  assert.deepEqual(cert.Properties.DomainValidationOptions, [{ DomainName: `cdn.${cfg.domain}`, HostedZoneId: cfg.hostedZone.id }]);
});

test('the site comes from a private bucket through origin access control, with the precompressed-variant function', () => {
  const b = dist.DefaultCacheBehavior;
  const o = origin(b.TargetOriginId);
  assert.ok(o.S3OriginConfig, 'default behaviour must target the S3 origin');
  assert.equal(o.S3OriginConfig.OriginAccessIdentity, '', 'OAC, not a legacy origin access identity');
  const oac = resources[o.OriginAccessControlId['Fn::GetAtt'][0]];
  assert.equal(oac.Properties.OriginAccessControlConfig.SigningBehavior, 'always');
  assert.equal(oac.Properties.OriginAccessControlConfig.OriginAccessControlOriginType, 's3');
  assert.equal(b.FunctionAssociations.length, 1);
  assert.equal(b.FunctionAssociations[0].EventType, 'viewer-request');
  const key = cachePolicy(b).ParametersInCacheKeyAndForwardedToOrigin;
  assert.equal(key.EnableAcceptEncodingBrotli, true, 'each variant needs its own cache entry');
  assert.equal(key.EnableAcceptEncodingGzip, true);
  const [, policy] = resourcesOf(template, 'AWS::S3::BucketPolicy').find(([, p]) =>
    JSON.stringify(p.Properties.PolicyDocument).includes('cloudfront.amazonaws.com'))!;
  const allow = policy.Properties.PolicyDocument.Statement.find((s: any) => s.Principal?.Service === 'cloudfront.amazonaws.com');
  assert.equal(allow.Effect, 'Allow');
  assert.ok(allow.Condition.StringEquals['AWS:SourceArn'], 'only this distribution may read the bucket');
});

test('the CloudFront Function serves .br / .gz variants by Accept-Encoding', () => {
  const source = fs.readFileSync(PRECOMPRESSED_FUNCTION, 'utf8');
  const [, fnResource] = resourcesOf(template, 'AWS::CloudFront::Function')[0];
  assert.ok(fnResource.Properties.FunctionCode.includes('function handler(event)'), 'deployed code is the tested file');
  assert.equal(fnResource.Properties.FunctionConfig.Runtime, 'cloudfront-js-2.0');
  const sandbox: Record<string, any> = {};
  vm.runInNewContext(`${source}\nresult = handler;`, sandbox);
  const run = (uri: string, ae?: string) =>
    sandbox.result({ request: { uri, headers: ae === undefined ? {} : { 'accept-encoding': { value: ae } } } }).uri;
  assert.equal(run('/pkg/akidb_wasm_bg.wasm', 'gzip, deflate, br, zstd'), '/pkg/akidb_wasm_bg.wasm.br');
  assert.equal(run('/pkg/akidb_wasm_bg.wasm', 'gzip, deflate'), '/pkg/akidb_wasm_bg.wasm.gz');
  assert.equal(run('/pkg/akidb_wasm_bg.wasm'), '/pkg/akidb_wasm_bg.wasm');
  assert.equal(run('/', 'br'), '/index.html.br');
  assert.equal(run('/demo/', 'gzip;q=1.0'), '/demo/index.html.gz');
  assert.equal(run('/favicon.png', 'br'), '/favicon.png', 'images are not precompressed');
  assert.equal(run('/app.js', 'brotli-x'), '/app.js', 'a token that merely contains "br" is not br');
});

test('one response-headers policy on every behaviour: CORS, CORP, security headers', () => {
  const [id, rhp] = resourcesOf(template, 'AWS::CloudFront::ResponseHeadersPolicy')[0];
  const c = rhp.Properties.ResponseHeadersPolicyConfig;
  assert.deepEqual(c.CorsConfig.AccessControlAllowOrigins.Items, ['*']);
  assert.ok(c.CorsConfig.AccessControlAllowMethods.Items.includes('POST'));
  assert.ok(c.CorsConfig.AccessControlExposeHeaders.Items.includes('Content-Range'));
  assert.equal(c.CorsConfig.AccessControlAllowCredentials, false);
  assert.deepEqual(c.CustomHeadersConfig.Items, [{ Header: 'Cross-Origin-Resource-Policy', Value: 'cross-origin', Override: true }]);
  assert.equal(c.SecurityHeadersConfig.StrictTransportSecurity.AccessControlMaxAgeSec, ONE_YEAR_S);
  assert.equal(c.SecurityHeadersConfig.ContentTypeOptions.Override, true);
  for (const b of [dist.DefaultCacheBehavior, ...dist.CacheBehaviors]) {
    assert.deepEqual(b.ResponseHeadersPolicyId, { Ref: id }, `${b.PathPattern ?? 'default'} lacks the headers policy`);
  }
});

test('edge buckets are private', () => {
  for (const [id, bucket] of resourcesOf(template, 'AWS::S3::Bucket')) {
    assert.deepEqual(bucket.Properties.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
    }, `${id} is not fully private`);
  }
});
