//! Process-level plumbing every service shares: logs, request ids, and the shutdown signal.

use axum::http::{HeaderName, Request, Response};
use axum::Router;
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos, ServerErrorsAsFailures,
    ServerErrorsFailureClass,
};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The request-id header: taken from the client when it sends one, else generated; echoed on the answer
/// and recorded on the request's log span.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Starts logging to stderr: text, or JSON lines with `json`. The level comes from `RUST_LOG`
/// (default `info`). Text is coloured only on a terminal (and not with `NO_COLOR` set): a log file,
/// journald or `kubectl logs` gets plain `key=value` fields.
pub fn init_tracing(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    // A second initialisation (tests that start a service twice in one process) keeps the first.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Adds request ids and a per-request log span (method, route path, request id) to `router`. Apply it
/// last, so the span covers every other layer.
pub fn with_request_tracing(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new(ProbesAnswerAsThey).make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The probes: their answer is their message. `/readyz` answers 503 while a service loads its model
/// (akidb serve) or while its store is unreachable (model-server, which logs the reason itself), and
/// an orchestrator polls it every few seconds: each 503 logged as a failed request would be an ERROR
/// line per poll during every normal start.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// tower-http's classification for HTTP (5xx answers are failures, logged at ERROR), except for
/// [`PROBES`], whose answers are never failures.
#[derive(Clone, Copy)]
struct ProbesAnswerAsThey;

impl MakeClassifier for ProbesAnswerAsThey {
    type Classifier = ProbeOrServerErrors;
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn make_classifier<B>(&self, request: &Request<B>) -> Self::Classifier {
        ProbeOrServerErrors {
            probe: PROBES.contains(&request.uri().path()),
        }
    }
}

/// One request's classifier (see [`ProbesAnswerAsThey`]).
#[derive(Clone, Copy)]
struct ProbeOrServerErrors {
    probe: bool,
}

impl ClassifyResponse for ProbeOrServerErrors {
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn classify_response<B>(
        self,
        response: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if self.probe {
            ClassifiedResponse::Ready(Ok(()))
        } else {
            ServerErrorsAsFailures::new().classify_response(response)
        }
    }

    fn classify_error<E: std::fmt::Display + 'static>(self, error: &E) -> Self::FailureClass {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn classify(path: &str, status: StatusCode) -> bool {
        let request = Request::get(path).body(()).unwrap();
        let response = Response::builder().status(status).body(()).unwrap();
        match ProbesAnswerAsThey
            .make_classifier(&request)
            .classify_response(&response)
        {
            ClassifiedResponse::Ready(result) => result.is_ok(),
            ClassifiedResponse::RequiresEos(_) => unreachable!("HTTP/1 classification needs no trailers"),
        }
    }

    #[test]
    fn a_probes_503_is_its_answer_and_other_5xx_are_failures() {
        assert!(classify("/readyz", StatusCode::SERVICE_UNAVAILABLE));
        assert!(classify("/healthz", StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!classify("/v1/embed", StatusCode::SERVICE_UNAVAILABLE));
        assert!(!classify("/readyz/x", StatusCode::SERVICE_UNAVAILABLE));
        assert!(classify("/v1/embed", StatusCode::UNPROCESSABLE_ENTITY));
    }
}
