//! The HTTP API: [`router`] builds it from an [`AppState`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};

use crate::metrics::Metrics;
use crate::publish::{publish_manifest, PublishError};
use crate::registry::{valid_name, Recorded, Registry, RegistryError, VersionRecord};
use crate::store::{BlobHash, BlobStore, PutError};

/// `Cache-Control` of content-addressed blobs and of manifests named by exact version: they never change.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of listings and alias-resolved manifests: an alias move is visible within 60 s.
pub const SHORT_LIVED: &str = "public, max-age=60, stale-while-revalidate=300";
/// `Cache-Control` of errors and operational endpoints.
pub const NO_STORE: &str = "no-store";

/// Server settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Refuse every write with 403 (replicas).
    pub read_only: bool,
    /// The bearer token writes need; with `None`, every write is refused with 401.
    pub token: Option<String>,
    /// A directory served at `/` (for the demo page), if any.
    pub static_dir: Option<PathBuf>,
    /// Largest blob upload, in bytes.
    pub max_blob_bytes: u64,
    /// Largest manifest or alias upload, in bytes.
    pub max_manifest_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            read_only: false,
            token: None,
            static_dir: None,
            max_blob_bytes: 4 << 30,
            max_manifest_bytes: 1 << 20,
        }
    }
}

/// Shared state of the service: the registry, the blob store, settings and metrics.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    registry: Registry,
    store: Arc<dyn BlobStore>,
    config: Config,
    metrics: Metrics,
}

impl AppState {
    /// Bundles the parts into the state [`router`] takes.
    pub fn new(registry: Registry, store: Arc<dyn BlobStore>, config: Config) -> AppState {
        AppState(Arc::new(Inner {
            registry,
            store,
            config,
            metrics: Metrics::default(),
        }))
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }
}

// ---------- errors ----------

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
    fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError(status, msg.into())
    }
    fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
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
            PublishError::MissingBlobs(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            PublishError::Registry(r) => r.into(),
            PublishError::Put(_) | PublishError::Read { .. } => ApiError::internal(e),
        }
    }
}

/// Path parameters, with malformed ones (bad percent-encoding, invalid UTF-8) answered as a JSON 400.
struct P<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

fn check_name(what: &str, s: &str) -> Result<(), ApiError> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed {what}"),
        ))
    }
}

fn parse_hash(s: &str) -> Result<BlobHash, ApiError> {
    BlobHash::parse(s)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "not a sha256 (64 lower-case hex digits)"))
}

// ---------- JSON shapes ----------

/// `GET /v1/models`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Every model, by name.
    pub models: Vec<ModelSummary>,
}

/// A model in the listing.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Published versions, oldest first.
    pub versions: Vec<String>,
    /// Alias → version, e.g. `latest` → `1.0.0-int8`.
    pub aliases: BTreeMap<String, String>,
    /// URL of the model's detail document.
    pub url: String,
}

/// `GET /v1/models/{name}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ModelDetail {
    /// Model name.
    pub name: String,
    /// Alias → version.
    pub aliases: BTreeMap<String, String>,
    /// Published versions, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// One version in [`ModelDetail`].
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    /// Version.
    pub version: String,
    /// Where the manifest is (immutable).
    pub manifest_url: String,
    /// sha256 of the manifest's bytes (also its blob name and ETag).
    pub manifest_sha256: String,
    /// Sum of the file sizes, in bytes.
    pub total_size: u64,
    /// Unix seconds.
    pub published_at: i64,
    /// The files, each at its content-addressed URL.
    pub files: Vec<FileInfo>,
}

/// One file of a version.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct FileInfo {
    /// File name within the bundle.
    pub path: String,
    /// `model` or `tokenizer`.
    pub role: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content.
    pub sha256: String,
    /// `/v1/blobs/sha256/{sha256}`.
    pub url: String,
}

/// A bundle manifest (format version 1), served byte for byte as published. Only the fields clients need
/// are described; the rest are as in akidb-core's `Manifest`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManifestDoc {
    /// Manifest format, 1.
    pub format_version: u64,
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The files; fetch each from `/v1/blobs/sha256/{sha256}`.
    pub files: Vec<ManifestFile>,
}

/// A file entry of a manifest.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManifestFile {
    /// File name within the bundle.
    pub path: String,
    /// `model` or `tokenizer`.
    pub role: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content.
    pub sha256: String,
}

/// Answer to a blob upload.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    /// The blob's sha256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Answer to a manifest publish.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Published {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// sha256 of the manifest.
    pub manifest_sha256: String,
    /// `true` when the version is new, `false` when the same manifest was already published.
    pub created: bool,
}

/// Body of an alias update, and its answer.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AliasTarget {
    /// The version the alias points to.
    pub version: String,
}

fn blob_url(sha: &str) -> String {
    format!("/v1/blobs/sha256/{sha}")
}

fn manifest_url(name: &str, version: &str) -> String {
    format!("/v1/models/{name}/{version}/manifest.json")
}

fn short_lived_json<T: Serialize>(value: &T) -> Response {
    let mut r = Json(value).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(SHORT_LIVED));
    r
}

// ---------- read handlers ----------

/// Every model with its versions and aliases.
#[utoipa::path(get, path = "/v1/models", tag = "read",
    responses((status = 200, description = "The models (Cache-Control: max-age=60, stale-while-revalidate)", body = ModelList)))]
async fn list_models(State(st): State<AppState>) -> Result<Response, ApiError> {
    let models = st.0.registry.models()?;
    let list = ModelList {
        models: models
            .into_iter()
            .map(|m| ModelSummary {
                url: format!("/v1/models/{}", m.name),
                versions: m.versions.into_iter().map(|v| v.version).collect(),
                aliases: m.aliases.into_iter().collect(),
                name: m.name,
            })
            .collect(),
    };
    Ok(short_lived_json(&list))
}

fn version_info(v: &VersionRecord) -> Result<VersionInfo, ApiError> {
    let manifest = akidb_core::Manifest::from_json(&v.manifest).map_err(ApiError::internal)?;
    Ok(VersionInfo {
        manifest_url: manifest_url(&v.name, &v.version),
        version: v.version.clone(),
        manifest_sha256: v.manifest_sha256.clone(),
        total_size: v.total_size,
        published_at: v.published_at,
        files: manifest
            .files
            .iter()
            .map(|f| FileInfo {
                path: f.path.clone(),
                role: serde_json::to_value(f.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                size: f.size,
                sha256: f.sha256.clone(),
                url: blob_url(&f.sha256),
            })
            .collect(),
    })
}

/// One model: its versions (with file URLs) and aliases.
#[utoipa::path(get, path = "/v1/models/{name}", tag = "read",
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "The model (short-lived cache)", body = ModelDetail),
        (status = 400, description = "Malformed name", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody)))]
async fn get_model(State(st): State<AppState>, P(name): P<String>) -> Result<Response, ApiError> {
    check_name("model name", &name)?;
    let m =
        st.0.registry
            .model(&name)?
            .ok_or_else(|| ApiError::not_found(format!("model {name}")))?;
    let detail = ModelDetail {
        versions: m.versions.iter().map(version_info).collect::<Result<_, _>>()?,
        aliases: m.aliases.into_iter().collect(),
        name: m.name,
    };
    Ok(short_lived_json(&detail))
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
        })
}

/// The manifest of a version, exactly as published; `version` may be an alias.
#[utoipa::path(get, path = "/v1/models/{name}/{version}/manifest.json", tag = "read",
    params(("name" = String, Path, description = "Model name"),
           ("version" = String, Path, description = "Version, or an alias such as `latest`")),
    responses(
        (status = 200, description = "The manifest bytes. By version: immutable; by alias: short-lived, with \
            Content-Location naming the version", body = ManifestDoc,
            headers(("ETag" = String, description = "Quoted sha256 of the manifest"))),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, description = "Malformed name or version", body = ErrorBody),
        (status = 404, description = "No such model, version or alias", body = ErrorBody)))]
async fn get_manifest(
    State(st): State<AppState>,
    headers: HeaderMap,
    P((name, version)): P<(String, String)>,
) -> Result<Response, ApiError> {
    check_name("model name", &name)?;
    check_name("version", &version)?;
    let (v, via_alias) =
        st.0.registry
            .resolve(&name, &version)?
            .ok_or_else(|| ApiError::not_found(format!("{name}@{version}")))?;
    let etag = format!("\"{}\"", v.manifest_sha256);
    let cache = if via_alias { SHORT_LIVED } else { IMMUTABLE };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_LOCATION, manifest_url(&v.name, &v.version))
        .header("x-model-version", &v.version);
    if etag_matches(&headers, &etag) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::empty()).map_err(ApiError::internal);
    }
    builder
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.manifest))
        .map_err(ApiError::internal)
}

enum RangeOutcome {
    Full,
    Partial(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110). Several ranges or a malformed header: the whole blob.
fn parse_range(value: &str, len: u64) -> RangeOutcome {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let num = |s: &str| {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse::<u64>().ok()
        }
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(_) if len == 0 => RangeOutcome::Unsatisfiable,
            Some(n) => RangeOutcome::Partial(len.saturating_sub(n), len - 1),
            None => RangeOutcome::Full,
        },
        (start, "") => match num(start) {
            Some(s) if s < len => RangeOutcome::Partial(s, len - 1),
            Some(_) => RangeOutcome::Unsatisfiable,
            None => RangeOutcome::Full,
        },
        (start, end) => match (num(start), num(end)) {
            (Some(s), Some(e)) if s > e => RangeOutcome::Full,
            (Some(s), Some(_)) if s >= len => RangeOutcome::Unsatisfiable,
            (Some(s), Some(e)) => RangeOutcome::Partial(s, e.min(len - 1)),
            _ => RangeOutcome::Full,
        },
    }
}

/// A blob's bytes by sha256: immutable, with Range, If-None-Match, If-Range and HEAD.
#[utoipa::path(get, path = "/v1/blobs/sha256/{sha256}", tag = "read",
    params(("sha256" = String, Path, description = "64 lower-case hex digits")),
    responses(
        (status = 200, description = "The bytes (immutable)", content_type = "application/octet-stream", body = String,
            headers(("ETag" = String, description = "The quoted sha256"), ("Accept-Ranges" = String))),
        (status = 206, description = "One range of the bytes", content_type = "application/octet-stream", body = String,
            headers(("Content-Range" = String))),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, description = "Not a sha256", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody)))]
async fn get_blob(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    P(hash): P<String>,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    let bytes =
        st.0.store
            .get(&hash)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found("blob"))?;
    let len = bytes.len() as u64;
    let etag = format!("\"{hash}\"");
    let base = || {
        Response::builder()
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, IMMUTABLE)
            .header(header::ACCEPT_RANGES, "bytes")
    };
    if etag_matches(&headers, &etag) {
        return base()
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) if if_range_ok => parse_range(v, len),
        _ => RangeOutcome::Full,
    };
    let (status, body, content_range) = match range {
        RangeOutcome::Full => (StatusCode::OK, bytes, None),
        RangeOutcome::Partial(s, e) => (
            StatusCode::PARTIAL_CONTENT,
            bytes.slice(s as usize..=e as usize),
            Some(format!("bytes {s}-{e}/{len}")),
        ),
        RangeOutcome::Unsatisfiable => {
            let mut r =
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable").into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).map_err(ApiError::internal)?,
            );
            return Ok(r);
        }
    };
    let mut b = base()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(cr) = content_range {
        b = b.header(header::CONTENT_RANGE, cr);
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    b.body(body).map_err(ApiError::internal)
}

// ---------- writes ----------

fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if st.0.config.read_only {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "this server is read-only"));
    }
    let Some(token) = st.0.config.token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "writes are disabled: no token configured",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time comparison.
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

/// Uploads a blob under its sha256 (step 1 of the HTTP publish). The bytes are hashed as they arrive,
/// stored only when they match, and durable before the answer.
#[utoipa::path(put, path = "/v1/blobs/sha256/{sha256}", tag = "write",
    params(("sha256" = String, Path, description = "64 lower-case hex digits: the sha256 of the body")),
    request_body(content = String, content_type = "application/octet-stream", description = "The bytes"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = BlobStored),
        (status = 200, description = "Already stored", body = BlobStored),
        (status = 400, description = "Not a sha256, or the body hashes to something else", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Read-only server", body = ErrorBody),
        (status = 404, description = "No such route (an empty path parameter)", body = ErrorBody),
        (status = 413, description = "Larger than the limit", body = ErrorBody)))]
async fn put_blob(
    State(st): State<AppState>,
    headers: HeaderMap,
    P(hash): P<String>,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&st, &headers)?;
    let hash = parse_hash(&hash)?;
    let limit = st.0.config.max_blob_bytes;
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if n > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("blob is larger than {limit} bytes"),
            ));
        }
    }
    let existed = st.0.store.size(&hash).map_err(ApiError::internal)?.is_some();
    use futures_util::TryStreamExt;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let store = st.0.store.clone();
    let h = hash.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut sync = tokio_util::io::SyncIoBridge::new(reader);
        store.put(&h, &mut sync, limit)
    })
    .await
    .map_err(ApiError::internal)?;
    match result {
        Ok(size) => {
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let mut r = (
                status,
                Json(BlobStored {
                    sha256: hash.to_string(),
                    size,
                }),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            Ok(r)
        }
        Err(e @ PutError::HashMismatch { .. }) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e @ PutError::TooLarge { .. }) => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))
        }
        Err(PutError::Io(e)) if e.kind() == std::io::ErrorKind::Other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("reading the upload: {e}"),
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn read_small_body(st: &AppState, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, st.0.config.max_manifest_bytes)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body too large"))
}

/// Publishes a version (step 2 of the HTTP publish): the body is the bundle's `manifest.json`; every file it
/// lists must have been uploaded as a blob. The version is recorded atomically; republishing the same bytes
/// is a no-op (200), different bytes for an existing version are refused (409).
#[utoipa::path(put, path = "/v1/models/{name}/{version}/manifest.json", tag = "write",
    params(("name" = String, Path, description = "Model name (must match the manifest)"),
           ("version" = String, Path, description = "Version (must match the manifest)")),
    request_body(content = ManifestDoc, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Published", body = Published),
        (status = 200, description = "Already published with these bytes", body = Published),
        (status = 400, description = "Malformed manifest or URL", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Read-only server", body = ErrorBody),
        (status = 404, description = "No such route (an empty path parameter)", body = ErrorBody),
        (status = 409, description = "This version exists with other content", body = ErrorBody),
        (status = 413, description = "Larger than the limit", body = ErrorBody),
        (status = 422, description = "Blobs the manifest lists are missing", body = ErrorBody)))]
async fn put_manifest(
    State(st): State<AppState>,
    headers: HeaderMap,
    P((name, version)): P<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&st, &headers)?;
    check_name("model name", &name)?;
    check_name("version", &version)?;
    let bytes = read_small_body(&st, body).await?;
    let manifest = akidb_core::Manifest::from_json(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if manifest.name != name || manifest.version != version {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the manifest is {}@{}, not {name}@{version}",
                manifest.name, manifest.version
            ),
        ));
    }
    let st2 = st.clone();
    let (manifest, recorded) = tokio::task::spawn_blocking(move || {
        publish_manifest(&st2.0.registry, st2.0.store.as_ref(), &bytes, &[])
    })
    .await
    .map_err(ApiError::internal)??;
    let created = recorded == Recorded::Created;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::info!(name = %manifest.name, version = %manifest.version, created, "published");
    let body = Published {
        manifest_sha256: st
            .0
            .registry
            .resolve(&name, &version)?
            .map(|(v, _)| v.manifest_sha256)
            .unwrap_or_default(),
        name,
        version,
        created,
    };
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    Ok(r)
}

/// Points an alias (e.g. `latest`) at a version.
#[utoipa::path(put, path = "/v1/models/{name}/aliases/{alias}", tag = "write",
    params(("name" = String, Path, description = "Model name"), ("alias" = String, Path, description = "Alias")),
    request_body(content = AliasTarget, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alias now points at the version", body = AliasTarget),
        (status = 400, description = "Malformed name, alias or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Read-only server", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 413, description = "Larger than the limit", body = ErrorBody)))]
async fn put_alias(
    State(st): State<AppState>,
    headers: HeaderMap,
    P((name, alias)): P<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&st, &headers)?;
    check_name("model name", &name)?;
    check_name("alias", &alias)?;
    let bytes = read_small_body(&st, body).await?;
    let target: AliasTarget = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
    check_name("version", &target.version)?;
    st.0.registry.set_alias(&name, &alias, &target.version)?;
    tracing::info!(%name, %alias, version = %target.version, "alias set");
    let mut r = Json(target).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    Ok(r)
}

// ---------- ops ----------

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn healthz() -> Response {
    ([(header::CACHE_CONTROL, NO_STORE)], "ok\n").into_response()
}

/// Readiness: the registry database and the blob store both work.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready", body = String, content_type = "text/plain"),
    (status = 503, description = "Not ready", body = String, content_type = "text/plain")))]
async fn readyz(State(st): State<AppState>) -> Response {
    let store = st.0.store.clone();
    let store_ok = tokio::task::spawn_blocking(move || store.check()).await;
    let (status, msg) = match (st.0.registry.check(), store_ok) {
        (Ok(()), Ok(Ok(()))) => (StatusCode::OK, "ready\n".to_owned()),
        (db, store) => {
            let msg = format!("not ready: registry {db:?}, store {store:?}\n");
            tracing::warn!("{}", msg.trim_end());
            (StatusCode::SERVICE_UNAVAILABLE, msg)
        }
    };
    (status, [(header::CACHE_CONTROL, NO_STORE)], msg).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(st): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CACHE_CONTROL, NO_STORE),
        ],
        st.0.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    short_lived_json(&ApiDoc::openapi())
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "AkiDB model-server", description = "Versioned, content-addressed model bundles. Clients fetch \
        `/v1/models/{name}/{version}/manifest.json`, then each file from `/v1/blobs/sha256/{sha256}` and check it \
        against the manifest."),
    paths(list_models, get_model, get_manifest, get_blob, put_blob, put_manifest, put_alias, healthz, readyz, metrics, openapi_json),
    components(schemas(ErrorBody, ModelList, ModelSummary, ModelDetail, VersionInfo, FileInfo, ManifestDoc, ManifestFile,
        BlobStored, Published, AliasTarget)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

// ---------- middleware and router ----------

async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| {
            if st.0.config.static_dir.is_some() {
                "static".into()
            } else {
                "unmatched".into()
            }
        });
    let method = req.method().clone();
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let bytes = if method == Method::HEAD {
        0
    } else {
        res.body().size_hint().exact().unwrap_or(0)
    };
    st.0.metrics.observe(
        &route,
        method.as_str(),
        res.status().as_u16(),
        bytes,
        start.elapsed(),
    );
    res
}

/// Compress JSON only (listings, OpenAPI, errors): never model bytes, and never responses with a strong
/// `ETag` (manifests), whose bytes clients verify and whose validator names the identity encoding.
fn compress_json(
    status: StatusCode,
    _: axum::http::Version,
    headers: &HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    let _ = status;
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
        && !headers.contains_key(header::ETAG)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// The whole service: routes, CORS, compression, metrics, request tracing and (with
/// [`Config::static_dir`]) the static site at `/`.
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::OPTIONS])
        .allow_headers([
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_RANGE,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
        ])
        .expose_headers([
            header::ETAG,
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::CONTENT_LOCATION,
            HeaderName::from_static("x-model-version"),
        ])
        .max_age(std::time::Duration::from_secs(86400));
    let compression = CompressionLayer::new()
        .gzip(true)
        .br(true)
        .compress_when(compress_json);
    let mut app = Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{name}", get(get_model))
        .route(
            "/v1/models/{name}/{version}/manifest.json",
            get(get_manifest).put(put_manifest),
        )
        .route("/v1/models/{name}/aliases/{alias}", put(put_alias))
        .route("/v1/blobs/sha256/{sha256}", get(get_blob).put(put_blob))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json));
    app = match &state.0.config.static_dir {
        Some(dir) => {
            let site = ServeDir::new(dir).append_index_html_on_directories(true);
            // ServeDir answers 500 for odd names the OS refuses (too long, NUL, ...): those are 404s here.
            app.fallback(move |req: Request| async move {
                use tower::ServiceExt;
                let Ok(res) = site.oneshot(req).await;
                if res.status().is_server_error() {
                    return not_found().await.into_response();
                }
                res.map(Body::new)
            })
        }
        None => app.fallback(not_found),
    };
    app.layer(TraceLayer::new_for_http())
        .layer(compression)
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}
