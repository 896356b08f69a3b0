// The edge: CloudFront and Lambda@Edge, through Grafana's CloudWatch data source.
//
// CloudFront publishes its metrics in us-east-1 with Region=Global; CacheHitRate and OriginLatency are
// "additional metrics" that must be turned on for the distribution. Lambda@Edge runs in the region
// nearest the viewer and logs there, to /aws/lambda/us-east-1.<function>; its errors are also counted
// by CloudFront (LambdaExecutionError, LambdaValidationError). Cold starts are REPORT lines that carry
// @initDuration. tests/check_cloudwatch.py checks every name here against cloudwatch-metrics.json.

import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as cloudwatch from "@grafana/grafana-foundation-sdk/cloudwatch";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import { CLOUDWATCH } from "./common";

const CLOUDFRONT_DIMS = { DistributionId: "$distribution", Region: "Global" };

function cfMetric(refId: string, metric: string, statistic: string): cloudwatch.CloudWatchMetricsQueryBuilder {
  return new cloudwatch.CloudWatchMetricsQueryBuilder()
    .datasource(CLOUDWATCH)
    .refId(refId)
    .queryMode(cloudwatch.CloudWatchQueryMode.Metrics)
    .metricQueryType(cloudwatch.MetricQueryType.Search)
    .metricEditorMode(cloudwatch.MetricEditorMode.Builder)
    .region("us-east-1")
    .namespace("AWS/CloudFront")
    .metricName(metric)
    .dimensions(CLOUDFRONT_DIMS)
    .matchExact(true)
    .statistic(statistic)
    .period("")
    .label(`${metric} ${statistic}`);
}

function lambdaMetric(refId: string, metric: string, statistic: string): cloudwatch.CloudWatchMetricsQueryBuilder {
  return new cloudwatch.CloudWatchMetricsQueryBuilder()
    .datasource(CLOUDWATCH)
    .refId(refId)
    .queryMode(cloudwatch.CloudWatchQueryMode.Metrics)
    .metricQueryType(cloudwatch.MetricQueryType.Search)
    .metricEditorMode(cloudwatch.MetricEditorMode.Builder)
    .region("$edge_region")
    .namespace("AWS/Lambda")
    .metricName(metric)
    .dimensions({ FunctionName: "us-east-1.$function" })
    .matchExact(true)
    .statistic(statistic)
    .period("")
    .label(`${metric} ${statistic}`);
}

function panel(title: string, description: string, unit: string): timeseries.PanelBuilder {
  return new timeseries.PanelBuilder().title(title).description(description).datasource(CLOUDWATCH).unit(unit).height(8).span(12);
}

function textVariable(name: string, label: string, value: string): dashboard.TextBoxVariableBuilder {
  return new dashboard.TextBoxVariableBuilder(name).label(label).defaultValue(value);
}

export function edgeDashboard(): dashboard.DashboardBuilder {
  const coldStarts = new cloudwatch.CloudWatchLogsQueryBuilder()
    .datasource(CLOUDWATCH)
    .refId("A")
    .queryMode(cloudwatch.CloudWatchQueryMode.Logs)
    .region("$edge_region")
    .logGroupNames(["/aws/lambda/us-east-1.$function"])
    .expression(
      'filter @type = "REPORT" | stats count(*) as invocations, count(@initDuration) as coldStarts, ' +
        "avg(@initDuration) as initMs by bin(5m)",
    );
  return new dashboard.DashboardBuilder("AkiDB Edge — edge (CloudFront, Lambda@Edge)")
    .uid("akidb-edge")
    .tags(["akidb", "edge", "cloudfront", "lambda-edge"])
    .refresh("1m")
    .time({ from: "now-6h", to: "now" })
    .timezone("utc")
    .withVariable(new dashboard.DatasourceVariableBuilder("cloudwatch").label("CloudWatch").type("cloudwatch"))
    .withVariable(textVariable("distribution", "CloudFront distribution id", "E0000000000000"))
    .withVariable(textVariable("function", "Lambda@Edge function name", "akidb-edge"))
    .withVariable(
      new dashboard.CustomVariableBuilder("edge_region")
        .label("Lambda@Edge region (where it ran)")
        .values(
          "us-east-1,us-west-2,eu-west-1,eu-central-1,ap-northeast-1,ap-southeast-1,ap-southeast-2,ap-south-1,sa-east-1,af-south-1",
        ),
    )
    .withRow(new dashboard.RowBuilder("CloudFront"))
    .withPanel(panel("Requests", "Viewer requests (Sum per period).", "short").withTarget(cfMetric("A", "Requests", "Sum")))
    .withPanel(
      panel("Cache hit rate", "Share of cacheable requests served from the edge cache (additional metric).", "percent").withTarget(
        cfMetric("A", "CacheHitRate", "Average"),
      ),
    )
    .withPanel(
      panel("Error rates", "Share of responses with 4xx and 5xx status.", "percent")
        .withTarget(cfMetric("A", "4xxErrorRate", "Average"))
        .withTarget(cfMetric("B", "5xxErrorRate", "Average")),
    )
    .withPanel(
      panel("Bytes downloaded and origin latency", "Bytes to viewers; origin first-byte latency p95 (additional metric).", "bytes")
        .withTarget(cfMetric("A", "BytesDownloaded", "Sum"))
        .withTarget(cfMetric("B", "OriginLatency", "p95")),
    )
    .withRow(new dashboard.RowBuilder("Lambda@Edge"))
    .withPanel(
      panel("Duration", "Run time per invocation, in the selected region.", "ms")
        .withTarget(lambdaMetric("A", "Duration", "Average"))
        .withTarget(lambdaMetric("B", "Duration", "p95")),
    )
    .withPanel(
      panel("Invocations, errors and throttles", "Per period, in the selected region.", "short")
        .withTarget(lambdaMetric("A", "Invocations", "Sum"))
        .withTarget(lambdaMetric("B", "Errors", "Sum"))
        .withTarget(lambdaMetric("C", "Throttles", "Sum")),
    )
    .withPanel(
      panel("Function errors seen by CloudFront", "All regions: execution errors and invalid responses.", "percent")
        .withTarget(cfMetric("A", "LambdaExecutionError", "Sum"))
        .withTarget(cfMetric("B", "LambdaValidationError", "Sum")),
    )
    .withPanel(panel("Cold starts", "REPORT lines with an Init Duration, from the function's logs.", "short").withTarget(coldStarts));
}
