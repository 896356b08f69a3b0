//! `GET /v1/registry/events`: server-sent events announcing each snapshot the primary pushed (`serve
//! --snapshot-to`), so replicas pull at once instead of at their next poll.

use super::*;

/// A pushed snapshot: the replica pulls `latest.json`, which names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Announcement {
    /// Registry generation of the snapshot.
    pub generation: i64,
    /// sha256 of the snapshot object.
    pub snapshot: String,
}

/// How often an idle stream sends a comment, so proxies keep it open and a dead peer is noticed.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn event(a: &Announcement) -> Bytes {
    Bytes::from(format!(
        "event: generation\ndata: {}\n\n",
        serde_json::to_string(a).expect("an announcement serialises")
    ))
}

/// Server-sent events, one `generation` event per snapshot pushed (the current one first, on connect).
/// Needs the write token (it reveals publishing activity); a replica answers 403.
#[utoipa::path(get, path = "/v1/registry/events", tag = "ops",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "text/event-stream: `event: generation` with `data: {generation, snapshot}`",
            body = String, content_type = "text/event-stream"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "A read-only server or replica", body = ErrorBody)))]
pub(crate) async fn registry_events(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&st, &headers)?;
    let mut rx = st.0.events.subscribe();
    let first = rx.borrow_and_update().clone();
    let stream = futures_util::stream::unfold((rx, first), |(mut rx, pending)| async move {
        if let Some(a) = pending {
            return Some((Ok::<_, std::convert::Infallible>(event(&a)), (rx, None)));
        }
        match tokio::time::timeout(KEEP_ALIVE, rx.changed()).await {
            Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (rx, None))),
            Ok(Err(_)) => None,
            Ok(Ok(())) => {
                let a = rx.borrow_and_update().clone();
                let chunk = a.as_ref().map_or(Bytes::from_static(b": \n\n"), event);
                Some((Ok(chunk), (rx, None)))
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, NO_STORE)
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}
