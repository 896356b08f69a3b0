// The regional tier: `akidb serve` (embeddings) and model-server (model bundles), by region.
//
// Replica staleness panels are not here yet: no service exports a staleness metric (another issue adds it).

import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import { graph, labelVariable, promDatasourceVariable, quantiles, single } from "./common";

const AKIDB = `tier="regional", region=~"$region"`;
const MS = `region=~"$region"`;

export function regionalDashboard(): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder("AkiDB Edge — regional tier")
    .uid("akidb-regional")
    .tags(["akidb", "regional"])
    .refresh("30s")
    .time({ from: "now-3h", to: "now" })
    .timezone("utc")
    .withVariable(promDatasourceVariable())
    .withVariable(labelVariable("region", "Region", `akidb_request_duration_seconds_count{tier="regional"}`))
    .withRow(new dashboard.RowBuilder("akidb serve"))
    .withPanel(
      graph("Request rate by route", "Answered requests per second, every status.", "reqps", [
        [`sum by (route) (rate(akidb_request_duration_seconds_count{${AKIDB}}[$__rate_interval]))`, "{{route}}"],
      ]),
    )
    .withPanel(
      graph(
        "Latency by route (p50, p95, p99)",
        "Time from request to response, from the service's histogram. The plan's budget is 25 ms at p95.",
        "s",
        quantiles("akidb_request_duration_seconds", AKIDB, "route"),
      ),
    )
    .withPanel(
      graph("Queue wait (p50, p95, p99)", "Time texts waited for an embedding worker.", "s", [
        ...quantiles("akidb_queue_wait_seconds", AKIDB, "region"),
      ]),
    )
    .withPanel(
      graph("Batch size", "Texts per model call: mean and p95.", "none", [
        [
          `sum by (region) (rate(akidb_batch_size_sum{${AKIDB}}[$__rate_interval])) / sum by (region) (rate(akidb_batch_size_count{${AKIDB}}[$__rate_interval]))`,
          "mean {{region}}",
        ],
        [
          `histogram_quantile(0.95, sum by (region, le) (rate(akidb_batch_size_bucket{${AKIDB}}[$__rate_interval])))`,
          "p95 {{region}}",
        ],
      ]),
    )
    .withPanel(
      graph("Tokens per second", "Tokens embedded per second.", "short", [
        [`sum by (region) (rate(akidb_tokens_total{${AKIDB}}[$__rate_interval]))`, "{{region}}"],
      ]),
    )
    .withPanel(
      graph("429s and errors", "429 (refused: queue full or timed out) and every other 4xx and 5xx, per second.", "reqps", [
        [`sum by (route) (rate(akidb_request_duration_seconds_count{${AKIDB}, status="429"}[$__rate_interval]))`, "429 {{route}}"],
        [
          `sum by (route, status) (rate(akidb_request_duration_seconds_count{${AKIDB}, status=~"[45]..", status!="429"}[$__rate_interval]))`,
          "{{status}} {{route}}",
        ],
      ]),
    )
    .withPanel(
      graph("Rejections by reason", "Requests refused: queue_full, timeout, invalid.", "reqps", [
        [`sum by (reason) (rate(akidb_rejections_total{${AKIDB}}[$__rate_interval]))`, "{{reason}}"],
      ]),
    )
    .withPanel(
      graph("SLIs", "Recorded by the Prometheus rules: embeddings within 25 ms, 5xx share, 429 share.", "percentunit", [
        [`akidb:embed_within_budget:ratio_rate5m{${AKIDB}}`, "within 25 ms {{region}}"],
        [`akidb:errors:ratio_rate5m{${AKIDB}}`, "5xx {{region}}"],
        [`akidb:throttled:ratio_rate5m{${AKIDB}}`, "429 {{region}}"],
      ]),
    )
    .withPanel(
      single("akidb serve ready", "Instances whose model is loaded (akidb_ready), of all scraped.", "none",
        `sum(akidb_ready{${AKIDB}})`, "ready"),
    )
    .withRow(new dashboard.RowBuilder("model-server"))
    .withPanel(
      graph("Request rate by route", "Requests per second by route template and status.", "reqps", [
        [`sum by (route, status) (rate(model_server_requests_total{${MS}}[$__rate_interval]))`, "{{status}} {{route}}"],
      ]),
    )
    .withPanel(
      graph(
        "Latency by route (p50, p95, p99)",
        "Time to the response head.",
        "s",
        quantiles("model_server_request_duration_seconds", MS, "route"),
      ),
    )
    .withPanel(
      graph("Bytes out", "Response body bytes per second.", "Bps", [
        [`sum by (region) (rate(model_server_response_bytes_total{${MS}}[$__rate_interval]))`, "{{region}}"],
      ]),
    )
    .withPanel(
      graph("Errors", "4xx and 5xx per second by status.", "reqps", [
        [`sum by (status) (rate(model_server_requests_total{${MS}, status=~"[45].."}[$__rate_interval]))`, "{{status}}"],
      ]),
    )
    .withPanel(
      single("model-server ready", "Instances whose registry and blob store are usable (model_server_ready).", "none",
        `sum(model_server_ready{${MS}})`, "ready"),
    );
}
