//! Prometheus metrics: requests, response bytes and latency histograms by route, method and status.
//!
//! Latency is measured until the response head is ready (bodies of blobs are memory-mapped, so sending
//! them is the kernel's work); bytes are the response body's length as sent (0 for `HEAD` and `304`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Series {
    requests: u64,
    bytes: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
}

/// The counters, keyed by `(route, method, status)`.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, bytes: u64, latency: Duration) {
        let secs = latency.as_secs_f64();
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = map
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default();
        s.requests += 1;
        s.bytes += bytes;
        s.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let labels = |(r, m, s): &(String, String, u16)| {
            format!("route=\"{}\",method=\"{}\",status=\"{s}\"", escape(r), escape(m))
        };
        out.push_str("# HELP model_server_requests_total HTTP requests served.\n# TYPE model_server_requests_total counter\n");
        for (k, s) in map.iter() {
            let _ = writeln!(out, "model_server_requests_total{{{}}} {}", labels(k), s.requests);
        }
        out.push_str("# HELP model_server_response_bytes_total Response body bytes sent.\n# TYPE model_server_response_bytes_total counter\n");
        for (k, s) in map.iter() {
            let _ = writeln!(
                out,
                "model_server_response_bytes_total{{{}}} {}",
                labels(k),
                s.bytes
            );
        }
        out.push_str("# HELP model_server_request_duration_seconds Time to the response head.\n# TYPE model_server_request_duration_seconds histogram\n");
        for (k, s) in map.iter() {
            let l = labels(k);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "model_server_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "model_server_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.requests
            );
            let _ = writeln!(out, "model_server_request_duration_seconds_sum{{{l}}} {}", s.sum);
            let _ = writeln!(
                out,
                "model_server_request_duration_seconds_count{{{l}}} {}",
                s.requests
            );
        }
        out
    }
}
