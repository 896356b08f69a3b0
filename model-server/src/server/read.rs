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
    /// Signed version → the id of the key its signature names (unsigned versions are absent).
    pub key_ids: BTreeMap<String, String>,
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
    /// The id of the key the version's signature names; `null` when it was published unsigned.
    pub key_id: Option<String>,
    /// Where the signature is (`manifest.json.sig`, immutable); `null` when unsigned.
    pub signature_url: Option<String>,
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
    let models = st
        .db(|r| {
            r.models()?
                .into_iter()
                .map(|m| Ok((r.signed_versions(&m.name)?, m)))
                .collect::<Result<Vec<_>, RegistryError>>()
        })
        .await?;
    let list = ModelList {
        models: models
            .into_iter()
            .map(|(key_ids, m)| ModelSummary {
                key_ids,
                url: format!("/v1/models/{}", m.name),
                versions: m.versions.into_iter().map(|v| v.version).collect(),
                aliases: m.aliases.into_iter().collect(),
                name: m.name,
            })
            .collect(),
    };
    Ok(short_lived_json(&list))
}

pub(crate) fn version_info(v: &VersionRecord, key_id: Option<&String>) -> Result<VersionInfo, ApiError> {
    let manifest = akidb_core::Manifest::from_json(&v.manifest).map_err(ApiError::internal)?;
    Ok(VersionInfo {
        key_id: key_id.cloned(),
        signature_url: key_id.map(|_| signature_url(&v.name, &v.version)),
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
    let (m, key_ids) = st
        .db(move |r| {
            let Some(m) = r.model(&n)? else {
                return Ok(None);
            };
            Ok(Some((m, r.signed_versions(&n)?)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("model {name}")))?;
    let detail = ModelDetail {
        versions: m
            .versions
            .iter()
            .map(|v| version_info(v, key_ids.get(&v.version)))
            .collect::<Result<_, _>>()?,
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
    // A hit costs one generation read on this thread (the connection is only tried, never waited for);
    // a miss, or a busy connection, takes the blocking pool as before.
    let hit =
        st.0.registry
            .try_cache_key()
            .and_then(|key| st.0.manifest_cache.get(key, &name, &version));
    let v = match hit {
        Some(v) => v,
        None => {
            let (n, ver) = (name.clone(), version.clone());
            let (key, found) = st
                .db(move |r| {
                    // The key is read before the data, so the data is at least as new as the key: an
                    // entry can be newer than its key (harmless: that key is never current again) but
                    // never older.
                    let key = r.cache_key()?;
                    Ok((key, r.resolve(&n, &ver)?))
                })
                .await?;
            let (v, via_alias) = found.ok_or_else(|| ApiError::not_found(format!("{name}@{version}")))?;
            let v = Arc::new(CachedManifest {
                name: v.name,
                version: v.version,
                manifest_sha256: v.manifest_sha256,
                manifest: Bytes::from(v.manifest),
                via_alias,
            });
            st.0.manifest_cache.insert(key, &name, &version, v.clone());
            v
        }
    };
    let via_alias = v.via_alias;
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
        .body(Body::from(v.manifest.clone()))
        .map_err(ApiError::internal)
}

/// A resolved manifest, as the manifest route answers it.
pub(crate) struct CachedManifest {
    name: String,
    version: String,
    manifest_sha256: String,
    manifest: Bytes,
    via_alias: bool,
}

/// Most entries kept; past it the cache starts over (only names that resolved are cached, so this bounds
/// memory against many distinct real versions, not against junk requests).
const MANIFEST_CACHE_ENTRIES: usize = 4096;

/// Resolved manifests keyed by `(name, version-or-alias)`, valid for one [`crate::registry::CacheKey`]:
/// a publish or alias move (new generation) or a replica's swap (new epoch) empties it.
#[derive(Default)]
pub(crate) struct ManifestCache {
    inner: std::sync::Mutex<ManifestCacheInner>,
}

#[derive(Default)]
struct ManifestCacheInner {
    key: Option<crate::registry::CacheKey>,
    entries: std::collections::HashMap<(String, String), Arc<CachedManifest>>,
}

impl ManifestCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, ManifestCacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: crate::registry::CacheKey, name: &str, version: &str) -> Option<Arc<CachedManifest>> {
        let c = self.lock();
        if c.key != Some(key) {
            return None;
        }
        c.entries.get(&(name.to_owned(), version.to_owned())).cloned()
    }

    fn insert(&self, key: crate::registry::CacheKey, name: &str, version: &str, v: Arc<CachedManifest>) {
        let mut c = self.lock();
        if c.key != Some(key) || c.entries.len() >= MANIFEST_CACHE_ENTRIES {
            c.entries.clear();
            c.key = Some(key);
        }
        c.entries.insert((name.to_owned(), version.to_owned()), v);
    }
}
