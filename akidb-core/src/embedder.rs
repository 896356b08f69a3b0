//! Texts in, normalised sentence vectors out.

use crate::batching::{plan_chunks, Chunk};
use crate::bundle::Bundle;
use crate::device::{load_model, Device, Placement};
use crate::error::{Error, Result};
use crate::manifest::{FileRole, Manifest, Pooling};
use crate::model::{PaddedBatch, Plan, SentenceModel};
use crate::tokenize::{TextTokenizer, Tokens};

/// Tuning knobs of an [`Embedder`]; the defaults suit a CPU with a few cores.
#[derive(Clone, Debug)]
pub struct EmbedderOptions {
    /// Most sentences in one model run.
    pub max_batch: usize,
    /// Most compiled shape plans kept; each costs tens of milliseconds to compile (and on a GPU holds its
    /// own device copy of the weights).
    pub plan_cache: usize,
    /// Where the model runs (see [`crate::device`]).
    pub device: Device,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        EmbedderOptions {
            max_batch: 32,
            plan_cache: 48,
            device: Device::Cpu,
        }
    }
}

/// Row-major `n × dim` sentence vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Wraps a row-major buffer of `data.len() / dim` vectors.
    ///
    /// # Panics
    /// If `dim` is zero or does not divide `data.len()`.
    pub fn from_vec(dim: usize, data: Vec<f32>) -> Embeddings {
        assert!(
            dim > 0 && data.len().is_multiple_of(dim),
            "{} values are not rows of {dim}",
            data.len()
        );
        Embeddings { dim, data }
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }
    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// The vectors in input order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim)
    }
    /// The flat row-major buffer.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

/// A loaded bundle ready to embed text. Cheap to share between threads (`&self` everywhere).
///
/// ```no_run
/// # fn read(p: &str) -> Vec<u8> { std::fs::read(format!("models/all-MiniLM-L6-v2/int8/{p}")).unwrap() }
/// use akidb_core::{Bundle, Embedder};
/// let bundle = Bundle::from_files(&read("manifest.json"), |path| Some(read(path)))?;
/// let embedder = Embedder::new(&bundle)?;
/// let vectors = embedder.embed(&["A cat sits on the mat.", ""])?;
/// assert_eq!(vectors.len(), 2);
/// assert_eq!(vectors.row(0).len(), embedder.dim());
/// # Ok::<(), akidb_core::Error>(())
/// ```
pub struct Embedder {
    manifest: Manifest,
    tokenizer: TextTokenizer,
    model: SentenceModel,
    options: EmbedderOptions,
    placement: Placement,
}

impl Embedder {
    /// Loads `bundle` with default options.
    pub fn new(bundle: &Bundle) -> Result<Embedder> {
        Self::with_options(bundle, EmbedderOptions::default())
    }

    /// Loads `bundle` with `options`.
    pub fn with_options(bundle: &Bundle, options: EmbedderOptions) -> Result<Embedder> {
        let manifest = bundle.manifest().clone();
        let tokenizer = TextTokenizer::from_bytes(
            bundle.tokenizer_bytes(),
            &manifest.file(FileRole::Tokenizer).path,
            manifest.max_seq_length,
        )?;
        let (model, placement) = load_model(
            bundle.model_bytes(),
            &manifest,
            options.plan_cache,
            options.device,
        )?;
        Ok(Embedder {
            manifest,
            tokenizer,
            model,
            options,
            placement,
        })
    }

    /// The bundle's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The device the model runs on: [`Device::Cpu`] or [`Device::Cuda`] (what `auto` settled on).
    pub fn device(&self) -> Device {
        self.placement.device
    }

    /// `cpu`, or the driver's name of the GPU (`NVIDIA H200`, `Orin`).
    pub fn device_name(&self) -> &str {
        &self.placement.name
    }

    /// Why [`Device::Auto`] took the CPU (the GPU's error), if it did.
    pub fn device_fallback(&self) -> Option<&str> {
        self.placement.fallback.as_deref()
    }

    /// Ops of the GPU plans compiled so far that tract-cuda has no kernel for, so they run on the CPU
    /// (`op (node)`, sorted); always empty on the CPU.
    pub fn host_ops(&self) -> Vec<String> {
        self.model.host_ops()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Token ids of each text, truncated to the bundle's `max_seq_length`.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Tokens>> {
        self.tokenizer.encode(texts)
    }

    /// Embeds texts; row `i` of the result belongs to `texts[i]`, whatever the internal batching.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings> {
        let tokens = self.tokenize(texts)?;
        self.embed_tokens(&tokens)
    }

    /// Names of the matrix-multiply kernels that the plans compiled so far run (tract's names, e.g.
    /// `avx512_mmm_f32_16x12` or `generic_f32_4x4` for the portable scalar one, and on wasm32 the core's
    /// own `akidb_wasm_f32_8x4`), sorted, each once.
    ///
    /// A build that lost its SIMD kernels still gives the right vectors, only about twice as slowly;
    /// this is how the tests and benchmarks see which kernels a target really runs.
    ///
    /// ```no_run
    /// # fn read(p: &str) -> Vec<u8> { std::fs::read(format!("models/all-MiniLM-L6-v2/int8/{p}")).unwrap() }
    /// # let bundle = akidb_core::Bundle::from_files(&read("manifest.json"), |path| Some(read(path)))?;
    /// let embedder = akidb_core::Embedder::new(&bundle)?;
    /// embedder.embed(&["A cat sits on the mat."])?;
    /// assert!(!embedder.matmul_kernels().is_empty());
    /// # Ok::<(), akidb_core::Error>(())
    /// ```
    pub fn matmul_kernels(&self) -> Vec<String> {
        self.model.matmul_kernels()
    }

    /// Whether the weight products run on integer kernels: true for an `int8-dynamic` bundle
    /// ([`Quantization::Int8Dynamic`](crate::Quantization::Int8Dynamic)) on a CPU whose int8 kernels are
    /// fast: x86-64 with VNNI or AMX, or AVX2 + FMA without AVX-512 (akidb's own kernel); aarch64; wasm32
    /// with SIMD128 (akidb's own kernel, every build of akidb-wasm). On x86-64 CPUs with AVX-512 but no
    /// VNNI or AMX the exact `int8-weights` path runs.
    pub fn integer_matmuls(&self) -> bool {
        self.model.integer_matmuls()
    }

    /// Why an `int8-dynamic` bundle on the CPU runs its weight products in f32 instead (this CPU's int8
    /// kernels are slow, e.g. x86-64 with AVX-512 but no VNNI or AMX), if it does; `None` for other
    /// bundles and on the GPU, where f32 is the plan. The vectors and speed are then the exact path's.
    pub fn integer_fallback(&self) -> Option<&'static str> {
        let asked = self.manifest.quantization == crate::Quantization::Int8Dynamic;
        if !asked || self.device() != Device::Cpu {
            return None;
        }
        crate::model::slow_integer_kernels()
    }

    /// Embeds already tokenized texts (as returned by [`Embedder::tokenize`]).
    pub fn embed_tokens(&self, tokens: &[Tokens]) -> Result<Embeddings> {
        let dim = self.manifest.dim;
        let mut data = vec![0f32; tokens.len() * dim];
        let lens: Vec<usize> = tokens.iter().map(|t| t.ids.len()).collect();
        if let Some((i, len)) = lens
            .iter()
            .enumerate()
            .find(|(_, l)| **l == 0 || **l > self.manifest.max_seq_length)
        {
            return Err(Error::Inference(format!(
                "input {i} has {len} tokens; expected 1..={}",
                self.manifest.max_seq_length
            )));
        }
        let chunks = plan_chunks(
            &lens,
            self.manifest.max_seq_length,
            self.options.max_batch,
            self.model.seq_granule(),
        );
        // Every run's plan first, on this thread: a compile holds the model's locks and may split work
        // over the pool, so it must not happen inside a run that the pool's threads share (a thread
        // waiting in a split steals other runs, and one of them could wait on that same lock).
        let runs = chunks
            .iter()
            .map(|chunk| Ok((chunk, self.model.plan(chunk.members.len(), chunk.seq)?)))
            .collect::<Result<Vec<_>>>()?;
        let vectors = map_runs(
            &runs,
            |(chunk, _)| chunk.members.len() * chunk.seq,
            |(chunk, plan)| self.embed_chunk(tokens, &lens, chunk, plan),
        );
        for (chunk, vectors) in chunks.iter().zip(vectors) {
            for (&member, vector) in chunk.members.iter().zip(vectors?.chunks_exact(dim)) {
                data[member * dim..(member + 1) * dim].copy_from_slice(vector);
            }
        }
        Ok(Embeddings { dim, data })
    }

    /// The pooled (and normalised, if the manifest says so) vectors of one run's members, in order.
    fn embed_chunk(&self, tokens: &[Tokens], lens: &[usize], chunk: &Chunk, plan: &Plan) -> Result<Vec<f32>> {
        let dim = self.manifest.dim;
        let hidden = self
            .model
            .run_plan(plan, PaddedBatch::pad(tokens, &chunk.members, chunk.seq))?;
        let hidden = hidden
            .try_as_plain_ram()
            .and_then(|view| view.as_slice::<f32>())
            .map_err(|e| Error::Inference(e.to_string()))?;
        let mut vectors = vec![0f32; chunk.members.len() * dim];
        for ((&member, states), out) in chunk
            .members
            .iter()
            .zip(hidden.chunks_exact(chunk.seq * dim))
            .zip(vectors.chunks_exact_mut(dim))
        {
            pool(states, lens[member], self.manifest.pooling, out);
            if self.manifest.normalize {
                l2_normalise(out);
            }
        }
        Ok(vectors)
    }
}

/// Set once tract's matmuls run on rayon's pool (akidb-wasm's threads build): a batch's runs then go to
/// the pool side by side ([`map_runs`]).
#[cfg(all(target_arch = "wasm32", feature = "wasm-threads"))]
pub(crate) static RUNS_ON_POOL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `run` over a batch's runs, results in order: one after the other, or side by side on rayon's pool
/// where one runs the matmuls.
///
/// On the pool each thread takes the costliest run not yet taken (`cost`: padded tokens), longest first,
/// so the last runs to start are the short ones and the threads finish together; the matmuls' own splits
/// fill what is left at the end. `par_iter` split the list in halves instead: the bench's batch of 32 is
/// six runs, one of them half the tokens, and which thread ended up with what moved its time between 75
/// and 118 ms from one call to the next (2 threads, Chromium, 2026-12-05).
fn map_runs<R: Sync, T: Send>(
    runs: &[R],
    cost: impl Fn(&R) -> usize,
    run: impl Fn(&R) -> T + Sync,
) -> Vec<T> {
    #[cfg(all(target_arch = "wasm32", feature = "wasm-threads"))]
    if runs.len() > 1 && RUNS_ON_POOL.load(std::sync::atomic::Ordering::Acquire) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(cost(&runs[i])));
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<T>>> = runs.iter().map(|_| Mutex::new(None)).collect();
        rayon::scope(|scope| {
            for _ in 0..rayon::current_num_threads().min(runs.len()) {
                scope.spawn(|_| {
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let result = run(&runs[i]);
                        *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    }
                });
            }
        });
        return slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .expect("every run taken by a thread")
            })
            .collect();
    }
    let _ = cost;
    runs.iter().map(run).collect()
}

/// Pools the first `len` token vectors of `states` (`seq × dim`) into `out`.
fn pool(states: &[f32], len: usize, pooling: Pooling, out: &mut [f32]) {
    let dim = out.len();
    match pooling {
        Pooling::Cls => out.copy_from_slice(&states[..dim]),
        Pooling::Mean => {
            out.fill(0.0);
            for token in states[..len * dim].chunks_exact(dim) {
                out.iter_mut().zip(token).for_each(|(o, t)| *o += t);
            }
            let scale = 1.0 / len as f32;
            out.iter_mut().for_each(|o| *o *= scale);
        }
    }
}

/// Scales `v` to unit length, as `torch.nn.functional.normalize` does (norm clamped at 1e-12).
fn l2_normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_ignores_padding() {
        let states = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let mut out = [0.0; 2];
        pool(&states, 2, Pooling::Mean, &mut out);
        assert_eq!(out, [2.0, 3.0]);
        pool(&states, 2, Pooling::Cls, &mut out);
        assert_eq!(out, [1.0, 2.0]);
    }

    #[test]
    fn normalising_gives_unit_length_and_keeps_zero_finite() {
        let mut v = [3.0, 4.0];
        l2_normalise(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        l2_normalise(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }
}
