//! The HTTP foundation of the AkiDB services (`akidb serve` and `model-server`): one error type and JSON
//! body for every non-2xx answer ([`ApiError`], [`not_found`], [`method_not_allowed`]), one metrics
//! middleware with bounded labels ([`HttpMetrics`], [`observe`]), serving with header/body timeouts and a
//! connection cap ([`serve`]), request guards, request ids in the logs, and the shutdown signal.
//!
//! A service builds its router, then wraps it:
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! # async fn demo() -> std::io::Result<()> {
//! let registry = prometheus::Registry::new();
//! let metrics = akidb_http::HttpMetrics::register("demo", &registry).unwrap();
//! let options = akidb_http::ServeOptions::default();
//! let app = Router::new()
//!     .route("/healthz", get(|| async { "ok\n" }))
//!     .fallback(akidb_http::not_found)
//!     .method_not_allowed_fallback(akidb_http::method_not_allowed)
//!     .layer(options.body_timeout_layer())
//!     .layer(axum::middleware::from_fn_with_state(metrics, akidb_http::observe));
//! let app = akidb_http::with_request_tracing(app);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! akidb_http::serve(listener, app, options, akidb_http::shutdown_signal()).await
//! # }
//! ```

mod error;
mod guards;
mod metrics;
mod ops;
mod serve;

pub use error::{method_not_allowed, not_found, ApiError, ErrorBody, ErrorDetail};
pub use guards::{refuse_encoded_body, refuse_oversized_body};
pub use metrics::{method_label, observe, render, HttpMetrics, LATENCY_BUCKETS};
pub use ops::{init_tracing, shutdown_signal, with_request_tracing, REQUEST_ID};
pub use serve::{serve, ServeOptions};
