//! Prometheus metrics of the embedding service.

use akidb_http::{HttpMetrics, LATENCY_BUCKETS};
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the service exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// Requests, response bytes and latency by route, method and status (`akidb_requests_total`,
    /// `akidb_response_bytes_total`, `akidb_request_duration_seconds`), recorded by akidb-http's middleware.
    pub http: HttpMetrics,
    /// 1 once the model is loaded and warmed (`/readyz` is 200), else 0.
    pub ready: IntGauge,
    /// Time a request's texts waited in the queue before a worker took them.
    pub queue_wait: Histogram,
    /// Texts per core call.
    pub batch_size: Histogram,
    /// Tokens embedded (rate() of it is tokens/s).
    pub tokens: IntCounter,
    /// Requests refused, by reason (`queue_full`, `timeout`, `invalid`).
    pub rejections: IntCounterVec,
    /// 1 for the device the model runs on, once loaded: `device` (`cpu`, `cuda:0`), `name` (`cpu` or the
    /// GPU's name) and `requested` (the `--device` given, e.g. `auto`).
    pub device: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http = HttpMetrics::register("akidb", &registry).expect("valid, unique metrics");
        let ready =
            IntGauge::new("akidb_ready", "1 once the model is loaded and warmed.").expect("valid metric");
        let queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "akidb_queue_wait_seconds",
                "Time texts waited for an embedding worker.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("akidb_batch_size", "Texts per model call.")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )
        .expect("valid metric");
        let tokens = IntCounter::new("akidb_tokens_total", "Tokens embedded.").expect("valid metric");
        let rejections = IntCounterVec::new(
            Opts::new("akidb_rejections_total", "Requests refused, by reason."),
            &["reason"],
        )
        .expect("valid metric");
        let device = IntGaugeVec::new(
            Opts::new("akidb_device_info", "1 for the device the model runs on."),
            &["device", "name", "requested"],
        )
        .expect("valid metric");
        for m in [
            Box::new(ready.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queue_wait.clone()),
            Box::new(batch_size.clone()),
            Box::new(tokens.clone()),
            Box::new(rejections.clone()),
            Box::new(device.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Metrics {
            registry,
            http,
            ready,
            queue_wait,
            batch_size,
            tokens,
            rejections,
            device,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        akidb_http::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
