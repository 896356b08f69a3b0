//! The bundle format: `manifest.json`, which pins every file of a bundle by size and sha256 and
//! records what the model needs (dimension, truncation, pooling, input and output names).
//!
//! Parsing and checking only: loading a bundle's files is [`crate::Bundle`]'s concern, making a new
//! bundle is [`crate::Bundle::create`]'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The file name of a bundle's manifest, at the bundle's root.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest format this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// How token vectors become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average of the token vectors under the attention mask (sentence-transformers' default).
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
}

/// How the model's weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantization {
    /// Plain fp32 weights.
    None,
    /// int8 weights dequantised in the graph (Cast then Mul by a scale); activations stay fp32.
    Int8Weights,
    /// The same int8 weights, but each weight product runs as int8 × int8 → i32, its activations
    /// quantised per row at run time (8 bits with a zero point). Faster where the CPU has int8 dot
    /// products (or akidb's own AVX2 and wasm SIMD128 kernels); slightly less exact than `int8-weights`
    /// (see akidb-core/PERF.md). On an x86-64 CPU with AVX-512 but no VNNI or AMX, and on wasm32 without
    /// SIMD128, the model runs as `int8-weights` (the bundle is the same file).
    Int8Dynamic,
}

/// What a file in the bundle is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileRole {
    /// The ONNX model.
    Model,
    /// The Hugging Face `tokenizer.json`.
    Tokenizer,
}

/// One file of a bundle, pinned by size and content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the bundle root: a plain file name, no directories.
    pub path: String,
    /// What the file is for.
    pub role: FileRole,
    /// Length in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
}

/// The names of the ONNX graph's inputs and output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnnxIo {
    /// Token ids input, int64 `[batch, sequence]`.
    pub input_ids: String,
    /// Attention mask input, int64 `[batch, sequence]`.
    pub attention_mask: String,
    /// Token type ids input, if the graph has one.
    pub token_type_ids: Option<String>,
    /// Token embeddings output, f32 `[batch, sequence, dim]`.
    pub output: String,
}

/// A bundle's `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_VERSION`] for bundles this build writes.
    pub format_version: u64,
    /// Model name, e.g. `all-MiniLM-L6-v2`.
    pub name: String,
    /// Bundle version, e.g. `1.0.0-int8`.
    pub version: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Longest token sequence the model sees, special tokens included; longer texts are truncated.
    pub max_seq_length: usize,
    /// Pooling of token vectors.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// Weight storage.
    pub quantization: Quantization,
    /// ONNX input and output names.
    pub onnx: OnnxIo,
    /// Every file of the bundle except the manifest itself.
    pub files: Vec<FileEntry>,
    /// `int8-dynamic` bundles: for each weight product (by its ONNX node name), the input channels kept
    /// out of the int8 product and multiplied in f32 instead, as sorted channel indices. Found by
    /// `akidb bundle build` from calibration sentences: a few channels of this model's LayerNorm outputs
    /// reach 15× the others' range, and left in they coarsen every other channel's levels (PERF.md).
    /// Absent or empty: every channel is quantised.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outlier_channels: OutlierChannels,
}

/// Input channels each weight product keeps out of its int8 product, by the product's ONNX node name.
pub type OutlierChannels = BTreeMap<String, Vec<u32>>;

/// At most this many outlier channels per weight product: the f32 side product stays a small part of
/// the integer one, and a manifest can't make a load do unbounded work.
pub const MAX_OUTLIER_CHANNELS: usize = 64;

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A path is safe when it names a file directly in the bundle root.
fn is_plain_file_name(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 255
        && path != "."
        && path != ".."
        && path != MANIFEST_FILE
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Manifest {
    /// Parses and checks `manifest.json`.
    ///
    /// The format version is checked before the rest, so a manifest from a newer format is reported as
    /// such rather than as a missing field.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest> {
        #[derive(Deserialize)]
        struct Probe {
            format_version: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| Error::ManifestSyntax(e.to_string()))?;
        match probe.format_version {
            None => return Err(Error::ManifestSyntax("missing field `format_version`".into())),
            Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::UnsupportedFormat {
                    found: v.to_string(),
                    supported: FORMAT_VERSION,
                })
            }
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::ManifestSyntax(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Serialises the manifest as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        out.push(b'\n');
        out
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::InvalidManifest(msg));
        if self.name.trim().is_empty() || self.version.trim().is_empty() {
            return invalid("`name` and `version` must not be empty".into());
        }
        if self.dim == 0 {
            return invalid("`dim` must be positive".into());
        }
        if self.max_seq_length < 2 {
            return invalid("`max_seq_length` must leave room for [CLS] and [SEP] (at least 2)".into());
        }
        for entry in &self.files {
            if !is_plain_file_name(&entry.path) {
                return invalid(format!(
                    "file path `{}` is not a plain file name (letters, digits, '.', '_', '-')",
                    entry.path.escape_debug()
                ));
            }
            if entry.sha256.len() != 64
                || !entry
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return invalid(format!(
                    "file `{}` has a malformed sha256 `{}`",
                    entry.path, entry.sha256
                ));
            }
        }
        for (i, entry) in self.files.iter().enumerate() {
            if self.files[..i].iter().any(|e| e.path == entry.path) {
                return invalid(format!("file `{}` is listed twice", entry.path));
            }
        }
        for role in [FileRole::Model, FileRole::Tokenizer] {
            let n = self.files.iter().filter(|f| f.role == role).count();
            if n != 1 {
                return invalid(format!("expected exactly one file with role {role:?}, found {n}"));
            }
        }
        if !self.outlier_channels.is_empty() && self.quantization != Quantization::Int8Dynamic {
            return invalid("`outlier_channels` is for `int8-dynamic` bundles only".into());
        }
        for (product, channels) in &self.outlier_channels {
            if channels.len() > MAX_OUTLIER_CHANNELS {
                return invalid(format!(
                    "`outlier_channels` of `{product}` lists {} channels (at most {MAX_OUTLIER_CHANNELS})",
                    channels.len()
                ));
            }
            if channels.windows(2).any(|w| w[0] >= w[1]) {
                return invalid(format!(
                    "`outlier_channels` of `{product}` must be in increasing order, each once"
                ));
            }
        }
        Ok(())
    }

    /// The entry holding the file with `role`.
    pub fn file(&self, role: FileRole) -> &FileEntry {
        self.files
            .iter()
            .find(|f| f.role == role)
            .expect("validated manifests have every role")
    }

    /// Total size of the bundle's files, in bytes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Checks `bytes` against the entry for `path`: size first (cheap), then sha256.
    pub fn verify_file(&self, entry: &FileEntry, bytes: &[u8]) -> Result<()> {
        self.verify_hashed_file(entry, bytes, || sha256_hex(bytes))
    }

    /// Checks `bytes` against `entry` by size, then by the sha256 `digest` gives (computed only if the
    /// size matches).
    pub(crate) fn verify_hashed_file(
        &self,
        entry: &FileEntry,
        bytes: &[u8],
        digest: impl FnOnce() -> String,
    ) -> Result<()> {
        if bytes.len() as u64 != entry.size {
            return Err(Error::SizeMismatch {
                path: entry.path.clone(),
                expected: entry.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = digest();
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(Error::HashMismatch {
                path: entry.path.clone(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid manifest of a tiny bundle whose model is `abc` and tokenizer `{}`.
    pub(crate) fn manifest() -> serde_json::Value {
        serde_json::json!({
            "format_version": 1, "name": "m", "version": "1", "dim": 4, "max_seq_length": 8,
            "pooling": "mean", "normalize": true, "quantization": "none",
            "onnx": {"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": null, "output": "out"},
            "files": [
                {"path": "model.onnx", "role": "model", "size": 3, "sha256": sha256_hex(b"abc")},
                {"path": "tokenizer.json", "role": "tokenizer", "size": 2, "sha256": sha256_hex(b"{}")}
            ]
        })
    }

    pub(crate) fn parse(v: &serde_json::Value) -> Result<Manifest> {
        Manifest::from_json(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn a_valid_manifest_round_trips() {
        let m = parse(&manifest()).unwrap();
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        assert_eq!(m.total_size(), 5);
    }

    #[test]
    fn unsafe_or_odd_paths_are_refused() {
        for bad in [
            "../model.onnx",
            "/etc/passwd",
            "a/b",
            "..",
            ".",
            "",
            "manifest.json",
            "nul\0x",
            "%2e%2e",
        ] {
            let mut v = manifest();
            v["files"][0]["path"] = bad.into();
            assert!(
                matches!(parse(&v), Err(Error::InvalidManifest(_))),
                "{bad:?} accepted"
            );
        }
        let mut v = manifest();
        v["files"][0]["path"] = "x".repeat(300).into();
        assert!(parse(&v).is_err());
    }

    #[test]
    fn format_version_is_checked_first() {
        let v = serde_json::json!({"format_version": 2});
        assert!(matches!(
            parse(&v),
            Err(Error::UnsupportedFormat { ref found, supported: 1 }) if found == "2"
        ));
        // A negative or non-integer version is reported as written, not as a wrapped-around u64.
        let err = parse(&serde_json::json!({"format_version": -1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("format_version -1,"), "{err}");
        let err = parse(&serde_json::json!({"format_version": "1"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("format_version \"1\","), "{err}");
        assert!(matches!(
            parse(&serde_json::json!({"name": "x"})),
            Err(Error::ManifestSyntax(_))
        ));
        assert!(matches!(
            Manifest::from_json(b"{not json"),
            Err(Error::ManifestSyntax(_))
        ));
    }

    #[test]
    fn outlier_channels_round_trip_on_int8_dynamic_bundles_only() {
        let mut v = manifest();
        v["quantization"] = "int8-dynamic".into();
        v["outlier_channels"] = serde_json::json!({"/l0/q/MatMul": [3, 99], "/l0/ffn/MatMul": [7]});
        let m = parse(&v).unwrap();
        assert_eq!(m.outlier_channels["/l0/q/MatMul"], vec![3, 99]);
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        // Without any, the field is left out, so manifests from before it are written as they were.
        let plain = parse(&manifest()).unwrap();
        assert!(!String::from_utf8(plain.to_json())
            .unwrap()
            .contains("outlier_channels"));

        let refused = |v: &serde_json::Value, why: &str| {
            let err = parse(v).unwrap_err();
            assert!(matches!(err, Error::InvalidManifest(_)), "{err:?}");
            assert!(err.to_string().contains(why), "{err}");
        };
        let mut other = v.clone();
        other["quantization"] = "int8-weights".into();
        refused(&other, "for `int8-dynamic` bundles only");
        let mut unsorted = v.clone();
        unsorted["outlier_channels"]["/l0/q/MatMul"] = serde_json::json!([99, 3]);
        refused(&unsorted, "increasing order");
        let mut repeated = v.clone();
        repeated["outlier_channels"]["/l0/q/MatMul"] = serde_json::json!([3, 3]);
        refused(&repeated, "increasing order");
        let mut too_many = v;
        too_many["outlier_channels"]["/l0/q/MatMul"] = (0..=MAX_OUTLIER_CHANNELS as u32).collect();
        refused(&too_many, "at most 64");
    }

    #[test]
    fn roles_must_be_unique_and_complete() {
        let mut v = manifest();
        v["files"][1]["role"] = "model".into();
        let err = parse(&v).unwrap_err().to_string();
        assert!(err.contains("exactly one file with role"), "{err}");
    }

    #[test]
    fn files_are_verified_by_size_then_hash() {
        let m = parse(&manifest()).unwrap();
        let entry = m.file(FileRole::Model);
        assert!(m.verify_file(entry, b"abc").is_ok());
        assert!(matches!(
            m.verify_file(entry, b"ab"),
            Err(Error::SizeMismatch { .. })
        ));
        let err = m.verify_file(entry, b"abd").unwrap_err().to_string();
        assert!(err.contains("model.onnx") && err.contains("corrupt"), "{err}");
    }
}
