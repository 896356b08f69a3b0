//! Request and response types, handlers and their errors.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;

/// `POST /v1/embed` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// Texts to embed, at least one.
    pub texts: Vec<String>,
}

/// `POST /v1/embed` response: one vector per text, in order.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EmbedResponse {
    /// `name@version` of the bundle.
    pub model: String,
    /// Embedding dimension.
    pub dim: usize,
    /// L2-normalised vectors, `embeddings[i]` for `texts[i]`.
    pub embeddings: Vec<Vec<f32>>,
}

/// OpenAI `input`: one string or several.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

/// `POST /v1/embeddings` body (OpenAI-compatible). `model` is accepted and ignored: the service serves one
/// bundle, and drop-in clients send their own default names.
#[derive(Deserialize, ToSchema)]
pub struct OpenAiRequest {
    /// Text or texts to embed.
    pub input: OpenAiInput,
    /// Ignored; the response names the model actually used.
    #[serde(default)]
    #[allow(dead_code)]
    pub model: Option<String>,
    /// Only `float` is supported.
    #[serde(default)]
    pub encoding_format: Option<String>,
}

/// One vector of an OpenAI-compatible response.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OpenAiEmbedding {
    /// Always `embedding`.
    pub object: String,
    /// The vector.
    pub embedding: Vec<f32>,
    /// Position of the text in `input`.
    pub index: usize,
}

/// Token counts of an OpenAI-compatible response.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OpenAiUsage {
    /// Tokens in the input, special tokens included.
    pub prompt_tokens: usize,
    /// Same as `prompt_tokens`.
    pub total_tokens: usize,
}

/// `POST /v1/embeddings` response.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OpenAiResponse {
    /// Always `list`.
    pub object: String,
    /// One entry per input text, in order.
    pub data: Vec<OpenAiEmbedding>,
    /// `name@version` of the bundle.
    pub model: String,
    /// Token counts.
    pub usage: OpenAiUsage,
}

/// Every error body: `{"error": {"message": "...", "type": "..."}}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A sentence a client developer can act on.
    pub message: String,
    /// `invalid_request_error`, `overloaded`, `timeout`, `not_ready` or `internal_error`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
    fn invalid(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status, "invalid_request_error", message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than the service's limit".to_string(),
            _ => rejection.body_text(),
        };
        ApiError::invalid(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                kind: self.kind.to_string(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Vectors and token count for `texts`, through the batcher, with every limit checked first.
async fn embed_texts(
    state: &AppState,
    texts: &[String],
) -> Result<(String, usize, Vec<Vec<f32>>, usize), ApiError> {
    let ready = state.ready().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the model is still loading; retry shortly",
        )
    })?;
    let limits = &state.limits;
    let reject = |reason: &str, e: ApiError| {
        state.metrics.rejections.with_label_values(&[reason]).inc();
        e
    };
    if texts.is_empty() {
        return Err(reject(
            "invalid",
            ApiError::invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no texts given: send at least one",
            ),
        ));
    }
    if texts.len() > limits.max_texts {
        return Err(reject(
            "invalid",
            ApiError::invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} texts in one request; the limit is {}",
                    texts.len(),
                    limits.max_texts
                ),
            ),
        ));
    }
    if let Some((i, n)) = texts
        .iter()
        .map(|t| t.chars().count())
        .enumerate()
        .find(|(_, n)| *n > limits.max_chars)
    {
        return Err(reject(
            "invalid",
            ApiError::invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("text {i} has {n} characters; the limit is {}", limits.max_chars),
            ),
        ));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = ready
        .embedder
        .tokenize(&refs)
        .map_err(|e| ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let token_count = tokens.iter().map(|t| t.ids.len()).sum();
    let receiver = ready.batcher.submit(tokens).map_err(|_| {
        reject(
            "queue_full",
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "the embedding queue is full; retry after a second",
            ),
        )
    })?;
    let vectors = match tokio::time::timeout(limits.request_timeout, receiver).await {
        Err(_) => {
            return Err(reject(
                "timeout",
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "no embedding worker finished in time; retry",
                ),
            ))
        }
        Ok(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "worker stopped",
            ))
        }
        Ok(Ok(Err(e))) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                e,
            ))
        }
        Ok(Ok(Ok(v))) => v,
    };
    let rows = vectors.rows().map(<[f32]>::to_vec).collect();
    Ok((ready.model.clone(), vectors.dim(), rows, token_count))
}

/// Embeds texts.
#[utoipa::path(post, path = "/v1/embed", request_body = EmbedRequest,
    responses(
        (status = 200, description = "One vector per text", body = EmbedResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Too many texts, a text too long, or body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Empty or invalid input", body = ErrorBody),
        (status = 429, description = "Queue full; retry after the Retry-After seconds", body = ErrorBody),
        (status = 503, description = "Loading or timed out", body = ErrorBody),
    ))]
pub async fn embed(
    State(state): State<Arc<AppState>>,
    body: Result<Json<EmbedRequest>, JsonRejection>,
) -> Result<Json<EmbedResponse>, ApiError> {
    let Json(request) = body?;
    let (model, dim, embeddings, _) = embed_texts(&state, &request.texts).await?;
    Ok(Json(EmbedResponse {
        model,
        dim,
        embeddings,
    }))
}

/// Embeds texts, OpenAI-compatible.
#[utoipa::path(post, path = "/v1/embeddings", request_body = OpenAiRequest,
    responses(
        (status = 200, description = "One vector per input", body = OpenAiResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Too many texts, a text too long, or body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Empty or invalid input", body = ErrorBody),
        (status = 429, description = "Queue full", body = ErrorBody),
        (status = 503, description = "Loading or timed out", body = ErrorBody),
    ))]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Json<OpenAiRequest>, JsonRejection>,
) -> Result<Json<OpenAiResponse>, ApiError> {
    let Json(request) = body?;
    if request.encoding_format.as_deref().is_some_and(|f| f != "float") {
        return Err(ApiError::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            "only encoding_format \"float\" is supported",
        ));
    }
    let texts = match request.input {
        OpenAiInput::One(t) => vec![t],
        OpenAiInput::Many(ts) => ts,
    };
    let (model, _, embeddings, tokens) = embed_texts(&state, &texts).await?;
    let data = embeddings
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| OpenAiEmbedding {
            object: "embedding".into(),
            embedding,
            index,
        })
        .collect();
    Ok(Json(OpenAiResponse {
        object: "list".into(),
        data,
        model,
        usage: OpenAiUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the model is loaded and warmed.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready"), (status = 503, description = "Loading")))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.ready() {
        Some(ready) => (StatusCode::OK, format!("ready: {}\n", ready.model)).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "loading\n").into_response(),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "akidb serve",
        description = "Sentence embeddings over HTTP, from the AkiDB Edge core."
    ),
    paths(embed, embeddings, healthz, readyz, metrics)
)]
pub struct ApiDoc;
