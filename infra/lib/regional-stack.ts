// One region of the origin tier: the model bucket (replicated from the primary region), and `model-server
// --read-only` + `akidb serve` on ECS Fargate behind an HTTPS application load balancer.
import * as cdk from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { acknowledge } from './nag';
import { AkidbConfig, ServiceConfig, names } from './config';

export interface RegionalStackProps extends cdk.StackProps {
  readonly cfg: AkidbConfig;
  readonly region: string;
}

/** Where deploy.sh puts model-server's data directory (SQLite registry + blobs) in the model bucket. */
export const MODEL_SERVER_PREFIX = 'model-server/';
const AKIDB_PORT = 8080;
const MODEL_SERVER_PORT = 8081;
const IMAGE_UID = '65532';

export class RegionalStack extends cdk.Stack {
  private readonly zones: string[];
  public readonly modelBucket: s3.Bucket;
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;

  constructor(scope: Construct, id: string, props: RegionalStackProps) {
    super(scope, id, { ...props, env: { account: props.cfg.account, region: props.region } });
    const { cfg, region } = props;
    // Explicit zones: synth must not look them up. Every deployed region has an `a` and a `c` zone
    // (ap-northeast-1 has no `b`).
    this.zones = [`${region}a`, `${region}c`];
    const n = names(cfg);
    const isPrimary = region === cfg.regions.primary;
    const zone = route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', { hostedZoneId: cfg.hostedZone.id, zoneName: cfg.hostedZone.name });

    const logBucket = new s3.Bucket(this, 'LogBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED, // ALB access logs accept SSE-S3 only
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      lifecycleRules: [{ id: 'expire-logs', expiration: cdk.Duration.days(90) }],
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
    acknowledge(logBucket, [
      { id: 'AwsSolutions-S1', reason: 'This is the access-log bucket itself; logging it into itself would loop.' },
    ]);

    this.modelBucket = new s3.Bucket(this, 'ModelBucket', {
      // A fixed name: the primary region's replication rules name the other regions' buckets before they exist here.
      bucketName: n.modelBucket(region),
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      serverAccessLogsBucket: logBucket,
      serverAccessLogsPrefix: 'model-bucket/',
      lifecycleRules: [{
        id: 'noncurrent-versions',
        noncurrentVersionExpiration: cdk.Duration.days(cfg.buckets.noncurrentVersionExpirationDays),
        abortIncompleteMultipartUploadAfter: cdk.Duration.days(7),
      }],
      replicationRules: isPrimary
        ? cfg.regions.secondary.map((r, i) => ({
          id: `replicate-to-${r}`,
          destination: s3.Bucket.fromBucketArn(this, `Replica-${r}`, `arn:aws:s3:::${n.modelBucket(r)}`),
          priority: i + 1,
          deleteMarkerReplication: true,
          // Replication Time Control: 99.99 % of objects within 15 minutes, with metrics to alarm on.
          replicationTimeControl: s3.ReplicationTimeValue.FIFTEEN_MINUTES,
          metrics: s3.ReplicationTimeValue.FIFTEEN_MINUTES,
        }))
        : undefined,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    const flowLogGroup = new logs.LogGroup(this, 'FlowLogs', { retention: cfg.logs.retentionDays as logs.RetentionDays });
    // Public subnets only: tasks get public IPs for ECR, S3 and CloudWatch, instead of a NAT gateway per AZ per
    // region; their security group admits the load balancer alone.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      availabilityZones: this.zones,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup) } },
    });

    acknowledge(vpc, [{
      id: 'CloudFormation-Validate::W3010',
      reason: 'Zone names are fixed at synth so that synth needs no AWS lookup; a and c exist in every configured region.',
    }]);

    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });

    const cert = new acm.Certificate(this, 'Certificate', {
      domainName: n.apiHost,
      subjectAlternativeNames: [`*.api.${cfg.domain}`], // <region>.api and latency.api
      validation: acm.CertificateValidation.fromDns(zone),
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'Alb', {
      vpc,
      internetFacing: true,
      dropInvalidHeaderFields: true,
      idleTimeout: cdk.Duration.seconds(60),
    });
    this.loadBalancer.logAccessLogs(logBucket, 'alb');
    acknowledge(this.loadBalancer, [
      {
        id: 'AwsSolutions-EC23',
        reason: `api.${cfg.domain} is a public API (CloudFront, Route 53 health checkers and direct clients reach it); only 443 is open.`,
      },
    ]);
    const listener = this.loadBalancer.addListener('Https', {
      port: 443,
      certificates: [cert],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      open: true,
    });

    const alarmTopic = new sns.Topic(this, 'Alarms', { enforceSSL: true });
    acknowledge(alarmTopic, [
      { id: 'AwsSolutions-SNS2', reason: 'Alarm notifications carry no data; a customer-managed KMS key would cost more than it protects.' },
    ]);
    if (cfg.alarms.email) alarmTopic.addSubscription(new subs.EmailSubscription(cfg.alarms.email));

    // model-server: an init container copies the published data directory out of this region's bucket (the
    // primary's copy, or its replica) into task storage; model-server then serves it read-only.
    const msTask = this.taskDefinition('ModelServerTask', cfg.services.modelServer);
    msTask.addVolume({ name: 'data' });
    const sync = msTask.addContainer('sync', {
      image: ecs.ContainerImage.fromRegistry(cfg.services.syncImage),
      essential: false,
      entryPoint: ['sh', '-c'],
      command: [`aws s3 sync --only-show-errors s3://${n.modelBucket(region)}/${MODEL_SERVER_PREFIX} /data/ && chown -R ${IMAGE_UID}:${IMAGE_UID} /data`],
      logging: this.logDriver('SyncLogs', 'sync', cfg),
    });
    sync.addMountPoints({ containerPath: '/data', sourceVolume: 'data', readOnly: false });
    // Read-only, and only model-server's prefix (the grantRead helper would add GetBucket*/List* wildcards).
    msTask.addToTaskRolePolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [this.modelBucket.arnForObjects(`${MODEL_SERVER_PREFIX}*`)],
    }));
    msTask.addToTaskRolePolicy(new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [this.modelBucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${MODEL_SERVER_PREFIX}*`] } },
    }));
    acknowledge(msTask.taskRole, [{
      id: 'AwsSolutions-IAM5[Resource::<ModelBucketB33D855B.Arn>/model-server/*]',
      reason: 'Object-level read needs a key wildcard; it is limited to the model-server/ prefix of this region\'s bucket.',
    }]);
    const ms = msTask.addContainer('model-server', {
      image: this.image('ModelServerRepo', n.repositories.modelServer, cfg.services.modelServer.imageTag),
      entryPoint: ['/model-server'],
      command: ['serve', '--data', '/data', '--addr', `0.0.0.0:${MODEL_SERVER_PORT}`, '--read-only', '--json-logs'],
      portMappings: [{ containerPort: MODEL_SERVER_PORT }],
      logging: this.logDriver('ModelServerLogs', 'model-server', cfg),
    });
    ms.addMountPoints({ containerPath: '/data', sourceVolume: 'data', readOnly: true });
    ms.addContainerDependencies({ container: sync, condition: ecs.ContainerDependencyCondition.SUCCESS });

    // akidb serve loads its bundle from this region's model-server, through the regional name.
    const akTask = this.taskDefinition('AkidbServeTask', cfg.services.akidbServe);
    akTask.addContainer('akidb-serve', {
      image: this.image('AkidbServeRepo', n.repositories.akidbServe, cfg.services.akidbServe.imageTag),
      entryPoint: ['/akidb'],
      command: ['serve', '--addr', `0.0.0.0:${AKIDB_PORT}`, '--bundle-url',
        `https://${n.regionalHost(region)}/v1/models/${cfg.model.name}/${cfg.model.alias}/manifest.json`],
      portMappings: [{ containerPort: AKIDB_PORT }],
      logging: this.logDriver('AkidbServeLogs', 'akidb-serve', cfg),
    });

    const akidb = this.service('AkidbServe', cluster, akTask, cfg.services.akidbServe);
    const modelServer = this.service('ModelServer', cluster, msTask, cfg.services.modelServer);

    const akTargets = listener.addTargets('AkidbServeTargets', {
      port: AKIDB_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [akidb.loadBalancerTarget({ containerName: 'akidb-serve', containerPort: AKIDB_PORT })],
      healthCheck: { path: cfg.healthCheck.path, interval: cdk.Duration.seconds(10), healthyThresholdCount: 2, unhealthyThresholdCount: 3 },
      deregistrationDelay: cdk.Duration.seconds(30),
    });
    const msTargets = listener.addTargets('ModelServerTargets', {
      priority: 10,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/v1/models', '/v1/models/*', '/v1/blobs/*'])],
      port: MODEL_SERVER_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [modelServer.loadBalancerTarget({ containerName: 'model-server', containerPort: MODEL_SERVER_PORT })],
      healthCheck: { path: cfg.healthCheck.path, interval: cdk.Duration.seconds(10), healthyThresholdCount: 2, unhealthyThresholdCount: 3 },
      deregistrationDelay: cdk.Duration.seconds(30),
    });

    for (const [name, service, tg, sc] of [
      ['AkidbServe', akidb, akTargets, cfg.services.akidbServe],
      ['ModelServer', modelServer, msTargets, cfg.services.modelServer],
    ] as const) {
      const scaling = service.autoScaleTaskCount({ minCapacity: sc.minTasks, maxCapacity: sc.maxTasks });
      scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: cfg.autoscaling.cpuTargetPercent });
      // Target tracking takes plain statistics only, so it tracks the mean; the alarm below watches p95.
      scaling.scaleToTrackCustomMetric('Latency', {
        metric: tg.metrics.targetResponseTime({ statistic: 'Average', period: cdk.Duration.minutes(1) }),
        targetValue: cfg.autoscaling.averageLatencyTargetSeconds,
      });
      const p95 = tg.metrics.targetResponseTime({ statistic: 'p95', period: cdk.Duration.minutes(1) });
      new cloudwatch.Alarm(this, `${name}P95LatencyAlarm`, {
        alarmDescription: `${name} p95 latency in ${region} above ${cfg.alarms.p95LatencySeconds} s`,
        metric: p95,
        threshold: cfg.alarms.p95LatencySeconds,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(new cwActions.SnsAction(alarmTopic));
      new cloudwatch.Alarm(this, `${name}5xxAlarm`, {
        alarmDescription: `${name} 5xx in ${region} above ${cfg.alarms.http5xxPerMinute} a minute`,
        metric: tg.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { statistic: 'Sum', period: cdk.Duration.minutes(1) }),
        threshold: cfg.alarms.http5xxPerMinute,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(new cwActions.SnsAction(alarmTopic));
    }

    // <region>.api.<domain>: this region's own name; the DNS stack's health checks and routing tree point here.
    new route53.ARecord(this, 'RegionalRecord', {
      zone,
      recordName: n.regionalHost(region),
      target: route53.RecordTarget.fromAlias(new targets.LoadBalancerTarget(this.loadBalancer, { evaluateTargetHealth: true })),
    });

    for (const task of [akTask, msTask]) {
      acknowledge(task.executionRole!, [{
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: 'ecr:GetAuthorizationToken has no resource-level permissions; CDK scopes the pull and log actions themselves.',
      }]);
    }
    if (isPrimary) {
      const objectWildcards = ['<ModelBucketB33D855B.Arn>/*', ...cfg.regions.secondary.map((r) => `arn:aws:s3:::${n.modelBucket(r)}/*`)];
      acknowledge(this.modelBucket, objectWildcards.map((resource) => ({
        id: `AwsSolutions-IAM5[Resource::${resource}]`,
        reason: 'S3 replication reads every object version of the source bucket and writes replicas into each destination bucket.',
      })));
    }
    new cdk.CfnOutput(this, 'LoadBalancerDns', { value: this.loadBalancer.loadBalancerDnsName });
    new cdk.CfnOutput(this, 'ClusterName', { value: cluster.clusterName });
    new cdk.CfnOutput(this, 'AkidbServeService', { value: akidb.serviceName });
    new cdk.CfnOutput(this, 'ModelServerService', { value: modelServer.serviceName });
    new cdk.CfnOutput(this, 'ModelBucketName', { value: this.modelBucket.bucketName });
  }

  /** The zones the VPC uses; overriding the getter keeps the VPC's check from asking AWS for the region's list. */
  override get availabilityZones(): string[] {
    return this.zones;
  }

  private taskDefinition(id: string, sc: ServiceConfig): ecs.FargateTaskDefinition {
    return new ecs.FargateTaskDefinition(this, id, {
      cpu: sc.cpu,
      memoryLimitMiB: sc.memoryMiB,
      // The images are x86-64 (the OCI archives *-amd64.oci.tar).
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
  }

  private image(id: string, repositoryName: string, tag: string): ecs.ContainerImage {
    return ecs.ContainerImage.fromEcrRepository(ecr.Repository.fromRepositoryName(this, id, repositoryName), tag);
  }

  private logDriver(id: string, prefix: string, cfg: AkidbConfig): ecs.LogDriver {
    const logGroup = new logs.LogGroup(this, id, {
      retention: cfg.logs.retentionDays as logs.RetentionDays,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    return ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: prefix });
  }

  private service(id: string, cluster: ecs.Cluster, taskDefinition: ecs.FargateTaskDefinition, sc: ServiceConfig): ecs.FargateService {
    return new ecs.FargateService(this, id, {
      cluster,
      taskDefinition,
      desiredCount: sc.minTasks,
      assignPublicIp: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      // A deployment whose tasks never pass /readyz rolls back to the previous task definition by itself.
      circuitBreaker: { enable: true, rollback: true },
      healthCheckGracePeriod: cdk.Duration.seconds(120),
    });
  }
}
