//! Write routes: publish a manifest, move an alias; bearer-token authorisation and request-body guards.

use super::*;

/// Answer to a manifest publish.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Published {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// sha256 of the manifest.
    pub manifest_sha256: String,
    /// `true` when the version is new, `false` when the same manifest was already published.
    pub created: bool,
    /// The id of the key the recorded signature names; `null` when published unsigned.
    pub key_id: Option<String>,
}

/// Body of an alias update, and its answer.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AliasTarget {
    /// The version the alias points to.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"
    )]
    pub version: String,
}

pub(crate) fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(r) = &st.0.config.replica {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            format!(
                "this server is a read-only replica of {}: write to the primary",
                r.source()
            ),
        ));
    }
    if st.0.config.read_only {
        return Err(api_error(StatusCode::FORBIDDEN, "this server is read-only"));
    }
    let Some(token) = st.0.config.token.as_deref() else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "writes are disabled: no token configured",
        ));
    };
    let given = bearer_token(headers).unwrap_or("");
    // Compare digests, not the tokens: both are 32 bytes whatever the lengths, and every byte is compared,
    // so neither the token's length nor the position of the first difference shows in the timing.
    let (given, expected) = (Sha256::digest(given.as_bytes()), Sha256::digest(token.as_bytes()));
    let same = given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
    if same {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

/// The credentials of `Authorization: Bearer TOKEN`; the scheme is case-insensitive (RFC 9110 §11.1).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Lets a write through only with the right bearer token on a writable server (401/403 otherwise).
async fn require_writer(State(st): State<AppState>, request: Request, next: Next) -> Response {
    match authorize(&st, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// A write route's handler behind its guards, outermost first: the bearer token (so a client without it
/// learns nothing more about its request than 401/403), then akidb-http's refusal of request bodies in a
/// content coding (415: bodies are stored and hashed as sent).
pub(crate) fn guarded<H, T>(handler: H, st: &AppState) -> impl axum::handler::Handler<T, AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    handler.layer(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(st.clone(), require_writer))
            .layer(axum::middleware::from_fn(akidb_http::refuse_encoded_body)),
    )
}

pub(crate) async fn read_small_body(st: &AppState, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, st.0.config.max_manifest_bytes)
        .await
        .map_err(|e| {
            if body_timed_out(&e) {
                api_error(StatusCode::REQUEST_TIMEOUT, format!("reading the body: {e}"))
            } else {
                api_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large")
            }
        })
}

/// Whether reading a request body failed because it stalled longer than the body-read timeout
/// (akidb-http's layer): then the answer is 408, not a complaint about the body.
pub(crate) fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Publishes a version (step 2 of the HTTP publish): the body is the bundle's `manifest.json`; every file it
/// lists must have been uploaded as a blob. The version is recorded atomically; republishing the same bytes
/// is a no-op (200), different bytes for an existing version are refused (409).
///
/// A signed bundle sends its `manifest.json.sig` base64-encoded in the `Akidb-Signature` header. A server
/// with trusted keys refuses (422, naming the key id and the manifest) a publish whose signature is
/// missing, by a key it does not trust, or does not verify over the body, before anything is stored.
#[utoipa::path(put, path = "/v1/models/{name}/{version}/manifest.json", tag = "write",
    params(("name" = String, Path, description = "Model name (must match the manifest)", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"),
           ("version" = String, Path, description = "Version (must match the manifest; not `aliases`)", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"),
           ("akidb-signature" = Option<String>, Header, description = "Base64 of the bundle's `manifest.json.sig`; \
               required by a server with trusted keys")),
    request_body(content = ManifestDoc, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Published", body = Published),
        (status = 200, description = "Already published with these bytes", body = Published),
        (status = 400, description = "Malformed manifest or URL", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Read-only server", body = ErrorBody),
        (status = 404, description = "No such route (an empty path parameter)", body = ErrorBody),
        (status = 409, description = "This version exists with other content", body = ErrorBody),
        (status = 413, description = "Larger than the limit", body = ErrorBody),
        (status = 422, description = "Blobs the manifest lists are missing, or the signature is missing, \
            untrusted or does not verify (with trusted keys)", body = ErrorBody)))]
pub(crate) async fn put_manifest(
    State(st): State<AppState>,
    P((name, version)): P<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_name("model name", &name)?;
    check_version(&version)?;
    let signature = signature_from_headers(&headers)?;
    let bytes = read_small_body(&st, body).await?;
    let manifest = akidb_core::Manifest::from_json(&bytes)
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, e.to_string()))?;
    if manifest.name != name || manifest.version != version {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!(
                "the manifest is {}@{}, not {name}@{version}",
                manifest.name, manifest.version
            ),
        ));
    }
    let manifest_sha256 = akidb_core::sha256_hex(&bytes);
    let st2 = st.clone();
    let manifest_name = manifest_url(&name, &version);
    let (manifest, recorded, key_id) = blocking(move || {
        publish_manifest_signed(
            &st2.0.registry,
            st2.0.store.as_ref(),
            &bytes,
            &[],
            signature.as_deref(),
            &st2.0.config.trusted_keys,
            &manifest_name,
        )
        .map_err(|e| match e {
            PublishError::Put(PutError::Io(io)) if crate::store::Unavailable::is(&io) => store_error(io),
            e => e.into(),
        })
    })
    .await?;
    let created = recorded == Recorded::Created;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::info!(name = %manifest.name, version = %manifest.version, created, "published");
    // Recorded (Created or Unchanged) means the registry holds exactly these bytes.
    let body = Published {
        key_id,
        manifest_sha256,
        name,
        version,
        created,
    };
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    Ok(r)
}

/// `GET /v1/models/{name}/aliases/manifest.json` is the manifest URL of a version named `aliases`, which
/// is reserved: a 400 that says so. Any other GET of the alias route is a 405 (the route is PUT-only).
pub(crate) async fn get_reserved_version(P((_, alias)): P<(String, String)>, method: Method) -> ApiError {
    if alias == "manifest.json" || alias == "manifest.json.sig" {
        api_error(
            StatusCode::BAD_REQUEST,
            format!("`{RESERVED_VERSION}` is reserved and is not a version"),
        )
    } else {
        api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on this route"),
        )
    }
}

/// Points an alias (e.g. `latest`) at a version.
#[utoipa::path(put, path = "/v1/models/{name}/aliases/{alias}", tag = "write",
    params(("name" = String, Path, description = "Model name", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"),
           ("alias" = String, Path, description = "Alias (not `aliases`)", min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")),
    request_body(content = AliasTarget, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alias now points at the version", body = AliasTarget),
        (status = 400, description = "Malformed name, alias or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Read-only server", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 413, description = "Larger than the limit", body = ErrorBody)))]
pub(crate) async fn put_alias(
    State(st): State<AppState>,
    P((name, alias)): P<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    check_name("model name", &name)?;
    check_name("alias", &alias)?;
    let bytes = read_small_body(&st, body).await?;
    let target: AliasTarget = serde_json::from_slice(&bytes)
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
    check_version(&target.version)?;
    let (n, a, v) = (name.clone(), alias.clone(), target.version.clone());
    st.db(move |r| r.set_alias(&n, &a, &v)).await?;
    tracing::info!(%name, %alias, version = %target.version, "alias set");
    let mut r = Json(target).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    Ok(r)
}
