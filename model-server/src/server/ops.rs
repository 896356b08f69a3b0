//! Operational routes and middleware: health, readiness, metrics, response headers, compression policy,
//! and the confined static site (`--static`), served cross-origin isolated.

use super::*;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> Response {
    ([(header::CACHE_CONTROL, NO_STORE)], "ok\n").into_response()
}

/// Readiness: the registry database and the blob store both work (on a replica: and its snapshot is
/// loaded and no older than `--max-staleness`).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready", body = String, content_type = "text/plain"),
    (status = 503, description = "Not ready: the JSON error's message names the reason", body = ErrorBody)))]
pub(crate) async fn readyz(State(st): State<AppState>) -> Response {
    match readiness(&st).await {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, NO_STORE)], "ready\n").into_response(),
        Err(reason) => {
            let msg = format!("not ready: {reason}");
            tracing::warn!("{msg}");
            api_error(StatusCode::SERVICE_UNAVAILABLE, msg).into_response()
        }
    }
}

/// The readiness checks, on the blocking pool; `Ok` when both pass (and, on a replica, when its snapshot
/// is loaded and fresh: see [`crate::replica::ReplicaStatus::readiness`]).
async fn readiness(st: &AppState) -> Result<(), String> {
    let st2 = st.clone();
    match tokio::task::spawn_blocking(move || (st2.0.registry.check(), st2.0.store.check())).await {
        Ok((Ok(()), Ok(()))) => {}
        checks => return Err(format!("{checks:?}")),
    }
    match &st.0.config.replica {
        Some(r) => r.readiness(),
        None => Ok(()),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(st): State<AppState>) -> Response {
    st.0.ready.set(i64::from(readiness(&st).await.is_ok()));
    if let (Some(m), Some(r)) = (&st.0.replica_metrics, &st.0.config.replica) {
        m.refresh(r);
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CACHE_CONTROL, NO_STORE),
        ],
        akidb_http::render(&st.0.metrics),
    )
        .into_response()
}

/// Headers every answer carries: `Cross-Origin-Resource-Policy: cross-origin` (cross-origin-isolated pages
/// may load blobs) and `X-Content-Type-Options: nosniff`.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// Compress JSON only (listings, OpenAPI, errors): never model bytes, and never responses with a strong
/// `ETag` (manifests), whose bytes clients verify and whose validator names the identity encoding.
pub(crate) fn compress_json(
    status: StatusCode,
    _: axum::http::Version,
    headers: &HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    let _ = status;
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
        && !headers.contains_key(header::ETAG)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a path segment may be served: not empty, no dotfile (`.env`, `.git`, `..`), no separators or
/// NUL that the OS would read differently.
pub(crate) fn servable_segment(seg: &str) -> bool {
    !seg.is_empty() && !seg.starts_with('.') && !seg.contains(['/', '\\', '\0'])
}

/// The file a static request names, resolved (symlinks followed) and confined: it must lie inside `root`
/// (itself resolved) after resolution, and no component of its resolved path below `root` may be a
/// dotfile. A directory means its `index.html`. `None` for anything else.
pub(crate) fn resolve_static(root: &std::path::Path, segments: &[String]) -> Option<PathBuf> {
    let confined = |p: PathBuf| -> Option<PathBuf> {
        let real = p.canonicalize().ok()?;
        let below = real.strip_prefix(root).ok()?;
        below
            .components()
            .all(|c| servable_segment(&c.as_os_str().to_string_lossy()))
            .then_some(real)
    };
    let mut real = confined(segments.iter().fold(root.to_path_buf(), |p, s| p.join(s)))?;
    if real.is_dir() {
        real = confined(real.join("index.html"))?;
    }
    real.is_file().then_some(real)
}

/// The static site (`--static`): GET and HEAD of files inside the directory, never outside it (a symlink
/// out of it, `..`) and never a dotfile; everything else is a JSON 404 (or 405 for other methods).
pub(crate) async fn serve_static(root: Arc<PathBuf>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return api_error(StatusCode::METHOD_NOT_ALLOWED, "the static site is read-only").into_response();
    }
    let segments: Option<Vec<String>> = percent_decode(req.uri().path()).and_then(|p| {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| servable_segment(s).then(|| s.to_owned()))
            .collect()
    });
    let Some(segments) = segments else {
        return not_found().await.into_response();
    };
    let file = tokio::task::spawn_blocking(move || resolve_static(&root, &segments))
        .await
        .ok()
        .flatten();
    let Some(file) = file else {
        return not_found().await.into_response();
    };
    use tower::ServiceExt;
    let Ok(res) = ServeFile::new(file).oneshot(req).await;
    // ServeFile answers 500 for odd names the OS refuses (too long, ...): those are 404s here.
    if res.status().is_server_error() {
        return not_found().await.into_response();
    }
    let mut res = res.map(Body::new);
    cross_origin_isolate(res.headers_mut());
    res
}

/// `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` on the static
/// site's files: a page served with both is `crossOriginIsolated`, which SharedArrayBuffer and so
/// @akidb/wasm's threaded build need. Only the static site's: they act on documents and workers, and a page
/// isolated this way still fetches the API and blobs from any origin (CORS, and CORP on every answer:
/// [`security_headers`]).
pub(crate) fn cross_origin_isolate(headers: &mut HeaderMap) {
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-embedder-policy"),
        HeaderValue::from_static("require-corp"),
    );
}
