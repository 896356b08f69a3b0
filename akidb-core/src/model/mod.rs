//! The ONNX sentence model under tract: [`SentenceModel`] loads a model and runs padded batches.
//!
//! Split by concern, each a topic of its own:
//! - [`inspect`](mod@inspect): parsing, and the facts a manifest records about a model (bundles are
//!   built from them too);
//! - [`rewrite`]: graph rewrites made once at load (constant folding, int8 dequantisation);
//! - [`integer`]: the integer matmul path of `int8-dynamic` bundles, [`fused`]: its products as one op
//!   per activation (wasm32), and [`calibrate`]: its outlier channels, found when such a bundle is built;
//! - [`nan_guard`]: the exported attention's softmax NaN guard as one in-place op;
//! - [`share`]: one copy of each equal weight across the graphs and plans of every shape;
//! - [`plans`]: concrete-shape plans cached per (batch, sequence) bucket.

mod calibrate;
mod fused;
mod inspect;
mod integer;
pub(crate) use integer::slow_integer_kernels;
mod nan_guard;
mod plans;
mod rewrite;
mod share;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

pub(crate) use calibrate::outlier_channels;
pub(crate) use inspect::inspect;
use inspect::{check_max_seq_length, parse_named};
pub(crate) use plans::Plan;
use plans::{Base, PlanCache};
use rewrite::{fold_constants, prepare, FoldedWeights};
use share::SharedConsts;

use crate::error::{Error, Result};
use crate::manifest::{FileRole, Manifest, OutlierChannels, Quantization};
use crate::tokenize::Tokens;

/// A model error naming the model file, for a user to act on.
fn model_error(path: &str, e: impl std::fmt::Display) -> Error {
    Error::Model {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// A loaded sentence model.
pub(crate) struct SentenceModel {
    source: InferenceModel,
    /// Typed graphs by batch size, with `sequence` still symbolic.
    bases: Mutex<(HashMap<usize, Base>, FoldedWeights)>,
    consts: Mutex<SharedConsts>,
    sequence: Symbol,
    has_token_types: bool,
    plans: Mutex<PlanCache>,
    path: String,
    /// Weight products run as int8 × int8 → i32 ([`integer`]): an `int8-dynamic` bundle on a CPU with fast
    /// integer kernels.
    integer: bool,
    /// How those products are wired ([`integer::ProductOps::here`]; tests may pick the other).
    products: integer::ProductOps,
    /// The manifest's outlier channels of those products.
    outliers: OutlierChannels,
    /// Plans are compiled for the GPU (tract-cuda) rather than the CPU: see [`crate::device`].
    #[cfg_attr(not(feature = "cuda-backend"), allow(dead_code))]
    gpu: bool,
}

/// Token ids and masks of a padded `[batch, seq]` block, row-major.
pub(crate) struct PaddedBatch {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub type_ids: Vec<i64>,
}

impl PaddedBatch {
    /// The texts `members` of `tokens`, one row each, padded to `seq` tokens.
    pub(crate) fn pad(tokens: &[Tokens], members: &[usize], seq: usize) -> PaddedBatch {
        let batch = members.len();
        let mut ids = vec![0i64; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        let mut type_ids = vec![0i64; batch * seq];
        for (row, &m) in members.iter().enumerate() {
            let t = &tokens[m];
            for (j, (&id, &ty)) in t.ids.iter().zip(&t.type_ids).enumerate() {
                ids[row * seq + j] = id as i64;
                mask[row * seq + j] = 1;
                type_ids[row * seq + j] = ty as i64;
            }
        }
        PaddedBatch {
            batch,
            seq,
            ids,
            mask,
            type_ids,
        }
    }

    /// The model's inputs: ids, mask and, when the graph has that input, token types, each `[batch, seq]`.
    fn into_inputs(self, has_token_types: bool) -> Result<TVec<TValue>> {
        let (batch, seq) = (self.batch, self.seq);
        let to_tensor = |v: Vec<i64>| -> Result<TValue> {
            Ok(tract_ndarray::Array2::from_shape_vec((batch, seq), v)
                .map_err(|e| Error::Inference(e.to_string()))?
                .into_tensor()
                .into_tvalue())
        };
        let mut inputs = tvec!(to_tensor(self.ids)?, to_tensor(self.mask)?);
        if has_token_types {
            inputs.push(to_tensor(self.type_ids)?);
        }
        Ok(inputs)
    }
}

impl SentenceModel {
    /// Parses and prepares the model named by `manifest`; `plan_capacity` bounds the cached shapes.
    pub(crate) fn load(bytes: &[u8], manifest: &Manifest, plan_capacity: usize) -> Result<SentenceModel> {
        let path = manifest.file(FileRole::Model).path.clone();
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        crate::wasm_kernels::keep_linked();
        #[cfg(target_arch = "x86_64")]
        crate::x86_kernels::keep_linked();
        let mut source = parse_named(bytes, &manifest.onnx, &path)?;
        check_max_seq_length(&source, manifest.max_seq_length, &path)?;
        fold_constants(&mut source).map_err(|e| model_error(&path, format!("{e:#}")))?;
        let mut folded = FoldedWeights::new();
        let mut consts = SharedConsts::default();
        let integer =
            manifest.quantization == Quantization::Int8Dynamic && integer::slow_integer_kernels().is_none();
        let outliers = manifest.outlier_channels.clone();
        let products = integer::ProductOps::here();
        let mut base = prepare(
            source.clone(),
            1,
            integer.then_some((&outliers, products)),
            &mut folded,
            &path,
        )?;
        consts.share(&mut base).map_err(|e| model_error(&path, e))?;
        let base = Arc::new(base);
        let fact = base.output_fact(0).map_err(|e| model_error(&path, e))?;
        if fact.rank() != 3 || fact.shape[2] != manifest.dim.to_dim() {
            return Err(model_error(
                &path,
                format!(
                    "output shape is {:?} but the manifest says dim {}",
                    fact.shape, manifest.dim
                ),
            ));
        }
        let sequence = base.symbols.sym("sequence");
        Ok(SentenceModel {
            source,
            bases: Mutex::new((HashMap::from([(1, Base::new(base))]), folded)),
            consts: Mutex::new(consts),
            sequence,
            has_token_types: manifest.onnx.token_type_ids.is_some(),
            plans: Mutex::new(PlanCache::new(plan_capacity)),
            integer,
            products,
            outliers,
            path,
            gpu: false,
        })
    }

    /// The same model with its plans compiled for the GPU. The device must have been opened
    /// ([`crate::device::open_cuda`]); no plan is compiled yet.
    #[cfg(feature = "cuda-backend")]
    pub(crate) fn on_gpu(mut self) -> SentenceModel {
        self.gpu = true;
        // The integer path's ops are CPU kernels tract-cuda cannot run: on the GPU an `int8-dynamic`
        // bundle's weight products run in f32 on cuBLAS, as the exact path's do, so the graphs typed at
        // load for it are dropped and made again without them.
        if self.integer {
            self.integer = false;
            self.bases.get_mut().unwrap_or_else(|p| p.into_inner()).0.clear();
        }
        self
    }

    /// Whether weight products run on integer kernels (an `int8-dynamic` bundle where they are fast).
    pub(crate) fn integer_matmuls(&self) -> bool {
        self.integer
    }

    /// The multiple that padded sequence lengths should have: tract's x86 integer kernels (VNNI, AMX)
    /// take their 16-wide tiles only when the product has ≥ 16 columns (tokens); at 12 they fall to 8×8
    /// tiles no faster than f32 (PERF.md). Our AVX2 and wasm integer kernels are 4 columns wide, and
    /// aarch64's 8×8 has no such step.
    pub(crate) fn seq_granule(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self.integer && crate::x86_kernels::weight_kernel_here(DatumType::I32).is_none() {
            return 16;
        }
        4
    }

    /// Runs one padded block on its plan ([`SentenceModel::plan`] of its shape) and returns
    /// `last_hidden_state`, `[batch, seq, dim]` row-major. It takes no lock, so runs side by side on a
    /// thread pool can't wait on a plan compile that waits on the pool.
    pub(crate) fn run_plan(&self, plan: &Plan, input: PaddedBatch) -> Result<Tensor> {
        let inputs = input.into_inputs(self.has_token_types)?;
        let mut out = plan.run(inputs).map_err(|e| Error::Inference(format!("{e:#}")))?;
        Ok(out.remove(0).into_tensor())
    }
}

/// Models of the bundles `scripts/fetch-models.sh` builds, for the unit tests of this module's parts.
#[cfg(test)]
pub(super) mod test_models {
    use super::SentenceModel;
    use crate::bundle::Bundle;

    /// The model of `models/all-MiniLM-L6-v2/<variant>` (`int8`, `int8-dynamic`, `fp32`).
    pub(crate) fn bundle_model(variant: &str, plan_capacity: usize) -> SentenceModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models/all-MiniLM-L6-v2")
            .join(variant);
        let read = |p: &str| std::fs::read(dir.join(p)).ok();
        let manifest = read("manifest.json").expect("run scripts/fetch-models.sh first");
        let bundle = Bundle::from_files(&manifest, read).unwrap();
        SentenceModel::load(bundle.model_bytes(), bundle.manifest(), plan_capacity).unwrap()
    }
}
