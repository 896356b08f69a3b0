// Building blocks shared by the dashboards: data sources, query and panel helpers.

import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import * as stat from "@grafana/grafana-foundation-sdk/stat";

// Panels point at data-source variables, so one dashboard JSON works in every Grafana it is imported into.
export const PROM: dashboard.DataSourceRef = { type: "prometheus", uid: "${datasource}" };
export const CLOUDWATCH: dashboard.DataSourceRef = { type: "cloudwatch", uid: "${cloudwatch}" };

export function promDatasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder("datasource").label("Prometheus").type("prometheus");
}

// A multi-value label variable ("All" matches every value, including series without the label's value).
export function labelVariable(name: string, label: string, metricSelector: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(PROM)
    .query({ query: `label_values(${metricSelector}, ${name})`, refId: `${name}-values` })
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue(".*");
}

export function prom(expr: string, legend: string, refId = "A"): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder().datasource(PROM).expr(expr).legendFormat(legend).refId(refId);
}

const REF_IDS = "ABCDEFGHIJ";

export function graph(
  title: string,
  description: string,
  unit: string,
  queries: Array<[expr: string, legend: string]>,
): timeseries.PanelBuilder {
  let panel = new timeseries.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(PROM)
    .unit(unit)
    .height(8)
    .span(12);
  queries.forEach(([expr, legend], i) => {
    panel = panel.withTarget(prom(expr, legend, REF_IDS[i]));
  });
  return panel;
}

export function single(title: string, description: string, unit: string, expr: string, legend: string): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(PROM)
    .unit(unit)
    .height(4)
    .span(6)
    .withTarget(prom(expr, legend));
}

// Latency quantiles of a histogram, one query each for p50, p95 and p99, by `by`.
export function quantiles(metric: string, selector: string, by: string): Array<[string, string]> {
  return [0.5, 0.95, 0.99].map((q) => [
    `histogram_quantile(${q}, sum by (${by}, le) (rate(${metric}_bucket{${selector}}[$__rate_interval])))`,
    `p${Math.round(q * 100)} {{${by.split(",")[0].trim()}}}`,
  ]);
}
