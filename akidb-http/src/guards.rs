//! Request guards that answer before a body is read.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::ApiError;

/// How much of a refused body is still read and discarded after the answer, and for how long.
const LINGER_BYTES: usize = 16 << 20;
const LINGER: Duration = Duration::from_secs(5);

/// `413` at once when `Content-Length` announces more than the limit (the state), so the service never
/// waits for a body it would refuse. Bodies without a length are still capped where they are read.
///
/// The refused body is then read and discarded in the background (at most [`LINGER_BYTES`], for at most
/// [`LINGER`]): closing the connection on a client that is still sending makes its kernel answer with a
/// reset, and the client sees `EPIPE` instead of the 413 (a "lingering close", as nginx does).
pub async fn refuse_oversized_body(State(limit): State<u64>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match announced {
        Some(n) if n > limit => {
            tokio::spawn(discard(request.into_body()));
            ApiError::invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body of {n} bytes is larger than the limit of {limit} bytes"),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

async fn discard(mut body: Body) {
    let drain = async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// `415` for a request body in a content coding (gzip, br, ...): the services read plain bodies only.
pub async fn refuse_encoded_body(request: Request, next: Next) -> Response {
    let coding = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match coding {
        Some(c) if !c.is_empty() && c != "identity" => ApiError::invalid(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {c:?} is not supported: send the body uncompressed"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}
