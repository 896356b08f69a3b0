//! Request and response types, handlers and their errors.

use std::sync::Arc;

use akidb_http::{ApiError, ErrorBody};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::batcher::JobError;
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

/// OpenAI `input`: one string or several. OpenAI also takes token ids (an array of integers, or of
/// arrays of integers); those parse here so that they can be refused with a message that says so.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
    /// Token ids of one text (refused; parsed only to say so).
    #[schema(value_type = Vec<u32>)]
    TokenIds(#[allow(dead_code)] Vec<serde_json::Number>),
    /// Token ids of several texts (refused; parsed only to say so).
    #[schema(value_type = Vec<Vec<u32>>)]
    ManyTokenIds(#[allow(dead_code)] Vec<Vec<serde_json::Number>>),
}

/// `POST /v1/embeddings` body (OpenAI-compatible). `model` is accepted and ignored: the service serves one
/// bundle, and drop-in clients send their own default names.
#[derive(Deserialize, ToSchema)]
pub struct OpenAiRequest {
    /// Text or texts to embed.
    pub input: OpenAiInput,
    /// Ignored; the response names the model actually used.
    #[allow(dead_code)]
    pub model: Option<String>,
    /// `float` (default): arrays of numbers; `base64`: each embedding as the base64 of its little-endian
    /// f32 bytes, as OpenAI sends it (the official clients ask for `base64` by default).
    pub encoding_format: Option<String>,
    /// Accepted only when equal to the model's dimension: the model's embeddings have a fixed size
    /// (MiniLM was not trained for truncated, Matryoshka-style vectors).
    pub dimensions: Option<u64>,
    /// Ignored (OpenAI's end-user id).
    #[allow(dead_code)]
    pub user: Option<String>,
}

/// One vector of an OpenAI-compatible response.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OpenAiEmbedding {
    /// Always `embedding`.
    pub object: String,
    /// The vector: numbers, or a base64 string with `encoding_format: "base64"`.
    pub embedding: OpenAiVector,
    /// Position of the text in `input`.
    pub index: usize,
}

/// An embedding as OpenAI encodes it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiVector {
    /// `encoding_format: "float"`.
    Float(Vec<f32>),
    /// `encoding_format: "base64"`: the little-endian f32 bytes, base64 (standard alphabet, padded).
    Base64(String),
}

impl OpenAiVector {
    fn encode(vector: Vec<f32>, base64: bool) -> OpenAiVector {
        if base64 {
            let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            OpenAiVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            OpenAiVector::Float(vector)
        }
    }
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

/// Vectors and token count for `texts`, through the batcher, with every limit checked first.
async fn embed_texts(
    state: &AppState,
    texts: Vec<String>,
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
    let replies = ready.batcher.submit(texts).map_err(|_| {
        reject(
            "queue_full",
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "the embedding queue is full; retry after a second",
            ),
        )
    })?;
    // Dropping the replies (timeout here, or the client gone and this future with it) tells the workers
    // to skip the texts they have not reached yet.
    let answers = tokio::time::timeout(limits.request_timeout, futures_util::future::join_all(replies))
        .await
        .map_err(|_| {
            reject(
                "timeout",
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    format!(
                        "the texts were not embedded within {} s; retry, or send fewer or shorter texts",
                        limits.request_timeout.as_secs_f64()
                    ),
                ),
            )
        })?;
    let mut rows = Vec::with_capacity(answers.len());
    let mut token_count = 0;
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(Ok(embedded)) => {
                token_count += embedded.tokens;
                rows.push(embedded.vector);
            }
            Ok(Err(JobError::Input(e))) => {
                return Err(reject(
                    "invalid",
                    ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, format!("text {i}: {e}")),
                ))
            }
            Ok(Err(JobError::Model(e))) => return Err(ApiError::internal(e)),
            Err(_) => return Err(ApiError::internal("an embedding worker stopped")),
        }
    }
    let dim = ready.embedder.dim();
    Ok((ready.model.clone(), dim, rows, token_count))
}

/// The error answers of both embedding routes, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum EmbedErrors {
    /// Malformed JSON.
    #[response(status = 400)]
    Malformed(ErrorBody),
    /// Too many texts, a text too long, or a body too large (refused before it is read).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Not JSON, or a compressed body.
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// Empty or invalid input.
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// The queue is full; retry after the Retry-After seconds.
    #[response(status = 429)]
    Overloaded(ErrorBody),
    /// The model is loading, or the request timed out.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Embeds texts.
#[utoipa::path(post, path = "/v1/embed", request_body = EmbedRequest,
    responses((status = 200, description = "One vector per text", body = EmbedResponse), EmbedErrors))]
pub async fn embed(
    State(state): State<Arc<AppState>>,
    body: Result<Json<EmbedRequest>, JsonRejection>,
) -> Result<Json<EmbedResponse>, ApiError> {
    let Json(request) = body?;
    let (model, dim, embeddings, _) = embed_texts(&state, request.texts).await?;
    Ok(Json(EmbedResponse {
        model,
        dim,
        embeddings,
    }))
}

/// Embeds texts, OpenAI-compatible.
#[utoipa::path(post, path = "/v1/embeddings", request_body = OpenAiRequest,
    responses((status = 200, description = "One vector per input", body = OpenAiResponse), EmbedErrors))]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Json<OpenAiRequest>, JsonRejection>,
) -> Result<Json<OpenAiResponse>, ApiError> {
    let Json(request) = body?;
    let invalid = |message: String| {
        state.metrics.rejections.with_label_values(&["invalid"]).inc();
        ApiError::invalid(StatusCode::UNPROCESSABLE_ENTITY, message)
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(format!(
                "encoding_format {other:?} is not supported: use \"float\" or \"base64\""
            )))
        }
    };
    if let (Some(asked), Some(ready)) = (request.dimensions, state.ready()) {
        let dim = ready.embedder.dim();
        if asked != dim as u64 {
            return Err(invalid(format!(
                "dimensions {asked} is not available: this model's embeddings have a fixed size of {dim}"
            )));
        }
    }
    let texts = match request.input {
        OpenAiInput::One(t) => vec![t],
        OpenAiInput::Many(ts) => ts,
        OpenAiInput::TokenIds(_) | OpenAiInput::ManyTokenIds(_) => {
            return Err(invalid(
                "token-id input is not supported: send text (a string or an array of strings)".into(),
            ))
        }
    };
    let (model, _, embeddings, tokens) = embed_texts(&state, texts).await?;
    let data = embeddings
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| OpenAiEmbedding {
            object: "embedding".into(),
            embedding: OpenAiVector::encode(embedding, base64),
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
        Some(ready) => {
            let on = match ready.embedder.device() {
                akidb_core::Device::Cpu => "cpu".to_string(),
                gpu => format!("{gpu} ({})", ready.embedder.device_name()),
            };
            (StatusCode::OK, format!("ready: {} on {on}\n", ready.model)).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "loading\n").into_response(),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CACHE_CONTROL, "no-store"),
        ],
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
    paths(embed, embeddings, healthz, readyz, metrics),
    components(schemas(ErrorBody, akidb_http::ErrorDetail))
)]
pub struct ApiDoc;
