import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { names } from '../lib/config';
import { resourcesOf, synthDefault } from './helpers';

const { app, stacks, cfg } = synthDefault();
const n = names(cfg);
const templates = Object.fromEntries(Object.entries(stacks.regionals).map(([r, s]) => [r, Template.fromStack(s)]));
const modelBucket = (region: string) => {
  const found = resourcesOf(templates[region], 'AWS::S3::Bucket').find(([, b]) => b.Properties.BucketName === n.modelBucket(region));
  assert.ok(found, `no model bucket in ${region}`);
  return found;
};

test('every bucket of every stack blocks public access and refuses plain HTTP', () => {
  let count = 0;
  for (const stack of app.node.children.filter((c): c is any => 'templateOptions' in c)) {
    const t = Template.fromStack(stack);
    const policies = resourcesOf(t, 'AWS::S3::BucketPolicy').map(([, p]) => p.Properties);
    for (const [id, bucket] of resourcesOf(t, 'AWS::S3::Bucket')) {
      count++;
      assert.deepEqual(bucket.Properties.PublicAccessBlockConfiguration, {
        BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
      }, `${stack.stackName}/${id} is not fully private`);
      const policy = policies.find((p) => p.Bucket.Ref === id);
      const denyHttp = policy?.PolicyDocument.Statement.find((s: any) =>
        s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false');
      assert.ok(denyHttp, `${stack.stackName}/${id} accepts plain HTTP`);
    }
  }
  assert.equal(count, 2 * n.regions.length + 2, `only ${count} buckets seen`);
});

test('model buckets: versioned, encrypted, non-current versions expire', () => {
  for (const region of n.regions) {
    const [, b] = modelBucket(region);
    assert.deepEqual(b.Properties.VersioningConfiguration, { Status: 'Enabled' });
    assert.equal(b.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'AES256');
    const rule = b.Properties.LifecycleConfiguration.Rules.find((r: any) => r.NoncurrentVersionExpiration);
    assert.equal(rule.NoncurrentVersionExpiration.NoncurrentDays, cfg.buckets.noncurrentVersionExpirationDays);
    assert.equal(rule.Status, 'Enabled');
  }
});

test('the primary bucket replicates to every secondary region; secondaries replicate nowhere', () => {
  const [, primary] = modelBucket(cfg.regions.primary);
  const rc = primary.Properties.ReplicationConfiguration;
  assert.ok(rc?.Role, 'replication needs a role');
  assert.deepEqual(rc.Rules.map((r: any) => r.Destination.Bucket).sort(),
    cfg.regions.secondary.map((r) => `arn:aws:s3:::${n.modelBucket(r)}`).sort());
  for (const r of rc.Rules) {
    assert.equal(r.Status, 'Enabled');
    assert.deepEqual(r.DeleteMarkerReplication, { Status: 'Enabled' });
    assert.equal(r.Destination.ReplicationTime.Status, 'Enabled');
  }
  assert.equal(new Set(rc.Rules.map((r: any) => r.Priority)).size, rc.Rules.length, 'priorities must differ');
  for (const region of cfg.regions.secondary) assert.equal(modelBucket(region)[1].Properties.ReplicationConfiguration, undefined);
  // Replica buckets must exist before the rules naming them.
  assert.ok(stacks.regionals[cfg.regions.primary].dependencies.includes(stacks.regionals[cfg.regions.secondary[0]]));
});

test('both services sit behind the HTTPS listener with /readyz health checks; model routes go to model-server', () => {
  for (const region of n.regions) {
    const t = templates[region];
    const tgs = resourcesOf(t, 'AWS::ElasticLoadBalancingV2::TargetGroup').map(([, g]) => g.Properties);
    assert.deepEqual(tgs.map((g) => g.Port).sort(), [8080, 8081]);
    for (const g of tgs) {
      assert.equal(g.HealthCheckPath, '/readyz');
      assert.equal(g.TargetType, 'ip');
    }
    const [, listener] = resourcesOf(t, 'AWS::ElasticLoadBalancingV2::Listener')[0];
    assert.equal(listener.Properties.Protocol, 'HTTPS');
    assert.equal(listener.Properties.Port, 443);
    const [, rule] = resourcesOf(t, 'AWS::ElasticLoadBalancingV2::ListenerRule')[0];
    assert.deepEqual(rule.Properties.Conditions[0].PathPatternConfig.Values, ['/v1/models', '/v1/models/*', '/v1/blobs/*']);
  }
});

test('autoscaling on CPU and on request latency for each service', () => {
  for (const region of n.regions) {
    const policies = resourcesOf(templates[region], 'AWS::ApplicationAutoScaling::ScalingPolicy')
      .map(([, p]) => p.Properties.TargetTrackingScalingPolicyConfiguration);
    const cpu = policies.filter((p) => p.PredefinedMetricSpecification?.PredefinedMetricType === 'ECSServiceAverageCPUUtilization');
    const latency = policies.filter((p) => p.CustomizedMetricSpecification?.MetricName === 'TargetResponseTime');
    assert.equal(cpu.length, 2);
    assert.equal(latency.length, 2);
    for (const p of cpu) assert.equal(p.TargetValue, cfg.autoscaling.cpuTargetPercent);
    for (const p of latency) {
      assert.equal(p.TargetValue, cfg.autoscaling.averageLatencyTargetSeconds);
      assert.equal(p.CustomizedMetricSpecification.Namespace, 'AWS/ApplicationELB');
    }
    const targets = resourcesOf(templates[region], 'AWS::ApplicationAutoScaling::ScalableTarget').map(([, s]) => s.Properties);
    assert.deepEqual(targets.map((s) => [s.MinCapacity, s.MaxCapacity]).sort(), [
      [cfg.services.akidbServe.minTasks, cfg.services.akidbServe.maxTasks],
      [cfg.services.modelServer.minTasks, cfg.services.modelServer.maxTasks],
    ].sort());
  }
});

test('x86-64 tasks run the configured image tags; model-server is read-only; logs are kept for the configured days', () => {
  for (const region of n.regions) {
    const t = templates[region];
    const containers = resourcesOf(t, 'AWS::ECS::TaskDefinition').flatMap(([, td]) => {
      assert.equal(td.Properties.RuntimePlatform.CpuArchitecture, 'X86_64');
      return td.Properties.ContainerDefinitions;
    });
    const byName = Object.fromEntries(containers.map((c: any) => [c.Name, c]));
    assert.ok(JSON.stringify(byName['akidb-serve'].Image).includes(`akidb-serve:${cfg.services.akidbServe.imageTag}`));
    assert.ok(JSON.stringify(byName['model-server'].Image).includes(`model-server:${cfg.services.modelServer.imageTag}`));
    assert.ok(byName['model-server'].Command.includes('--read-only'));
    assert.deepEqual(byName['model-server'].DependsOn, [{ ContainerName: 'sync', Condition: 'SUCCESS' }]);
    assert.ok(byName['akidb-serve'].Command.includes(`https://${n.regionalHost(region)}/v1/models/${cfg.model.name}/${cfg.model.alias}/manifest.json`));
    for (const c of containers) assert.equal(c.LogConfiguration.LogDriver, 'awslogs');
    for (const [, lg] of resourcesOf(t, 'AWS::Logs::LogGroup')) assert.equal(lg.Properties.RetentionInDays, cfg.logs.retentionDays);
  }
});

test('each region publishes <region>.api.<domain> as an alias of its load balancer', () => {
  for (const region of n.regions) {
    const recs = resourcesOf(templates[region], 'AWS::Route53::RecordSet').map(([, r]) => r.Properties);
    const rec = recs.find((r) => r.Name === `${n.regionalHost(region)}.`);
    assert.ok(rec, `no record ${n.regionalHost(region)}`);
    assert.equal(rec.Type, 'A');
    assert.equal(rec.AliasTarget.EvaluateTargetHealth, true);
  }
});
