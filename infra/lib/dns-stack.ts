// Route 53 (records live in the existing hosted zone; Route 53 health-check metrics are in us-east-1):
//   cdn.<domain>              alias → CloudFront
//   api.<domain>              geolocation: each continent → <region>.api (health-checked), `*` → latency.api
//   latency.api.<domain>      latency: one record per region → <region>.api (health-checked)
//   <region>.api.<domain>     alias → that region's load balancer (made by the regional stack)
// A continent whose region fails falls to `*`, and `*` answers the nearest healthy region by latency.
import * as cdk from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { acknowledge } from './nag';
import { AkidbConfig, Continent, names } from './config';

export interface DnsStackProps extends cdk.StackProps {
  readonly cfg: AkidbConfig;
  readonly distribution: cloudfront.IDistribution;
}

/** CloudFront's fixed hosted zone id for alias records. */
const CLOUDFRONT_ZONE_ID = 'Z2FDTNDATAQYW2';

export class DnsStack extends cdk.Stack {
  public readonly healthChecks: Record<string, route53.CfnHealthCheck> = {};

  constructor(scope: Construct, id: string, props: DnsStackProps) {
    super(scope, id, { ...props, env: { account: props.cfg.account, region: 'us-east-1' } });
    const { cfg } = props;
    const n = names(cfg);
    const zoneId = cfg.hostedZone.id;
    const fqdn = (host: string) => `${host}.`;

    const topic = new sns.Topic(this, 'HealthAlarms', { enforceSSL: true });
    acknowledge(topic, [
      { id: 'AwsSolutions-SNS2', reason: 'Alarm notifications carry no data; a customer-managed KMS key would cost more than it protects.' },
    ]);
    if (cfg.alarms.email) topic.addSubscription(new subs.EmailSubscription(cfg.alarms.email));

    for (const region of n.regions) {
      const hc = new route53.CfnHealthCheck(this, `HealthCheck-${region}`, {
        healthCheckConfig: {
          type: 'HTTPS',
          fullyQualifiedDomainName: n.regionalHost(region),
          port: 443,
          resourcePath: cfg.healthCheck.path,
          requestInterval: cfg.healthCheck.intervalSeconds,
          failureThreshold: cfg.healthCheck.failureThreshold,
          enableSni: true,
          measureLatency: true,
        },
        healthCheckTags: [{ key: 'Name', value: `akidb-${region}` }, { key: 'akidb:region', value: region }],
      });
      this.healthChecks[region] = hc;
      // `Ref` of a health check is its id (the same value as GetAtt HealthCheckId, which moto cannot resolve).

      new cloudwatch.Alarm(this, `HealthAlarm-${region}`, {
        alarmName: `akidb-health-${region}`,
        alarmDescription: `${n.regionalHost(region)}${cfg.healthCheck.path} is failing Route 53 health checks`,
        metric: new cloudwatch.Metric({
          namespace: 'AWS/Route53',
          metricName: 'HealthCheckStatus',
          dimensionsMap: { HealthCheckId: hc.ref },
          statistic: 'Minimum',
          period: cdk.Duration.minutes(1),
        }),
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        threshold: 1,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }).addAlarmAction(new cwActions.SnsAction(topic));

      // Latency fallback: answers the nearest region whose health check passes.
      new route53.CfnRecordSet(this, `Latency-${region}`, {
        hostedZoneId: zoneId,
        name: fqdn(n.latencyHost),
        type: 'A',
        setIdentifier: `latency-${region}`,
        region,
        healthCheckId: hc.ref,
        aliasTarget: { dnsName: fqdn(n.regionalHost(region)), hostedZoneId: zoneId, evaluateTargetHealth: true },
      });
    }

    for (const [continent, region] of Object.entries(cfg.geolocation) as [Continent, string][]) {
      new route53.CfnRecordSet(this, `Geo-${continent}`, {
        hostedZoneId: zoneId,
        name: fqdn(n.apiHost),
        type: 'A',
        setIdentifier: `geo-${continent}`,
        geoLocation: { continentCode: continent },
        healthCheckId: this.healthChecks[region].ref,
        aliasTarget: { dnsName: fqdn(n.regionalHost(region)), hostedZoneId: zoneId, evaluateTargetHealth: true },
      });
    }
    // The default record: viewers on unlisted continents, and every continent whose own region is unhealthy.
    new route53.CfnRecordSet(this, 'Geo-Default', {
      hostedZoneId: zoneId,
      name: fqdn(n.apiHost),
      type: 'A',
      setIdentifier: 'geo-default',
      geoLocation: { countryCode: '*' },
      aliasTarget: { dnsName: fqdn(n.latencyHost), hostedZoneId: zoneId, evaluateTargetHealth: true },
    });

    for (const type of ['A', 'AAAA']) {
      new route53.CfnRecordSet(this, `Cdn${type}`, {
        hostedZoneId: zoneId,
        name: fqdn(n.cdnHost),
        type,
        aliasTarget: { dnsName: props.distribution.distributionDomainName, hostedZoneId: CLOUDFRONT_ZONE_ID, evaluateTargetHealth: false },
      });
    }

    for (const region of n.regions) {
      new cdk.CfnOutput(this, `HealthCheckId${region.replace(/-/g, '')}`, { value: this.healthChecks[region].ref });
    }
  }
}
