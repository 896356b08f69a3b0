// The device tier: `akidb serve` on each Jetson, and the host's CPU and memory from node_exporter.
//
// GPU utilisation and temperature are not here: on a Jetson they come from tegrastats, which no exporter
// packaged for this project exports yet, and node_exporter's thermal collectors find no sensor on the test
// machine, so no query for them could be proven against a live Prometheus.

import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import { graph, labelVariable, promDatasourceVariable, quantiles } from "./common";

const DEV = `tier="device", region=~"$region", device=~"$device"`;

export function deviceDashboard(): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder("AkiDB Edge — device tier")
    .uid("akidb-device")
    .tags(["akidb", "device", "jetson"])
    .refresh("30s")
    .time({ from: "now-3h", to: "now" })
    .timezone("utc")
    .withVariable(promDatasourceVariable())
    .withVariable(labelVariable("region", "Region", `akidb_request_duration_seconds_count{tier="device"}`))
    .withVariable(labelVariable("device", "Device", `akidb_request_duration_seconds_count{tier="device", region=~"$region"}`))
    .withPanel(
      graph("QPS per device", "Answered requests per second.", "reqps", [
        [`sum by (device) (rate(akidb_request_duration_seconds_count{${DEV}}[$__rate_interval]))`, "{{device}}"],
      ]),
    )
    .withPanel(
      graph("Latency per device (p50, p95, p99)", "Every route.", "s", quantiles("akidb_request_duration_seconds", DEV, "device")),
    )
    .withPanel(
      graph("Tokens per second per device", "Tokens embedded per second.", "short", [
        [`sum by (device) (rate(akidb_tokens_total{${DEV}}[$__rate_interval]))`, "{{device}}"],
      ]),
    )
    .withPanel(
      graph("Errors per device", "4xx (429: refused, queue full or timed out) and 5xx per second, by status.", "reqps", [
        [
          `sum by (device, status) (rate(akidb_request_duration_seconds_count{${DEV}, status=~"[45].."}[$__rate_interval]))`,
          "{{status}} {{device}}",
        ],
      ]),
    )
    .withPanel(
      graph("CPU utilisation", "Share of CPU time not idle, all cores (node_exporter).", "percentunit", [
        [`1 - avg by (device) (rate(node_cpu_seconds_total{${DEV}, mode="idle"}[$__rate_interval]))`, "{{device}}"],
      ]),
    )
    .withPanel(
      graph("Memory in use", "MemTotal - MemAvailable (node_exporter).", "bytes", [
        [`node_memory_MemTotal_bytes{${DEV}} - node_memory_MemAvailable_bytes{${DEV}}`, "{{device}}"],
      ]),
    );
}
