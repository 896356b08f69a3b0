// The CDN tier (us-east-1): one CloudFront distribution in front of everything, the Lambda@Edge embedding
// handler on the embed routes, the demo page and the .wasm from S3 through origin access control.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge } from './nag';
import { AkidbConfig, names } from './config';

export interface EdgeStackProps extends cdk.StackProps {
  readonly cfg: AkidbConfig;
  /** The Lambda@Edge package built by infra/lambda-edge/build.sh. */
  readonly edgeZip: string;
}

/** Status codes on which the origin group retries the failover region (timeouts and refused connections always do). */
export const FAILOVER_STATUS_CODES = [500, 502, 503, 504];
const ONE_YEAR = cdk.Duration.days(365);
/** Source of the CloudFront Function (plain JS, not compiled: CloudFront runs it as written). */
export const PRECOMPRESSED_FUNCTION = path.resolve(__dirname, '..', '..', 'lib', 'functions', 'precompressed.js');

export class EdgeStack extends cdk.Stack {
  public readonly distribution: cloudfront.Distribution;
  public readonly siteBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: EdgeStackProps) {
    super(scope, id, { ...props, env: { account: props.cfg.account, region: 'us-east-1' } });
    const { cfg } = props;
    const n = names(cfg);
    if (!fs.existsSync(props.edgeZip)) {
      throw new Error(`Lambda@Edge package ${props.edgeZip} is missing: run infra/lambda-edge/build.sh first (or pass -c edgeZip=PATH)`);
    }
    const zone = route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', { hostedZoneId: cfg.hostedZone.id, zoneName: cfg.hostedZone.name });

    const logBucket = new s3.Bucket(this, 'LogBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // CloudFront standard logs are written with ACLs.
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ id: 'expire-logs', expiration: cdk.Duration.days(90) }],
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
    acknowledge(logBucket, [
      { id: 'AwsSolutions-S1', reason: 'This is the access-log bucket itself; logging it into itself would loop.' },
    ]);

    this.siteBucket = new s3.Bucket(this, 'SiteBucket', {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      serverAccessLogsBucket: logBucket,
      serverAccessLogsPrefix: 'site-bucket/',
      lifecycleRules: [{ id: 'noncurrent-versions', noncurrentVersionExpiration: cdk.Duration.days(cfg.buckets.noncurrentVersionExpirationDays) }],
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });

    const certificate = new acm.Certificate(this, 'CdnCertificate', {
      domainName: n.cdnHost,
      validation: acm.CertificateValidation.fromDns(zone),
    });

    const embedFunction = new cloudfront.experimental.EdgeFunction(this, 'EmbedEdgeFunction', {
      description: 'akidb embedding handler (origin-request on /v1/embed, /v1/embeddings)',
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(props.edgeZip),
      memorySize: cfg.lambdaEdge.memoryMiB,
      timeout: cdk.Duration.seconds(cfg.lambdaEdge.timeoutSeconds),
    });
    acknowledge(embedFunction, [
      { id: 'AwsSolutions-L1', reason: 'nodejs22.x is the runtime the Lambda@Edge package is built and tested for (agreed interface); Lambda@Edge lags the newest runtimes.' },
      { id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]', reason: 'AWSLambdaBasicExecutionRole only lets the function write its own logs in whichever region it runs, which Lambda@Edge needs.' },
    ]);

    // The API origins: the primary is api.<domain>, Route 53's geolocation tree, so each edge location reaches
    // its nearest healthy region; the fallback pins the failover region for when that answer itself fails.
    const apiOrigin = (host: string) => new origins.HttpOrigin(host, {
      protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
      originSslProtocols: [cloudfront.OriginSslPolicy.TLS_V1_2],
      originShieldEnabled: true,
      originShieldRegion: cfg.regions.primary,
      connectionAttempts: 2,
      connectionTimeout: cdk.Duration.seconds(5),
      readTimeout: cdk.Duration.seconds(30),
    });
    const primaryOrigin = apiOrigin(n.apiHost);
    const apiGroup = new origins.OriginGroup({
      primaryOrigin,
      fallbackOrigin: apiOrigin(n.regionalHost(cfg.failoverRegion)),
      fallbackStatusCodes: FAILOVER_STATUS_CODES,
    });

    const headers = new cloudfront.ResponseHeadersPolicy(this, 'ResponseHeaders', {
      comment: 'akidb: CORS for the browser loader, CORP for cross-origin-isolated pages, security headers',
      corsBehavior: {
        accessControlAllowOrigins: ['*'],
        accessControlAllowMethods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
        accessControlAllowHeaders: ['Content-Type', 'Range', 'If-None-Match', 'If-Range', 'Authorization'],
        accessControlExposeHeaders: ['ETag', 'Content-Range', 'Content-Length', 'Accept-Ranges', 'Content-Location', 'X-Model-Version'],
        accessControlAllowCredentials: false,
        accessControlMaxAge: cdk.Duration.days(1),
        originOverride: true,
      },
      customHeadersBehavior: {
        customHeaders: [{ header: 'Cross-Origin-Resource-Policy', value: 'cross-origin', override: true }],
      },
      securityHeadersBehavior: {
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override: true },
        strictTransportSecurity: { accessControlMaxAge: ONE_YEAR, includeSubdomains: true, override: true },
      },
    });

    // Blobs are content-addressed: the path is the whole identity, and the origin says `immutable, max-age=31536000`.
    const blobCache = new cloudfront.CachePolicy(this, 'BlobCachePolicy', {
      comment: 'akidb /v1/blobs/*: key = path only; origin Cache-Control honoured up to a year',
      minTtl: cdk.Duration.seconds(0),
      defaultTtl: cdk.Duration.days(1),
      maxTtl: ONE_YEAR,
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.none(),
      headerBehavior: cloudfront.CacheHeaderBehavior.none(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      enableAcceptEncodingGzip: false, // model bytes are never compressed (clients verify them)
      enableAcceptEncodingBrotli: false,
    });
    // Listings and alias manifests say `max-age=60, stale-while-revalidate=300`; manifests by version say
    // immutable. A one-minute default and a one-year ceiling leave the origin's word in charge.
    const modelsCache = new cloudfront.CachePolicy(this, 'ModelsCachePolicy', {
      comment: 'akidb /v1/models*: origin max-age and stale-while-revalidate honoured; 60 s when absent',
      minTtl: cdk.Duration.seconds(0),
      defaultTtl: cdk.Duration.seconds(60),
      maxTtl: ONE_YEAR,
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.none(),
      headerBehavior: cloudfront.CacheHeaderBehavior.none(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      enableAcceptEncodingGzip: true, // JSON listings are compressed by the origin
      enableAcceptEncodingBrotli: true,
    });
    const siteCache = new cloudfront.CachePolicy(this, 'SiteCachePolicy', {
      comment: 'akidb static site: path + normalised Accept-Encoding (one entry per precompressed variant)',
      minTtl: cdk.Duration.seconds(0),
      defaultTtl: cdk.Duration.hours(1),
      maxTtl: ONE_YEAR,
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.none(),
      headerBehavior: cloudfront.CacheHeaderBehavior.none(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      enableAcceptEncodingGzip: true,
      enableAcceptEncodingBrotli: true,
    });
    const precompressed = new cloudfront.Function(this, 'PrecompressedVariants', {
      comment: 'akidb: serve the .br/.gz variant uploaded next to each compressible file',
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      code: cloudfront.FunctionCode.fromFile({ filePath: PRECOMPRESSED_FUNCTION }),
    });

    const cachedApi: cloudfront.BehaviorOptions = {
      origin: apiGroup,
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
      cachedMethods: cloudfront.CachedMethods.CACHE_GET_HEAD_OPTIONS,
      responseHeadersPolicy: headers,
    };
    const embed: cloudfront.BehaviorOptions = {
      // Not the origin group: CloudFront refuses origin groups on behaviours that allow POST.
      origin: primaryOrigin,
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
      cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
      originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
      responseHeadersPolicy: headers,
      compress: true,
      edgeLambdas: [{
        functionVersion: embedFunction.currentVersion,
        eventType: cloudfront.LambdaEdgeEventType.ORIGIN_REQUEST,
        includeBody: true,
      }],
    };

    this.distribution = new cloudfront.Distribution(this, 'Cdn', {
      comment: `akidb edge (${n.cdnHost})`,
      domainNames: [n.cdnHost],
      certificate,
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      enableIpv6: true,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_ALL,
      defaultRootObject: 'index.html',
      enableLogging: true,
      logBucket,
      logFilePrefix: 'cloudfront/',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.siteBucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: siteCache,
        responseHeadersPolicy: headers,
        compress: true, // small files without a variant; an object that has Content-Encoding is left alone
        functionAssociations: [{ function: precompressed, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
      },
      additionalBehaviors: {
        '/v1/blobs/*': { ...cachedApi, cachePolicy: blobCache, compress: false },
        '/v1/models*': { ...cachedApi, cachePolicy: modelsCache, compress: true },
        '/v1/embed': embed,
        '/v1/embeddings': embed,
      },
    });
    acknowledge(this.distribution, [
      { id: 'AwsSolutions-CFR1', reason: 'The model and the demo are offered worldwide; no geo restriction is wanted.' },
      { id: 'AwsSolutions-CFR2', reason: 'No WAF web ACL yet: the API is unauthenticated and read-only apart from embedding; rate limiting is the origin queue (429). Add a web ACL before charging per request.' },
    ]);

    new cdk.CfnOutput(this, 'DistributionId', { value: this.distribution.distributionId });
    new cdk.CfnOutput(this, 'DistributionDomain', { value: this.distribution.distributionDomainName });
    new cdk.CfnOutput(this, 'SiteBucketName', { value: this.siteBucket.bucketName });
    new cdk.CfnOutput(this, 'EmbedFunctionVersion', { value: embedFunction.currentVersion.functionArn });
  }
}
