//! Prometheus metrics of the embedding service.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Every metric the service exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// Request latency by route and status.
    pub requests: HistogramVec,
    /// Time a request's texts waited in the queue before a worker took them.
    pub queue_wait: Histogram,
    /// Texts per core call.
    pub batch_size: Histogram,
    /// Tokens embedded (rate() of it is tokens/s).
    pub tokens: IntCounter,
    /// Requests refused, by reason (`queue_full`, `timeout`, `invalid`).
    pub rejections: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.018, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = HistogramVec::new(
            HistogramOpts::new("akidb_request_duration_seconds", "HTTP request latency.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "status"],
        )
        .expect("valid metric");
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
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queue_wait.clone()),
            Box::new(batch_size.clone()),
            Box::new(tokens.clone()),
            Box::new(rejections.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            queue_wait,
            batch_size,
            tokens,
            rejections,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("text exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
