//! # akidb-wasm
//!
//! wasm-bindgen bindings over [`akidb_core`] for browsers and Node: the low-level `Embedder` that the
//! npm package `@akidb/wasm` wraps (its JS loader adds fetching, caching, workers and the server
//! fallback). Nothing here re-implements the core: bundles are verified by `Bundle::from_files` (or, with
//! digests the caller computed, `Bundle::from_hashed_files`), text is
//! tokenized, embedded, pooled and normalised by `akidb_core::Embedder`.

use akidb_core::{Bundle, HashedFile, MANIFEST_FILE};
use js_sys::{Array, Float32Array, Map, Reflect, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;

pub mod trap;

/// std's allocator (dlmalloc), remembering the size of a request it could not meet: a failed
/// allocation traps with no word of why, and `failedAllocationBytes` says it afterwards.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: trap::RecordingAllocator<std::alloc::System> =
    trap::RecordingAllocator::new(std::alloc::System);

/// Runs when the module is instantiated: from then on a panic's message and place go to the console
/// (`console.error`) before the trap, which by itself says only "unreachable executed", and are kept for
/// `lastPanicMessage`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() {
    trap::install_panic_hook();
}

/// After a trap (`WebAssembly.RuntimeError`): the size in bytes of the last allocation the core could not
/// get (the engine refused to grow its linear memory), or 0 when none failed. Reading it allocates
/// nothing, so it works in the instance that just ran out.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(js_name = failedAllocationBytes)]
pub fn failed_allocation_bytes() -> f64 {
    ALLOCATOR.failed_allocation().unwrap_or(0) as f64
}

/// After a trap: the last panic's message and place (`panicked at src/…: …`), or `undefined` when the
/// core has not panicked.
#[wasm_bindgen(js_name = lastPanicMessage)]
pub fn last_panic_message() -> Option<String> {
    trap::last_panic()
}

/// A loaded bundle ready to embed text (JS: `Embedder`).
#[wasm_bindgen]
pub struct Embedder {
    inner: akidb_core::Embedder,
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The value under `key` of a `Map` or a plain object; `None` when absent.
fn entry(map_or_object: &JsValue, key: &str) -> Option<JsValue> {
    let value = match map_or_object.dyn_ref::<Map>() {
        Some(map) => map.get(&JsValue::from_str(key)),
        None => Reflect::get(map_or_object, &JsValue::from_str(key)).ok()?,
    };
    (!value.is_undefined() && !value.is_null()).then_some(value)
}

/// Reads `path` from a `Map` or a plain object of `Uint8Array`s.
fn file_bytes(files: &JsValue, path: &str) -> Option<Vec<u8>> {
    let value = entry(files, path)?;
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Some(bytes.to_vec());
    }
    if value.is_instance_of::<js_sys::ArrayBuffer>() {
        return Some(Uint8Array::new(&value).to_vec());
    }
    None
}

/// The bundle's `manifest.json` from `files`.
fn manifest_bytes(files: &JsValue) -> Result<Vec<u8>, JsError> {
    file_bytes(files, MANIFEST_FILE)
        .ok_or_else(|| JsError::new(&format!("{MANIFEST_FILE}: missing from the bundle files")))
}

fn texts_of(texts: &Array) -> Result<Vec<String>, JsError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_string()
                .ok_or_else(|| JsError::new(&format!("texts[{i}] is not a string")))
        })
        .collect()
}

#[wasm_bindgen]
impl Embedder {
    /// Loads a bundle: `files` maps `"manifest.json"` and every path the manifest lists to its bytes
    /// (`Map` or plain object of `Uint8Array`). Every file's size and sha256 are verified before use; a
    /// mismatch or a missing file throws an error naming the file.
    #[wasm_bindgen(js_name = fromBundle)]
    pub fn from_bundle(files: JsValue) -> Result<Embedder, JsError> {
        let bundle =
            Bundle::from_files(&manifest_bytes(&files)?, |path| file_bytes(&files, path)).map_err(js_err)?;
        let inner = akidb_core::Embedder::new(&bundle).map_err(js_err)?;
        Ok(Embedder { inner })
    }

    /// Loads a bundle whose files the caller has hashed already (WebCrypto's `crypto.subtle.digest`
    /// is about three times as fast as hashing in wasm): `files` as for `fromBundle`, `sha256s` maps
    /// each manifest path to the hex sha256 of its bytes. Sizes are verified and each digest is compared
    /// with the manifest's; a mismatch or a missing file or digest throws an error naming the file.
    #[wasm_bindgen(js_name = fromHashedBundle)]
    pub fn from_hashed_bundle(files: JsValue, sha256s: JsValue) -> Result<Embedder, JsError> {
        let mut missing_digest = None;
        let bundle = Bundle::from_hashed_files(&manifest_bytes(&files)?, |path| {
            let bytes = file_bytes(&files, path)?;
            let Some(sha256) = entry(&sha256s, path).and_then(|d| d.as_string()) else {
                missing_digest.get_or_insert_with(|| path.to_string());
                return None;
            };
            Some(HashedFile { bytes, sha256 })
        });
        if let Some(path) = missing_digest {
            return Err(JsError::new(&format!("{path}: no sha256 given for it")));
        }
        let inner = akidb_core::Embedder::new(&bundle.map_err(js_err)?).map_err(js_err)?;
        Ok(Embedder { inner })
    }

    /// Embeds `texts`: a row-major `texts.length × dim` `Float32Array` of L2-normalised vectors.
    pub fn embed(&self, texts: Array) -> Result<Float32Array, JsError> {
        let texts = texts_of(&texts)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = on_pool(|| self.inner.embed(&refs)).map_err(js_err)?;
        Ok(Float32Array::from(vectors.into_vec().as_slice()))
    }

    /// Token ids of each text (special tokens included, truncated to `maxSeqLength`): `Uint32Array[]`.
    pub fn tokenize(&self, texts: Array) -> Result<Array, JsError> {
        let texts = texts_of(&texts)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens = self.inner.tokenize(&refs).map_err(js_err)?;
        Ok(tokens
            .iter()
            .map(|t| JsValue::from(Uint32Array::from(t.ids.as_slice())))
            .collect())
    }

    /// Embedding dimension.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Truncation length in tokens, special tokens included.
    #[wasm_bindgen(getter, js_name = maxSeqLength)]
    pub fn max_seq_length(&self) -> usize {
        self.inner.manifest().max_seq_length
    }

    /// The bundle's `name@version`.
    #[wasm_bindgen(getter)]
    pub fn model(&self) -> String {
        let m = self.inner.manifest();
        format!("{}@{}", m.name, m.version)
    }

    /// Names of the matrix-multiply kernels the shapes embedded so far run (`akidb_wasm_f32_8x4`, the
    /// core's own, and tract's `wasm_*` ones): a diagnostic for benchmarks; `generic_*` names mean tract's
    /// portable scalar code.
    #[wasm_bindgen(js_name = matmulKernels)]
    pub fn matmul_kernels(&self) -> Array {
        self.inner
            .matmul_kernels()
            .into_iter()
            .map(JsValue::from)
            .collect()
    }
}

// The threads build: `initThreadPool(n)` (wasm-bindgen-rayon) starts n Web Workers that share this
// module's memory and serve as rayon's global pool.
#[cfg(all(target_arch = "wasm32", feature = "threads"))]
pub use wasm_bindgen_rayon::init_thread_pool;

/// The threads build: tract's matmuls run on the pool `initThreadPool(n)` started, from now on. Call it
/// after that promise resolves (before, rayon would make its own one-thread pool and the real one could
/// no longer be installed).
#[cfg(all(target_arch = "wasm32", feature = "threads"))]
#[wasm_bindgen(js_name = useThreadPool)]
pub fn use_thread_pool() {
    akidb_core::use_rayon_pool_for_matmuls();
    POOL_IN_USE.store(true, std::sync::atomic::Ordering::Release);
}

/// Set by `useThreadPool`: from then on each embedding call runs on the pool (`on_pool`).
#[cfg(all(target_arch = "wasm32", feature = "threads"))]
static POOL_IN_USE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs `work` on one of the pool's workers once `useThreadPool` was called (else here). Why: an op tract
/// splits (a matmul, or an element-wise op, reduction or softmax above 32768 elements) from a thread
/// outside the pool is injected into it and the caller sleeps until it is done, a worker wake-up and a
/// caller wake-up (`Atomics.wait`/`notify`) per op; from a worker, rayon puts the split on the worker's
/// own queue, the worker starts on it at once and the other workers steal the rest.
#[cfg(all(target_arch = "wasm32", feature = "threads"))]
fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if POOL_IN_USE.load(std::sync::atomic::Ordering::Acquire) {
        rayon::scope(|_| work())
    } else {
        work()
    }
}

#[cfg(not(all(target_arch = "wasm32", feature = "threads")))]
fn on_pool<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// Lower-case hex sha256 of `bytes` (the core's hash, for callers without WebCrypto).
#[wasm_bindgen(js_name = sha256Hex)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    akidb_core::sha256_hex(bytes)
}

/// Checks a bundle's detached signature (issue #19's format; the one implementation is
/// `akidb_core::signing`, which the CLI, `akidb serve` and model-server use too).
///
/// `manifest`: the exact `manifest.json` bytes as fetched; `signature`: the bytes of `manifest.json.sig`,
/// or `undefined`/`null` when there was none (a 404); `trustedKeysJson`: the trusted keys as JSON, either
/// the list `[{key_id, public_key}, …]` (the loader's `trustedKeys`) or a trust file
/// `{"keys": [...]}`; `manifestName`: the manifest's URL or path, for error messages.
///
/// Returns the key id that signed the manifest. With no trusted keys nothing is checked and `undefined`
/// is returned. Throws (an `Error` naming the manifest, and the key id when there is one) on a missing,
/// malformed or not-verifying signature, a key id not in the list (unknown or revoked), or a trusted-keys
/// JSON that is not a valid key list.
#[wasm_bindgen(js_name = verifyManifestSignature)]
pub fn verify_manifest_signature(
    manifest: &[u8],
    signature: Option<Vec<u8>>,
    #[wasm_bindgen(js_name = trustedKeysJson)] trusted_keys_json: &str,
    #[wasm_bindgen(js_name = manifestName)] manifest_name: &str,
) -> Result<Option<String>, JsError> {
    let trusted = akidb_core::signing::TrustedKeys::from_json(trusted_keys_json.as_bytes(), "trustedKeys")
        .map_err(js_err)?;
    trusted
        .verify_manifest(manifest, signature.as_deref(), manifest_name)
        .map_err(js_err)
}
