//! Error answers: [`ApiError`] and its JSON body, the conversions from registry and publish errors, and
//! the checks of path parameters.

use super::*;

/// An error answer: a status and a JSON `{"error": "..."}` body, never cached.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

/// The JSON body of every error.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError(status, msg.into())
    }
    pub(crate) fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(ErrorBody { error: self.1 })).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        match e {
            RegistryError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            RegistryError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
            RegistryError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            RegistryError::Db(_) => ApiError::internal(e),
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        match e {
            PublishError::Bundle(_) | PublishError::Mismatch(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            PublishError::MissingBlobs(_) | PublishError::Unloadable(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
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
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

pub(crate) fn check_name(what: &str, s: &str) -> Result<(), ApiError> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed {what}"),
        ))
    }
}

/// A version in a URL: a valid name, and not the reserved `aliases` (the alias route's segment).
pub(crate) fn check_version(s: &str) -> Result<(), ApiError> {
    check_name("version", s)?;
    if s == RESERVED_VERSION {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{RESERVED_VERSION}` is reserved and is not a version"),
        ));
    }
    Ok(())
}

pub(crate) fn parse_hash(s: &str) -> Result<BlobHash, ApiError> {
    BlobHash::parse(s)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "not a sha256 (64 lower-case hex digits)"))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}
