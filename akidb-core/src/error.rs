use thiserror::Error;

/// Everything that can go wrong between bundle bytes and an embedding.
///
/// Messages name the file or field at fault so that a user can act on them without reading code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// `manifest.json` is not JSON, or lacks a field this format version requires.
    #[error("manifest.json is not a valid bundle manifest: {0}")]
    ManifestSyntax(String),
    /// The manifest was written by a newer (or unknown) bundle format.
    #[error("manifest.json has format_version {found}, but this build of akidb reads format_version {supported}; upgrade akidb or rebuild the bundle")]
    UnsupportedFormat {
        /// The value as the manifest writes it (`2`, `-1`, `"1"`, ...).
        found: String,
        /// The format this build reads.
        supported: u64,
    },
    /// The manifest parses but contradicts itself or names an unsafe path.
    #[error("manifest.json is invalid: {0}")]
    InvalidManifest(String),
    /// A file the manifest lists is not there.
    #[error("bundle file `{path}` is missing or unreadable")]
    MissingFile { path: String },
    /// A file's length differs from the manifest's (often a truncated download).
    #[error(
        "bundle file `{path}` has {actual} bytes but the manifest says {expected}: truncated or replaced"
    )]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    /// A file's content hash differs from the manifest's.
    #[error("bundle file `{path}` is corrupt: its sha256 is {actual} but the manifest says {expected}")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    /// The tokenizer file could not be parsed.
    #[error("tokenizer file `{path}` is not a usable tokenizer.json: {reason}")]
    Tokenizer { path: String, reason: String },
    /// Tokenizing a text failed (should not happen for any UTF-8 input).
    #[error("tokenizing input {index} failed: {reason}")]
    Tokenize { index: usize, reason: String },
    /// The model file is not ONNX, or not a model this core can run.
    #[error("model file `{path}` is not a usable ONNX sentence model: {reason}")]
    Model { path: String, reason: String },
    /// The bundle truncates at more tokens than the model has learned positions for: longer inputs would
    /// index past the model's position-embedding table.
    #[error(
        "max_seq_length {max_seq_length} exceeds the {positions} positions of model `{path}` (the rows of its position-embedding table `{table}`); use a max_seq_length of at most {positions}"
    )]
    SeqLengthOverPositions {
        path: String,
        table: String,
        max_seq_length: usize,
        positions: usize,
    },
    /// The device asked for cannot be used (no GPU support in this build, no driver, a CUDA library
    /// missing, no such device, or the GPU cannot run the model).
    #[error("device {device} is not usable: {reason}")]
    Device { device: String, reason: String },
    /// Running the model failed.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
