//! The HTTP API: [`router`] builds it from an [`AppState`].
//!
//! - [`error`]: the error answer and path-parameter checks;
//! - [`read`]: listing, model, manifest; [`blobs`]: blob download and upload; [`write`]: publish, alias,
//!   authorisation;
//! - [`ops`]: health, readiness, metrics, middleware, static site; [`openapi`]: the OpenAPI document.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeFile;
use utoipa::{OpenApi, ToSchema};

use crate::publish::{publish_manifest_signed, PublishError};
use crate::registry::{valid_name, Recorded, Registry, RegistryError, VersionRecord, RESERVED_VERSION};
use crate::store::{BlobHash, BlobStore, PutError};

pub mod blobs;
pub mod error;
pub mod events;
pub mod openapi;
pub mod ops;
pub mod read;
pub mod signatures;
pub mod write;

use blobs::*;
use error::*;
use events::*;
use openapi::*;
use ops::*;
use read::*;
use signatures::*;
use write::*;

pub use blobs::BlobStored;
pub use error::{ApiError, ErrorBody};
pub use events::Announcement;
pub use openapi::{ApiDoc, ManifestDoc, ManifestFile, OnnxDoc};
pub use read::{FileInfo, ModelDetail, ModelList, ModelSummary, VersionInfo};
pub use write::{AliasTarget, Published};

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
    /// Connection and body-read limits (header-read timeout, body-read timeout, connection cap).
    pub serve: akidb_http::ServeOptions,
    /// Set on a replica (with `read_only`): its snapshot state, for `/readyz`, `/metrics` and the 403s.
    pub replica: Option<Arc<crate::replica::ReplicaStatus>>,
    /// Keys a published manifest's signature must verify with (`--trusted-keys`); with none, an HTTP
    /// publish's signature is recorded as given and an unsigned publish is accepted.
    pub trusted_keys: akidb_core::signing::TrustedKeys,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            read_only: false,
            token: None,
            static_dir: None,
            max_blob_bytes: 4 << 30,
            max_manifest_bytes: 1 << 20,
            serve: akidb_http::ServeOptions::default(),
            replica: None,
            trusted_keys: akidb_core::signing::TrustedKeys::none(),
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
    /// The service's Prometheus registry, rendered at `/metrics`.
    metrics: prometheus::Registry,
    /// Request series (akidb-http's middleware), in `metrics`.
    http_metrics: akidb_http::HttpMetrics,
    /// `model_server_ready`: 1 when `/readyz` would answer 200, checked at each scrape.
    ready: prometheus::IntGauge,
    /// A replica's snapshot series (with [`Config::replica`]).
    replica_metrics: Option<crate::replica::ReplicaMetrics>,
    /// The last snapshot pushed, announced at `/v1/registry/events`.
    events: tokio::sync::watch::Sender<Option<Announcement>>,
    /// Resolved manifests by registry generation.
    manifest_cache: ManifestCache,
}

impl AppState {
    /// Bundles the parts into the state [`router`] takes.
    pub fn new(registry: Registry, store: Arc<dyn BlobStore>, config: Config) -> AppState {
        let metrics = prometheus::Registry::new();
        let ready = prometheus::IntGauge::new(
            "model_server_ready",
            "1 when the registry database and the blob store both answer (as /readyz), else 0.",
        )
        .expect("a valid gauge");
        metrics
            .register(Box::new(ready.clone()))
            .expect("a new name in a new registry");
        let replica_metrics = config.replica.as_ref().map(|_| {
            crate::replica::ReplicaMetrics::register(&metrics).expect("new names in a new registry")
        });
        AppState(Arc::new(Inner {
            registry,
            store,
            config,
            replica_metrics,
            events: tokio::sync::watch::channel(None).0,
            manifest_cache: ManifestCache::default(),
            http_metrics: akidb_http::HttpMetrics::register("model_server", &metrics)
                .expect("three new series register in a new registry"),
            metrics,
            ready,
        }))
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// The blob store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.0.store
    }

    /// Announces a pushed snapshot to every `/v1/registry/events` listener.
    pub fn announce(&self, a: Announcement) {
        self.0.events.send_replace(Some(a));
    }

    /// Runs `f` on the registry on tokio's blocking pool: SQLite calls wait for locks (up to the busy
    /// timeout) and fsync, and must never hold a runtime thread that other requests need.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let st = self.clone();
        blocking(move || Ok(f(&st.0.registry)?)).await
    }
}

/// Runs file-system or database work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
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
            HeaderName::from_static(SIGNATURE_HEADER),
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
            get(get_manifest).put(guarded(put_manifest, &state)),
        )
        .route(
            "/v1/models/{name}/{version}/manifest.json.sig",
            get(get_signature),
        )
        .route(
            "/v1/models/{name}/aliases/{alias}",
            get(get_reserved_version).put(guarded(put_alias, &state)),
        )
        .route(
            "/v1/blobs/sha256/{sha256}",
            get(get_blob).put(guarded(put_blob, &state)),
        )
        .route("/v1/registry/events", get(registry_events))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json));
    app = match &state.0.config.static_dir {
        Some(dir) => {
            // Confinement compares resolved paths, so the root is resolved once here too.
            let root = Arc::new(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()));
            app.fallback(move |req: Request| serve_static(root.clone(), req))
        }
        None => app.fallback(not_found),
    };
    let app = app
        .method_not_allowed_fallback(akidb_http::method_not_allowed)
        .layer(state.0.config.serve.body_timeout_layer())
        .layer(compression)
        .layer(cors)
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.0.http_metrics.clone(),
            akidb_http::observe,
        ))
        .with_state(state);
    akidb_http::with_request_tracing(app)
}
