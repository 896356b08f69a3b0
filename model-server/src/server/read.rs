//! Read routes of the registry: the model listing, a model, a manifest (by version or alias).

use super::*;

/// `GET /v1/models`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Every model, by name.
    pub models: Vec<ModelSummary>,
}

/// A model in the listing.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Published versions, oldest first.
    pub versions: Vec<String>,
    /// Alias → version, e.g. `latest` → `1.0.0-int8`.
    pub aliases: BTreeMap<String, String>,
    /// URL of the model's detail document.
    pub url: String,
}

/// `GET /v1/models/{name}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ModelDetail {
    /// Model name.
    pub name: String,
    /// Alias → version.
    pub aliases: BTreeMap<String, String>,
    /// Published versions, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// One version in [`ModelDetail`].
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    /// Version.
    pub version: String,
    /// Where the manifest is (immutable).
    pub manifest_url: String,
    /// sha256 of the manifest's bytes (also its blob name and ETag).
    pub manifest_sha256: String,
    /// Sum of the file sizes, in bytes.
    pub total_size: u64,
    /// Unix seconds.
    pub published_at: i64,
    /// The files, each at its content-addressed URL.
    pub files: Vec<FileInfo>,
}

/// One file of a version.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct FileInfo {
    /// File name within the bundle.
    pub path: String,
    /// `model` or `tokenizer`.
    pub role: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content.
    pub sha256: String,
    /// `/v1/blobs/sha256/{sha256}`.
    pub url: String,
}

pub(crate) fn blob_url(sha: &str) -> String {
    format!("/v1/blobs/sha256/{sha}")
}

pub(crate) fn manifest_url(name: &str, version: &str) -> String {
    format!("/v1/models/{name}/{version}/manifest.json")
}

pub(crate) fn short_lived_json<T: Serialize>(value: &T) -> Response {
    let mut r = Json(value).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(SHORT_LIVED));
    r
}

/// Every model with its versions and aliases.
#[utoipa::path(get, path = "/v1/models", tag = "read",
    responses((status = 200, description = "The models (Cache-Control: max-age=60, stale-while-revalidate)", body = ModelList)))]
pub(crate) async fn list_models(State(st): State<AppState>) -> Result<Response, ApiError> {
    let models = st.db(|r| r.models()).await?;
    let list = ModelList {
        models: models
            .into_iter()
            .map(|m| ModelSummary {
                url: format!("/v1/models/{}", m.name),
                versions: m.versions.into_iter().map(|v| v.version).collect(),
                aliases: m.aliases.into_iter().collect(),
                name: m.name,
            })
            .collect(),
    };
    Ok(short_lived_json(&list))
}

pub(crate) fn version_info(v: &VersionRecord) -> Result<VersionInfo, ApiError> {
    let manifest = akidb_core::Manifest::from_json(&v.manifest).map_err(ApiError::internal)?;
    Ok(VersionInfo {
        manifest_url: manifest_url(&v.name, &v.version),
        version: v.version.clone(),
        manifest_sha256: v.manifest_sha256.clone(),
        total_size: v.total_size,
        published_at: v.published_at,
        files: manifest
            .files
            .iter()
            .map(|f| FileInfo {
                path: f.path.clone(),
                role: serde_json::to_value(f.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                size: f.size,
                sha256: f.sha256.clone(),
                url: blob_url(&f.sha256),
            })
            .collect(),
    })
}

/// One model: its versions (with file URLs) and aliases.
#[utoipa::path(get, path = "/v1/models/{name}", tag = "read",
    params(("name" = String, Path, description = "Model name: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.`", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The model (short-lived cache)", body = ModelDetail),
        (status = 400, description = "Malformed name", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody)))]
pub(crate) async fn get_model(State(st): State<AppState>, P(name): P<String>) -> Result<Response, ApiError> {
    check_name("model name", &name)?;
    let n = name.clone();
    let m = st
        .db(move |r| r.model(&n))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("model {name}")))?;
    let detail = ModelDetail {
        versions: m.versions.iter().map(version_info).collect::<Result<_, _>>()?,
        aliases: m.aliases.into_iter().collect(),
        name: m.name,
    };
    Ok(short_lived_json(&detail))
}

pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
        })
}

/// The manifest of a version, exactly as published; `version` may be an alias.
#[utoipa::path(get, path = "/v1/models/{name}/{version}/manifest.json", tag = "read",
    params(("name" = String, Path, description = "Model name: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.`", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"),
           ("version" = String, Path, description = "Version, or an alias such as `latest`; same syntax as names, and \
               not `aliases` (reserved: 400)", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The manifest bytes. By version: immutable; by alias: short-lived, with \
            Content-Location naming the version", body = ManifestDoc,
            headers(("ETag" = String, description = "Quoted sha256 of the manifest"))),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, description = "Malformed name or version", body = ErrorBody),
        (status = 404, description = "No such model, version or alias", body = ErrorBody)))]
pub(crate) async fn get_manifest(
    State(st): State<AppState>,
    headers: HeaderMap,
    P((name, version)): P<(String, String)>,
) -> Result<Response, ApiError> {
    check_name("model name", &name)?;
    check_version(&version)?;
    let (n, ver) = (name.clone(), version.clone());
    let (v, via_alias) = st
        .db(move |r| r.resolve(&n, &ver))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{name}@{version}")))?;
    let etag = format!("\"{}\"", v.manifest_sha256);
    let cache = if via_alias { SHORT_LIVED } else { IMMUTABLE };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_LOCATION, manifest_url(&v.name, &v.version))
        .header("x-model-version", &v.version);
    if etag_matches(&headers, &etag) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::empty()).map_err(ApiError::internal);
    }
    builder
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.manifest))
        .map_err(ApiError::internal)
}
