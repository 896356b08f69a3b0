//! `akidb serve`: the HTTP embedding service. Concurrent requests are micro-batched onto a pool of
//! worker threads running the core; the queue is bounded, and overload answers `429` at once.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use akidb_native::serve::{self, BundleSource, ServeConfig};
//! let config = ServeConfig::default();
//! serve::run(config, BundleSource::Dir("models/all-MiniLM-L6-v2/int8".into()), "127.0.0.1:8080".parse()?).await
//! # }
//! ```

mod api;
mod batcher;
mod metrics;
#[cfg(feature = "test-hooks")]
mod test_hooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use akidb_core::{Bundle, Device, Embedder, EmbedderOptions};
use akidb_http::ServeOptions;
use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::cors::CorsLayer;
use utoipa::OpenApi;

pub use akidb_http::ErrorBody;
pub use api::{EmbedRequest, EmbedResponse, OpenAiResponse, OpenAiVector};
pub use batcher::BatchOptions;
pub use metrics::Metrics;

use batcher::Batcher;

/// Per-request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most texts in one request (`413` beyond).
    pub max_texts: usize,
    /// Most characters in one text (`413` beyond).
    pub max_chars: usize,
    /// Largest request body in bytes (`413` beyond).
    pub max_body_bytes: usize,
    /// Longest a request waits for its vectors (`503` beyond).
    pub request_timeout: Duration,
}

/// Everything `akidb serve` can be told.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Request limits.
    pub limits: Limits,
    /// Where the model runs: `cpu`, `cuda:N`, or `auto` (the GPU if it loads, else the CPU).
    pub device: Device,
    /// Batching and queue when the model runs on the CPU.
    pub batching: BatchOptions,
    /// Batching and queue when it runs on a GPU.
    pub gpu_batching: BatchOptions,
    /// Connection timeouts and cap.
    pub connections: ServeOptions,
    /// Timeouts, caps and retries of a `--bundle-url` download.
    pub fetch: crate::remote::FetchOptions,
    /// Keys a bundle's `manifest.json.sig` must verify with (`--trusted-keys`); none: not checked.
    pub trusted_keys: akidb_core::signing::TrustedKeys,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            limits: Limits {
                max_texts: 256,
                max_chars: 20_000,
                max_body_bytes: 2 << 20,
                request_timeout: Duration::from_secs(30),
            },
            device: Device::Cpu,
            batching: BatchOptions::cpu(),
            gpu_batching: BatchOptions::gpu(),
            connections: ServeOptions::default(),
            fetch: crate::remote::FetchOptions::default(),
            trusted_keys: akidb_core::signing::TrustedKeys::none(),
        }
    }
}

/// Where the bundle comes from.
#[derive(Clone, Debug)]
pub enum BundleSource {
    /// A bundle directory.
    Dir(PathBuf),
    /// A manifest URL on a model-server (`…/v1/models/{name}/{version}/manifest.json`) or any static host.
    Url(String),
}

/// The loaded model and its batcher.
pub struct Ready {
    /// The core.
    pub embedder: Arc<Embedder>,
    batcher: Batcher,
    /// `name@version`.
    pub model: String,
}

/// Shared state of the handlers.
pub struct AppState {
    ready: OnceLock<Ready>,
    limits: Limits,
    metrics: Arc<Metrics>,
}

impl AppState {
    /// A state with no model yet: `/readyz` says loading and the embed routes answer `503`.
    pub fn new(limits: Limits) -> Arc<AppState> {
        Arc::new(AppState {
            ready: OnceLock::new(),
            limits,
            metrics: Arc::new(Metrics::new()),
        })
    }

    /// Installs the loaded model and starts its workers.
    pub fn set_ready(&self, embedder: Arc<Embedder>, batching: BatchOptions) {
        let requested = embedder.device();
        self.install(embedder, batching, requested);
    }

    /// [`AppState::set_ready`], for a model loaded with `--device requested`.
    fn install(&self, embedder: Arc<Embedder>, batching: BatchOptions, requested: Device) {
        self.metrics
            .device
            .with_label_values(&[
                embedder.device().to_string(),
                embedder.device_name().to_string(),
                requested.to_string(),
            ])
            .set(1);
        let m = embedder.manifest();
        let model = format!("{}@{}", m.name, m.version);
        let batcher = Batcher::start(embedder.clone(), batching, self.metrics.clone());
        let _ = self.ready.set(Ready {
            embedder,
            batcher,
            model,
        });
        self.metrics.ready.set(1);
    }

    fn ready(&self) -> Option<&Ready> {
        self.ready.get()
    }
}

/// The service's routes over `state`. CORS is open (any origin, no credentials): browsers call the
/// service as the fallback of the wasm package from pages on other origins.
///
/// Every non-2xx answer, 404 and 405 included, is akidb-http's JSON error. A body announced larger than
/// `--max-body-bytes` is refused with 413 before it is read, a compressed body with 415.
pub fn router(state: Arc<AppState>, connections: &ServeOptions) -> Router {
    let body_limit = state.limits.max_body_bytes;
    let app = Router::new()
        .route("/v1/embed", post(api::embed))
        .route("/v1/embeddings", post(api::embeddings))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(|| async { Json(api::ApiDoc::openapi()) }))
        .fallback(akidb_http::not_found)
        .method_not_allowed_fallback(akidb_http::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(akidb_http::refuse_encoded_body))
        .layer(from_fn_with_state(
            body_limit as u64,
            akidb_http::refuse_oversized_body,
        ))
        .layer(connections.body_timeout_layer())
        .layer(from_fn_with_state(
            state.metrics.http.clone(),
            akidb_http::observe,
        ))
        .layer(CorsLayer::permissive())
        .with_state(state);
    akidb_http::with_request_tracing(app)
}

/// Loads the bundle, verifying every file.
pub async fn load_bundle(source: &BundleSource, fetch: &crate::remote::FetchOptions) -> Result<Bundle> {
    let none = akidb_core::signing::TrustedKeys::none();
    Ok(load_signed_bundle(source, fetch, &none).await?.0)
}

/// [`load_bundle`], checking the manifest's signature with `trusted` keys (none: not checked, and said
/// so in the log). Returns the signing key's id too.
pub async fn load_signed_bundle(
    source: &BundleSource,
    fetch: &crate::remote::FetchOptions,
    trusted: &akidb_core::signing::TrustedKeys,
) -> Result<(Bundle, Option<String>)> {
    let loaded = match source {
        BundleSource::Dir(dir) => {
            let (dir, trusted) = (dir.clone(), trusted.clone());
            tokio::task::spawn_blocking(move || crate::bundle_dir::load_with(&dir, &trusted)).await??
        }
        BundleSource::Url(url) => crate::remote::fetch_signed_bundle(url, fetch, trusted).await?,
    };
    match &loaded.1 {
        Some(key_id) => tracing::info!(%key_id, "bundle signature verified"),
        None => tracing::info!("bundle signatures are not checked (no --trusted-keys)"),
    }
    Ok(loaded)
}

/// Loads the model on `device`, its core batches as large as the batcher's for that device. `auto` may end
/// on either, so its core takes the larger of the two (the batcher bounds what it is given).
pub fn load_embedder(
    bundle: &Bundle,
    device: Device,
    cpu: &BatchOptions,
    gpu: &BatchOptions,
) -> Result<Embedder> {
    let cpu_options = EmbedderOptions::default();
    let max_batch = match device {
        Device::Cpu => cpu.max_batch,
        Device::Cuda(_) => gpu.max_batch,
        Device::Auto => cpu.max_batch.max(gpu.max_batch),
    };
    let plan_cache = match device {
        Device::Cpu => cpu_options.plan_cache,
        // Each GPU plan holds its own device copy of the weights (about 90 MB for MiniLM in f32).
        Device::Cuda(_) | Device::Auto => GPU_PLAN_CACHE,
    };
    let options = EmbedderOptions {
        max_batch,
        plan_cache,
        device,
    };
    Ok(Embedder::with_options(bundle, options)?)
}

/// How `embedder` runs its weight products, as the `ready` log line says it: `int8 x int8 -> i32` on the
/// integer path (an `int8-dynamic` bundle on a CPU with fast int8 kernels), `f32` otherwise.
///
/// ```no_run
/// let bundle = akidb_native::bundle_dir::load("models/all-MiniLM-L6-v2/int8-dynamic".as_ref())?;
/// let embedder = akidb_core::Embedder::new(&bundle)?;
/// println!("{}", akidb_native::serve::weight_products(&embedder));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn weight_products(embedder: &Embedder) -> &'static str {
    if embedder.integer_matmuls() {
        "int8 x int8 -> i32"
    } else {
        "f32"
    }
}

/// Plans kept on a GPU: 24 shapes × ~90 MB of weights each ≈ 2.2 GB of device memory, which an 8 GB
/// Jetson Orin (memory shared with the CPU) can spare; to be confirmed by scripts/gpu/run.sh.
pub const GPU_PLAN_CACHE: usize = 24;

/// Compiles the plans that single-sentence traffic and its batches use, so the first requests after
/// `/readyz` turns green do not pay for compilation.
pub fn warm_up(embedder: &Embedder, max_batch: usize) -> Result<()> {
    let mut batch = 1;
    while batch <= max_batch {
        let texts = vec!["a warm-up sentence of about twelve tokens, give or take."; batch];
        embedder.embed(&texts)?;
        batch *= 2;
    }
    for words in [1, 4, 8, 12, 16, 20, 24, 28] {
        embedder.embed(&[vec!["word"; words].join(" ").as_str()])?;
    }
    Ok(())
}

/// Serves on `addr` until SIGINT or SIGTERM, then finishes in-flight requests and returns.
///
/// The port opens at once (`/healthz` answers); the model loads and warms in the background and
/// `/readyz` turns 200 when it is done. A model that fails to load stops the service with its error.
pub async fn run(config: ServeConfig, source: BundleSource, addr: SocketAddr) -> Result<()> {
    let state = AppState::new(config.limits.clone());
    let connections = config.connections.clone();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let loader_state = state.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let loaded = async {
            let (bundle, _) = load_signed_bundle(&source, &config.fetch, &config.trusted_keys).await?;
            let (device, cpu, gpu) = (
                config.device,
                config.batching.clone(),
                config.gpu_batching.clone(),
            );
            tokio::task::spawn_blocking(move || -> Result<(Embedder, BatchOptions)> {
                let embedder = load_embedder(&bundle, device, &cpu, &gpu)?;
                let batching = if embedder.device() == Device::Cpu {
                    cpu
                } else {
                    gpu
                };
                warm_up(&embedder, batching.max_batch)?;
                Ok((embedder, batching))
            })
            .await?
        };
        match loaded.await {
            Ok((embedder, batching)) => {
                let m = embedder.manifest();
                tracing::info!(model = %m.name, version = %m.version, device = %embedder.device(),
                    device_name = embedder.device_name(), weight_products = weight_products(&embedder),
                    secs = started.elapsed().as_secs_f64(), "ready");
                if let Some(why) = embedder.integer_fallback() {
                    // The bundle still answers, with the exact int8 path's vectors and speed.
                    tracing::warn!(
                        reason = why,
                        "the int8-dynamic bundle runs its weight products in f32 here"
                    );
                }
                if let Some(why) = embedder.device_fallback() {
                    tracing::warn!(
                        reason = why,
                        "--device auto: the GPU is not usable, serving on the CPU"
                    );
                }
                let host_ops = embedder.host_ops();
                if !host_ops.is_empty() {
                    tracing::warn!(ops = ?host_ops, "ops the GPU backend runs on the CPU");
                }
                loader_state.install(Arc::new(embedder), batching, config.device);
            }
            Err(e) => {
                let _ = fatal_tx.send(e);
            }
        }
    });
    let fatal = Arc::new(tokio::sync::Mutex::new(None));
    let fatal_slot = fatal.clone();
    let shutdown = async move {
        tokio::select! {
            () = akidb_http::shutdown_signal() => {},
            Ok(e) = fatal_rx => {
                *fatal_slot.lock().await = Some(e);
            }
        }
    };
    let app = router(state, &connections);
    akidb_http::serve(listener, app, connections, shutdown).await?;
    let failure = fatal.lock().await.take();
    match failure {
        Some(e) => Err(e.context("the model could not be loaded")),
        None => Ok(()),
    }
}
