//! One request-metrics middleware for every service, on the `prometheus` crate.
//!
//! Labels are bounded so that no client can grow the number of series: `route` is the matched route
//! template (`unmatched` when none matched, whatever the path), `method` one of a fixed list (`other` for
//! anything else, e.g. a made-up `FOO`), `status` the numeric status.

use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Latency buckets, seconds: from a cached manifest (0.1 ms) to a batch of long texts (10 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.018, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

const LABELS: &[&str] = &["route", "method", "status"];

/// The request series of one service: `{ns}_requests_total`, `{ns}_response_bytes_total` and
/// `{ns}_request_duration_seconds`, labelled by route template, method and status.
///
/// ```
/// let registry = prometheus::Registry::new();
/// let http = akidb_http::HttpMetrics::register("demo", &registry).unwrap();
/// http.observe("/v1/embed", &axum::http::Method::POST, 200, 42, 0.005);
/// assert_eq!(http.requests_total("/v1/embed", "POST", 200), 1);
/// ```
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    bytes: IntCounterVec,
    duration: HistogramVec,
}

/// The method label: the methods the services route, and `other` for the rest.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

impl HttpMetrics {
    /// Creates the three series under `namespace` and registers them in `registry`.
    pub fn register(namespace: &str, registry: &Registry) -> prometheus::Result<HttpMetrics> {
        let requests = IntCounterVec::new(
            Opts::new(format!("{namespace}_requests_total"), "HTTP requests answered."),
            LABELS,
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                format!("{namespace}_response_bytes_total"),
                "Response body bytes (as announced by the response; 0 for HEAD).",
            ),
            LABELS,
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                format!("{namespace}_request_duration_seconds"),
                "Time from the request to the response head.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            LABELS,
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(HttpMetrics {
            requests,
            bytes,
            duration,
        })
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &Method, status: u16, bytes: u64, seconds: f64) {
        let status = status.to_string();
        let labels = [route, method_label(method), status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.bytes.with_label_values(&labels).inc_by(bytes);
        self.duration.with_label_values(&labels).observe(seconds);
    }

    /// The count recorded so far for one series (0 when it doesn't exist).
    pub fn requests_total(&self, route: &str, method: &str, status: u16) -> u64 {
        self.requests
            .get_metric_with_label_values(&[route, method, &status.to_string()])
            .map_or(0, |c| c.get())
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(metrics, akidb_http::observe)`. Apply it with
/// `Router::route_layer` or as the outermost layer; the route label comes from [`MatchedPath`].
pub async fn observe(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    // A streamed body (a blob read from disk or S3) has no exact size hint; its Content-Length says what
    // the answer carries. Counted as declared: a client that leaves half-way still counts in full.
    let bytes = if method == Method::HEAD {
        0
    } else {
        response.body().size_hint().exact().unwrap_or_else(|| {
            response
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0)
        })
    };
    metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        bytes,
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The Prometheus text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding cannot fail");
    String::from_utf8(out).expect("text exposition is UTF-8")
}
