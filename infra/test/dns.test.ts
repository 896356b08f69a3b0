import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { names } from '../lib/config';
import { resourcesOf, synthDefault } from './helpers';

const { stacks, cfg } = synthDefault();
const n = names(cfg);
const template = Template.fromStack(stacks.dns);
const healthChecks = resourcesOf(template, 'AWS::Route53::HealthCheck');
const records = resourcesOf(template, 'AWS::Route53::RecordSet').map(([, r]) => r.Properties);
const healthCheckIdOf = (region: string): string => {
  const found = healthChecks.find(([, hc]) => hc.Properties.HealthCheckConfig.FullyQualifiedDomainName === n.regionalHost(region));
  assert.ok(found, `no health check for ${region}`);
  return found[0];
};
const refersTo = (ref: any, logicalId: string) => JSON.stringify(ref) === JSON.stringify({ Ref: logicalId });

test('every region has a fast HTTPS health check on /readyz with failure threshold 3', () => {
  assert.equal(healthChecks.length, n.regions.length);
  for (const region of n.regions) {
    const [, hc] = healthChecks.find(([id]) => id === healthCheckIdOf(region))!;
    const c = hc.Properties.HealthCheckConfig;
    assert.equal(c.Type, 'HTTPS');
    assert.equal(c.Port, 443);
    assert.equal(c.ResourcePath, '/readyz');
    assert.equal(c.RequestInterval, 10);
    assert.equal(c.FailureThreshold, 3);
  }
});

test('geolocation per continent to its region, each record health-checked and evaluating target health', () => {
  const geo = records.filter((r) => r.Name === `${n.apiHost}.` && r.GeoLocation?.ContinentCode);
  assert.deepEqual(geo.map((r) => r.GeoLocation.ContinentCode).sort(), Object.keys(cfg.geolocation).sort());
  for (const r of geo) {
    const region = cfg.geolocation[r.GeoLocation.ContinentCode as keyof typeof cfg.geolocation]!;
    assert.equal(r.AliasTarget.DNSName, `${n.regionalHost(region)}.`);
    assert.equal(r.AliasTarget.EvaluateTargetHealth, true);
    assert.equal(r.AliasTarget.HostedZoneId, cfg.hostedZone.id);
    assert.ok(refersTo(r.HealthCheckId, healthCheckIdOf(region)), `${r.SetIdentifier} is not tied to ${region}'s health check`);
  }
  // The geolocation answers cover every region, so none is active only as a fallback.
  assert.deepEqual([...new Set(geo.map((r) => r.AliasTarget.DNSName))].sort(), n.regions.map((r) => `${n.regionalHost(r)}.`).sort());
});

test('a default (*) geolocation record falls back to the latency tree', () => {
  const defaults = records.filter((r) => r.Name === `${n.apiHost}.` && r.GeoLocation?.CountryCode === '*');
  assert.equal(defaults.length, 1);
  assert.equal(defaults[0].AliasTarget.DNSName, `${n.latencyHost}.`);
  assert.equal(defaults[0].AliasTarget.EvaluateTargetHealth, true);
});

test('latency records beneath: one per region, health-checked, evaluating target health', () => {
  const latency = records.filter((r) => r.Name === `${n.latencyHost}.`);
  assert.deepEqual(latency.map((r) => r.Region).sort(), [...n.regions].sort());
  for (const r of latency) {
    assert.equal(r.Type, 'A');
    assert.equal(r.AliasTarget.DNSName, `${n.regionalHost(r.Region)}.`);
    assert.equal(r.AliasTarget.EvaluateTargetHealth, true);
    assert.ok(refersTo(r.HealthCheckId, healthCheckIdOf(r.Region)));
  }
});

test('an alarm on each health check state, with an action', () => {
  const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
  for (const region of n.regions) {
    const a = alarms.find((x) => x.Dimensions?.some((d: any) => refersTo(d.Value, healthCheckIdOf(region))));
    assert.ok(a, `no alarm on ${region}'s health check`);
    assert.equal(a.Namespace, 'AWS/Route53');
    assert.equal(a.MetricName, 'HealthCheckStatus');
    assert.equal(a.ComparisonOperator, 'LessThanThreshold');
    assert.equal(a.Threshold, 1);
    assert.equal(a.AlarmActions.length, 1);
  }
});

test('the CDN name aliases the distribution (A and AAAA)', () => {
  const cdn = records.filter((r) => r.Name === `${n.cdnHost}.`);
  assert.deepEqual(cdn.map((r) => r.Type).sort(), ['A', 'AAAA']);
  for (const r of cdn) {
    assert.equal(r.AliasTarget.HostedZoneId, 'Z2FDTNDATAQYW2');
    assert.ok(JSON.stringify(r.AliasTarget.DNSName).includes('ImportValue'), 'the distribution domain comes from the edge stack');
  }
});
