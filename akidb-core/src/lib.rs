//! # akidb-core
//!
//! One pure-Rust inference core for sentence embeddings on every tier: browser (wasm32), edge, native.
//! Bytes in, vectors out: this crate does no file or network I/O, so the same code runs everywhere.
//!
//! - [`Bundle`]: a versioned model bundle (`manifest.json` + ONNX model + `tokenizer.json`), every file
//!   verified by size and sha256 before use.
//! - [`Embedder`]: tokenizes with `tokenizers`, truncates as sentence-transformers does, runs the model
//!   with `tract-onnx` in concrete-shape plans cached per length bucket, mean-pools and L2-normalises.
//!
//! ```no_run
//! use akidb_core::{Bundle, Embedder};
//! let dir = std::path::Path::new("models/all-MiniLM-L6-v2/int8");
//! let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
//! let bundle = Bundle::from_files(&manifest, |path| std::fs::read(dir.join(path)).ok())?;
//! let embedder = Embedder::new(&bundle)?;
//! let v = embedder.embed(&["The quick brown fox."])?;
//! let norm: f32 = v.row(0).iter().map(|x| x * x).sum::<f32>().sqrt();
//! assert!((norm - 1.0).abs() < 1e-5);
//! # Ok::<(), akidb_core::Error>(())
//! ```

mod batching;
mod bundle;
mod create;
pub mod device;
mod embedder;
mod error;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod i32_tile;
#[doc(hidden)]
pub mod kernel_check;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod kernel_registration;
mod manifest;
mod model;
pub mod packing;
pub mod signing;
mod tokenize;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[doc(hidden)]
pub mod wasm_kernels;
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub mod x86_kernels;

pub use batching::{plan_chunks, seq_bucket, seq_bucket_of, Chunk};
pub use bundle::{Bundle, HashedFile};
pub use create::{BundleSpec, MODEL_FILE, TOKENIZER_FILE};
pub use device::Device;
pub use embedder::{Embedder, EmbedderOptions, Embeddings};
pub use error::{Error, Result};
pub use manifest::{
    sha256_hex, FileEntry, FileRole, Manifest, OnnxIo, OutlierChannels, Pooling, Quantization,
    FORMAT_VERSION, MANIFEST_FILE, MAX_OUTLIER_CHANNELS,
};
pub use tokenize::Tokens;

/// Runs tract's matmuls (and their packing) on rayon's global thread pool from now on: the pool that
/// `wasm_bindgen_rayon::init_thread_pool` starts on Web Workers in akidb-wasm's `threads` build. Call it
/// once that pool is up; until then every matmul runs on the calling thread. tract splits only products
/// of at least 64 tiles (its panel threshold): a batch spreads over the pool, and so do a single
/// sentence's projections, while attention's small per-head products stay on one thread.
///
/// tract also splits element-wise ops, reductions and softmax over the same pool (above 32768
/// elements). akidb-wasm calls in from one of the pool's workers (its `on_pool`): a split from outside
/// the pool costs a worker wake-up and a caller wake-up each, and with those ops split that way a batch
/// of 32 took about 490 ms against 335 ms on a pool of one in Chromium (2026-12-03).
///
/// ```ignore
/// // akidb-wasm, after `await initThreadPool(n)` on the JS side:
/// akidb_core::use_rayon_pool_for_matmuls();
/// ```
///
/// From then on, too, the runs a batch is split into (one per length bucket and power-of-two size,
/// [`plan_chunks`]) go to the pool side by side: the ops between the matmuls (attention's per-head
/// products, normalisation, activations, packing) run on one thread within a run, so splitting the
/// matmuls alone took a batch of 32 to 1.60× one thread's throughput at two threads.
#[cfg(all(target_arch = "wasm32", feature = "wasm-threads"))]
pub fn use_rayon_pool_for_matmuls() {
    use tract_linalg::multithread::{set_default_executor, Executor};
    set_default_executor(Executor::RayonGlobal);
    embedder::RUNS_ON_POOL.store(true, std::sync::atomic::Ordering::Release);
}
