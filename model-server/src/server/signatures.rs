//! Signed bundles (issue #19): the signature route, and the signature header of an HTTP publish.
//!
//! A version's signature is the bundle's `manifest.json.sig` (akidb-core's `signing` format), recorded in
//! the registry with the version. It is served beside the manifest and cached like it: immutable by exact
//! version, short-lived through an alias.

use super::*;

/// Request header of a signed HTTP publish: the standard base64 (with padding) of the bundle's
/// `manifest.json.sig`, e.g. `Akidb-Signature: $(base64 -w0 manifest.json.sig)`.
pub const SIGNATURE_HEADER: &str = "akidb-signature";

pub(crate) fn signature_url(name: &str, version: &str) -> String {
    format!(
        "{}{}",
        manifest_url(name, version),
        akidb_core::signing::SIGNATURE_SUFFIX
    )
}

/// The signature of a publish: the bytes of `manifest.json.sig` from [`SIGNATURE_HEADER`], `None`
/// without the header. Sent twice, or not base64: 400.
pub(crate) fn signature_from_headers(headers: &HeaderMap) -> Result<Option<Vec<u8>>, ApiError> {
    use base64::Engine as _;
    let mut values = headers.get_all(SIGNATURE_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("{SIGNATURE_HEADER} is given more than once"),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes().trim_ascii())
        .map(Some)
        .map_err(|e| {
            api_error(
                StatusCode::BAD_REQUEST,
                format!("{SIGNATURE_HEADER} is not the base64 of a manifest.json.sig: {e}"),
            )
        })
}

/// The signature of a version, exactly as published; `version` may be an alias.
#[utoipa::path(get, path = "/v1/models/{name}/{version}/manifest.json.sig", tag = "read",
    params(("name" = String, Path, description = "Model name: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.`", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"),
           ("version" = String, Path, description = "Version, or an alias such as `latest`; same syntax as names, and \
               not `aliases` (reserved: 400)", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The detached ed25519 signature of the manifest \
            (`{\"algorithm\":\"ed25519\",\"key_id\":…,\"signature\":…}`). Cache-Control: immutable by version, \
            max-age=60 through an alias; ETag: its sha256", content_type = "application/json"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "Malformed name or version", body = ErrorBody),
        (status = 404, description = "No such version or alias, or the version was published unsigned", body = ErrorBody)))]
pub(crate) async fn get_signature(
    State(st): State<AppState>,
    P((name, version)): P<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_name("model name", &name)?;
    check_version(&version)?;
    let (n, v) = (name.clone(), version.clone());
    let found = st
        .db(move |r| {
            let Some((record, via_alias)) = r.resolve(&n, &v)? else {
                return Ok(None);
            };
            let signature = r.signature(&record.manifest_sha256)?;
            Ok(Some((record.name, record.version, via_alias, signature)))
        })
        .await?;
    let (name, resolved, via_alias, signature) =
        found.ok_or_else(|| ApiError::not_found(format!("{name}@{version}")))?;
    let Some((_key_id, bytes)) = signature else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            format!("{name}@{resolved} was published without a signature"),
        ));
    };
    let etag = format!("\"{}\"", akidb_core::sha256_hex(&bytes));
    let cache = if via_alias { SHORT_LIVED } else { IMMUTABLE };
    let builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_LOCATION, signature_url(&name, &resolved))
        .header("x-model-version", &resolved);
    if etag_matches(&headers, &etag) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    builder
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .map_err(ApiError::internal)
}
