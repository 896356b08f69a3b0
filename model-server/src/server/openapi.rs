//! The OpenAPI document ([`ApiDoc`]) and the manifest schema it describes.

use super::*;

/// A bundle manifest (format version 1), served byte for byte as published: the fields of akidb-core's
/// `Manifest`, with the constraints a publish checks.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManifestDoc {
    /// Manifest format, 1.
    #[schema(minimum = 1, maximum = 1)]
    pub format_version: u64,
    /// Model name (must equal the URL's).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"
    )]
    pub name: String,
    /// Version (must equal the URL's; not `aliases`).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"
    )]
    pub version: String,
    /// Embedding dimension.
    #[schema(minimum = 1)]
    pub dim: u64,
    /// Longest token sequence the model sees.
    #[schema(minimum = 1)]
    pub max_seq_length: u64,
    /// `mean` or `cls`.
    #[schema(pattern = "^(mean|cls)$")]
    pub pooling: String,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// `none` or `int8-weights`.
    #[schema(pattern = "^(none|int8-weights)$")]
    pub quantization: String,
    /// ONNX input and output names.
    pub onnx: OnnxDoc,
    /// The files (a model and a tokenizer); fetch each from `/v1/blobs/sha256/{sha256}`.
    #[schema(min_items = 2)]
    pub files: Vec<ManifestFile>,
}

/// ONNX input and output names of a manifest.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OnnxDoc {
    /// Token ids input.
    pub input_ids: String,
    /// Attention mask input.
    pub attention_mask: String,
    /// Token type ids input, if the graph has one.
    pub token_type_ids: Option<String>,
    /// Token embeddings output.
    pub output: String,
}

/// A file entry of a manifest.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ManifestFile {
    /// File name within the bundle: a plain file name, no directories.
    #[schema(min_length = 1, pattern = "^[^/\\\\]+$")]
    pub path: String,
    /// `model` or `tokenizer`.
    #[schema(pattern = "^(model|tokenizer)$")]
    pub role: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content: 64 lower-case hex digits.
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Response {
    short_lived_json(&ApiDoc::openapi())
}

pub(crate) struct BearerAuth;

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
    paths(list_models, get_model, get_manifest, get_signature, get_blob, put_blob, put_manifest, put_alias, registry_events, healthz, readyz, metrics, openapi_json),
    components(schemas(ErrorBody, akidb_http::ErrorDetail, ModelList, ModelSummary, ModelDetail, VersionInfo, FileInfo, ManifestDoc, OnnxDoc, ManifestFile,
        BlobStored, Published, AliasTarget, Announcement)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
