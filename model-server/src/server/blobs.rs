//! Blob routes: download (Range, If-None-Match, If-Range, HEAD) and upload (hashed as it streams).

use super::*;
use crate::store::Unavailable;

/// Answer to a blob upload.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    /// The blob's sha256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

pub(crate) enum RangeOutcome {
    Full,
    Partial(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110). Several ranges or a malformed header: the whole blob.
pub(crate) fn parse_range(value: &str, len: u64) -> RangeOutcome {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    // Digits only. Positions are compared as u128 so that two positions past u64 still compare
    // (`bytes=X-Y` with Y < X is ignored, RFC 9110); a position past u128 is past any blob's end.
    let num = |s: &str| {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            Some(s.parse::<u128>().unwrap_or(u128::MAX))
        }
    };
    let size = u128::from(len);
    // Below `size`, so a u64.
    let pos = |p: u128| p as u64;
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(_) if len == 0 => RangeOutcome::Unsatisfiable,
            Some(n) => RangeOutcome::Partial(pos(size - n.min(size)), len - 1),
            None => RangeOutcome::Full,
        },
        (start, "") => match num(start) {
            Some(s) if s < size => RangeOutcome::Partial(pos(s), len - 1),
            Some(_) => RangeOutcome::Unsatisfiable,
            None => RangeOutcome::Full,
        },
        (start, end) => match (num(start), num(end)) {
            (Some(s), Some(e)) if s > e => RangeOutcome::Full,
            (Some(s), Some(_)) if s >= size => RangeOutcome::Unsatisfiable,
            (Some(s), Some(e)) => RangeOutcome::Partial(pos(s), pos(e.min(size - 1))),
            _ => RangeOutcome::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 9110's single `bytes=` range, written independently over big integers: `None` = ignore the
    /// header (whole blob), `Some(None)` = 416, `Some(Some((first, last)))` = 206.
    fn reference(first: Option<&str>, last: Option<&str>, len: u64) -> Option<Option<(u64, u64)>> {
        let n = |s: &str| s.parse::<u128>().unwrap();
        let len = u128::from(len);
        match (first, last) {
            (None, None) => None,
            (None, Some(suffix)) => {
                let k = n(suffix).min(len);
                Some((k > 0).then(|| ((len - k) as u64, (len - 1) as u64)))
            }
            (Some(f), None) => Some((n(f) < len).then(|| (n(f) as u64, (len - 1) as u64))),
            (Some(f), Some(l)) if n(l) < n(f) => None,
            (Some(f), Some(l)) => Some((n(f) < len).then(|| (n(f) as u64, n(l).min(len - 1) as u64))),
        }
    }

    /// A position: small (around the blob's size) or far past u64, with optional leading zeros.
    fn position() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..2_000).prop_map(|p| p.to_string()),
            "[1-9][0-9]{19,37}",
            "0{1,3}[0-9]{1,4}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn single_ranges_follow_rfc_9110(
            first in proptest::option::of(position()),
            last in proptest::option::of(position()),
            len in 0u64..1_500,
        ) {
            let header = format!("bytes={}-{}", first.as_deref().unwrap_or(""), last.as_deref().unwrap_or(""));
            let got = match parse_range(&header, len) {
                RangeOutcome::Full => None,
                RangeOutcome::Unsatisfiable => Some(None),
                RangeOutcome::Partial(s, e) => Some(Some((s, e))),
            };
            prop_assert_eq!(got, reference(first.as_deref(), last.as_deref(), len), "{}", header);
        }

        #[test]
        fn any_header_gives_a_range_inside_the_blob(value in "\\PC{0,48}", len in 0u64..u64::MAX) {
            if let RangeOutcome::Partial(s, e) = parse_range(&value, len) {
                prop_assert!(s <= e && e < len, "{value:?} on {len} bytes gave {s}-{e}");
            }
        }
    }
}

/// A blob's bytes by sha256: immutable, with Range, If-None-Match, If-Range and HEAD.
#[utoipa::path(get, path = "/v1/blobs/sha256/{sha256}", tag = "read",
    params(("sha256" = String, Path, description = "64 lower-case hex digits", min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The bytes (immutable)", content_type = "application/octet-stream", body = String,
            headers(("ETag" = String, description = "The quoted sha256"), ("Accept-Ranges" = String))),
        (status = 206, description = "One range of the bytes", content_type = "application/octet-stream", body = String,
            headers(("Content-Range" = String))),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, description = "Not a sha256", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody)))]
pub(crate) async fn get_blob(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    P(hash): P<String>,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    let blob =
        st.0.store
            .open(&hash)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found("blob"))?;
    let len = blob.len();
    let etag = format!("\"{hash}\"");
    let base = || {
        Response::builder()
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, IMMUTABLE)
            .header(header::ACCEPT_RANGES, "bytes")
    };
    if etag_matches(&headers, &etag) {
        return base()
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) if if_range_ok => parse_range(v, len),
        _ => RangeOutcome::Full,
    };
    let (status, range, content_range) = match range {
        RangeOutcome::Full => (StatusCode::OK, None, None),
        RangeOutcome::Partial(s, e) => (
            StatusCode::PARTIAL_CONTENT,
            Some(s..e + 1),
            Some(format!("bytes {s}-{e}/{len}")),
        ),
        RangeOutcome::Unsatisfiable => {
            let mut r = api_error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable").into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).map_err(ApiError::internal)?,
            );
            return Ok(r);
        }
    };
    let body_len = range.as_ref().map_or(len, |r| r.end - r.start);
    let mut b = base()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, body_len);
    if let Some(cr) = content_range {
        b = b.header(header::CONTENT_RANGE, cr);
    }
    // HEAD reads nothing; GET reads only the range asked for (from S3: one ranged request).
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(blob.read(range).await.map_err(store_error)?)
    };
    b.body(body).map_err(ApiError::internal)
}

/// A store failure as an answer: a store that did not answer (S3 unreachable, credentials refused) is a 503
/// saying so; anything else a 500.
pub(crate) fn store_error(e: std::io::Error) -> ApiError {
    if Unavailable::is(&e) {
        tracing::error!(error = %e, "blob store unavailable");
        api_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    } else {
        ApiError::internal(e)
    }
}

/// Uploads a blob under its sha256 (step 1 of the HTTP publish). The bytes are hashed as they arrive,
/// stored only when they match, and durable before the answer.
#[utoipa::path(put, path = "/v1/blobs/sha256/{sha256}", tag = "write",
    params(("sha256" = String, Path, description = "64 lower-case hex digits: the sha256 of the body", min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")),
    request_body(content = String, content_type = "application/octet-stream", description = "The bytes"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = BlobStored),
        (status = 200, description = "Already stored", body = BlobStored),
        (status = 400, description = "Not a sha256, or the body hashes to something else", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Read-only server", body = ErrorBody),
        (status = 404, description = "No such route (an empty path parameter)", body = ErrorBody),
        (status = 413, description = "Larger than the limit", body = ErrorBody)))]
pub(crate) async fn put_blob(
    State(st): State<AppState>,
    headers: HeaderMap,
    P(hash): P<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    let limit = st.0.config.max_blob_bytes;
    if let Some(n) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if n > limit {
            return Err(api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("blob is larger than {limit} bytes"),
            ));
        }
    }
    let store = st.0.store.clone();
    let h = hash.clone();
    let existed = blocking(move || store.size(&h).map_err(store_error))
        .await?
        .is_some();
    use futures_util::TryStreamExt;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let store = st.0.store.clone();
    let h = hash.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut sync = tokio_util::io::SyncIoBridge::new(reader);
        store.put(&h, &mut sync, limit)
    })
    .await
    .map_err(ApiError::internal)?;
    match result {
        Ok(size) => {
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let mut r = (
                status,
                Json(BlobStored {
                    sha256: hash.to_string(),
                    size,
                }),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            Ok(r)
        }
        Err(e @ PutError::HashMismatch { .. }) => Err(api_error(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e @ PutError::TooLarge { .. }) => Err(api_error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())),
        Err(PutError::Io(e)) if Unavailable::is(&e) => Err(store_error(e)),
        Err(PutError::Io(e)) if e.kind() == std::io::ErrorKind::Other => Err(api_error(
            if body_timed_out(&e) {
                StatusCode::REQUEST_TIMEOUT
            } else {
                StatusCode::BAD_REQUEST
            },
            format!("reading the upload: {e}"),
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}
