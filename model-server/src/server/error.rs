//! Error answers: akidb-http's [`ApiError`] (`{"error": {"message", "type"}}`, `Cache-Control: no-store`),
//! the conversions from registry and publish errors, and the checks of path parameters.

use super::*;

pub use akidb_http::{ApiError, ErrorBody};

/// An [`ApiError`] whose `type` follows from the status: the kinds a client of this service can act on.
pub(crate) fn api_error(status: StatusCode, message: impl Into<String>) -> ApiError {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        // Retryable: the blob store or a replica's snapshot is not there yet (akidb serve's 503s are
        // `not_ready` / `timeout`, equally retryable).
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal_error",
        _ => "invalid_request_error",
    };
    ApiError::new(status, kind, message)
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        match e {
            RegistryError::Conflict { .. } => api_error(StatusCode::CONFLICT, e.to_string()),
            RegistryError::Invalid(_) => api_error(StatusCode::BAD_REQUEST, e.to_string()),
            RegistryError::NotFound(_) => api_error(StatusCode::NOT_FOUND, e.to_string()),
            RegistryError::Db(_) => ApiError::internal(e),
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        match e {
            PublishError::Bundle(_) | PublishError::Mismatch(_) => {
                api_error(StatusCode::BAD_REQUEST, e.to_string())
            }
            PublishError::MissingBlobs(_) | PublishError::Unloadable(_) | PublishError::Signature(_) => {
                api_error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            PublishError::Registry(r) => r.into(),
            PublishError::Put(_) | PublishError::Read { .. } => ApiError::internal(e),
        }
    }
}

/// Path parameters, with malformed ones (bad percent-encoding, invalid UTF-8) answered as a JSON 400.
pub(crate) struct P<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|e| api_error(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

pub(crate) fn check_name(what: &str, s: &str) -> Result<(), ApiError> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(api_error(StatusCode::BAD_REQUEST, format!("malformed {what}")))
    }
}

/// A version in a URL: a valid name, and not the reserved `aliases` (the alias route's segment).
pub(crate) fn check_version(s: &str) -> Result<(), ApiError> {
    check_name("version", s)?;
    if s == RESERVED_VERSION {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("`{RESERVED_VERSION}` is reserved and is not a version"),
        ));
    }
    Ok(())
}

pub(crate) fn parse_hash(s: &str) -> Result<BlobHash, ApiError> {
    BlobHash::parse(s)
        .ok_or_else(|| api_error(StatusCode::BAD_REQUEST, "not a sha256 (64 lower-case hex digits)"))
}

pub(crate) use akidb_http::not_found;
