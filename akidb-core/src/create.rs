//! Making a new bundle from a model and a tokenizer: the one place that reads a model to write a
//! manifest. Kept apart from the format ([`crate::manifest`]) so that the format does not depend on
//! the model code, which itself reads manifests.

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::manifest::{sha256_hex, FileEntry, FileRole, Manifest, Pooling, Quantization, FORMAT_VERSION};
use crate::model::{inspect, outlier_channels};
use crate::tokenize::TextTokenizer;

/// What a caller states when building a bundle; the rest is read off the model.
#[derive(Clone, Debug)]
pub struct BundleSpec {
    /// Model name.
    pub name: String,
    /// Bundle version.
    pub version: String,
    /// Pooling (mean for sentence-transformers models).
    pub pooling: Pooling,
    /// Truncation length, special tokens included (256 for all-MiniLM-L6-v2).
    pub max_seq_length: usize,
    /// Whether to L2-normalise.
    pub normalize: bool,
    /// `Some(Quantization::Int8Dynamic)` asks for the integer matmul path (an int8 model only); `None`
    /// records what the model holds (`none` or `int8-weights`).
    pub quantization: Option<Quantization>,
    /// `int8-dynamic` only: texts to find each weight product's outlier input channels from (recorded
    /// as the manifest's `outlier_channels`; a few dozen sentences like the ones the model will see).
    /// Empty: every channel is quantised, which is less exact. Ignored for other quantisations.
    pub calibration: Vec<String>,
}

/// File name of the model inside bundles this build writes.
pub const MODEL_FILE: &str = "model.onnx";
/// File name of the tokenizer inside bundles this build writes.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

impl Bundle {
    /// Builds a new bundle from a model and a tokenizer, checking that both load and that the model has
    /// positions for `max_seq_length` tokens, and reading the embedding dimension, quantisation and ONNX
    /// names off the model. An `int8-dynamic` bundle is calibrated on `spec.calibration` (the exact
    /// model runs each text once).
    pub fn create(spec: BundleSpec, model: Vec<u8>, tokenizer: Vec<u8>) -> Result<Bundle> {
        let text_tokenizer = TextTokenizer::from_bytes(&tokenizer, TOKENIZER_FILE, spec.max_seq_length)?;
        let facts = inspect(&model, MODEL_FILE, spec.max_seq_length)?;
        let quantization = match (spec.quantization, facts.quantization) {
            (None, held) => held,
            (Some(asked), held) if asked == held => held,
            (Some(Quantization::Int8Dynamic), Quantization::Int8Weights) => Quantization::Int8Dynamic,
            (Some(asked), held) => {
                return Err(Error::Model {
                    path: MODEL_FILE.into(),
                    reason: format!(
                        "quantization {} was asked for, but the model's weights are {} \
                         (int8-dynamic needs an int8-weights model)",
                        quantization_name(asked),
                        quantization_name(held)
                    ),
                })
            }
        };
        let mut manifest = Manifest {
            format_version: FORMAT_VERSION,
            name: spec.name,
            version: spec.version,
            dim: facts.dim,
            max_seq_length: spec.max_seq_length,
            pooling: spec.pooling,
            normalize: spec.normalize,
            quantization,
            onnx: facts.io,
            files: vec![
                FileEntry {
                    path: MODEL_FILE.into(),
                    role: FileRole::Model,
                    size: model.len() as u64,
                    sha256: sha256_hex(&model),
                },
                FileEntry {
                    path: TOKENIZER_FILE.into(),
                    role: FileRole::Tokenizer,
                    size: tokenizer.len() as u64,
                    sha256: sha256_hex(&tokenizer),
                },
            ],
            outlier_channels: Default::default(),
        };
        manifest.validate()?;
        if quantization == Quantization::Int8Dynamic && !spec.calibration.is_empty() {
            let texts: Vec<&str> = spec.calibration.iter().map(String::as_str).collect();
            manifest.outlier_channels = outlier_channels(&model, &manifest, &text_tokenizer, &texts)?;
            manifest.validate()?;
        }
        Ok(Bundle::from_verified_parts(manifest, model, tokenizer))
    }
}

/// The manifest's name of `q` (`none`, `int8-weights`, `int8-dynamic`).
fn quantization_name(q: Quantization) -> String {
    serde_json::to_value(q)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{q:?}"))
}
