//! Live streams over HTTP: a lease holder publishes its events as it receives them, and callers
//! waiting in any replica receive them as server-sent events (see `docs/api.md`, "Live streams").
//!
//! * `POST /v1/cache/leases/{token}/events` with `{"from": N, "events": [...]}` publishes events
//!   `N..` of the holder's stream (scope `store`; the token must still hold its lease, else `409
//!   lease_lost`). The stream is completed as any other: `PUT /v1/cache/entries` with every event
//!   and `"lease": {"token": ...}`.
//! * `POST /v1/cache/lookup` with `Accept: text/event-stream` and `wait_ms` that finds another
//!   caller's lease on a holder that publishes events answers `200 text/event-stream` at once and
//!   sends each event as it is published, then the rest of the stored stream. A holder that goes
//!   away, or a frame that fails authentication, ends the response without its final chunk (the
//!   client sees an incomplete response, never a stream passed off as complete).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use sealcache::{LeaseToken, LiveEvents, SseEvent};
use serde::Deserialize;

use crate::AppState;
use crate::caller::{Caller, Scope};
use crate::error::ApiError;
use crate::routes::body::{Fields, JsonBody};
use crate::routes::tenancy;

/// The most events one append may publish (each is one sealed write to Redis).
pub(crate) const MAX_EVENTS_PER_APPEND: usize = 1000;

/// The body of `POST /v1/cache/leases/{token}/events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppendFields {
    /// The index of the first event (0 for the first call; events already published may be sent
    /// again, with the same index).
    from: u64,
    #[schema(min_items = 1)]
    events: Vec<SseEvent>,
    /// The subject the lookup that took the lease named (the events are sealed as its entry): 1 to 1,024 bytes of UTF-8, no
    /// control character (`maxLength` counts characters, the server counts bytes).
    #[serde(default)]
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
        min_length = 1,
        max_length = 1024
    )]
    subject: Option<String>,
    /// Whether the lease is on the shared entry (as in the lookup).
    #[serde(default)]
    shared: Option<bool>,
}

impl Fields for AppendFields {
    const FIELDS: &'static [&'static str] = &["from", "events", "subject", "shared"];
    const NESTED: &'static [&'static str] = &["events"];
}

/// `POST /v1/cache/leases/{token}/events`: publishes events of a lease holder's live stream.
#[utoipa::path(post, path = "/v1/cache/leases/{token}/events", tag = "cache", request_body = AppendFields,
    params(("token" = String, Path, pattern = "^[a-z0-9_-]{1,64}\\.[0-9a-f]{64}\\.[0-9a-f]{32}$", description = "The lease token of the holder's lookup")),
    responses(
        (status = 200, description = "Events appended to the live stream", body = sealcache_api::EventsAppended),
        (status = 409, description = "The lease is not held (expired, completed, or another tenant's)", body = sealcache_api::ErrorBody),
        (status = 507, description = "Redis refused the write for memory (`store_full`)", body = sealcache_api::ErrorBody),
    ),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn append(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    JsonBody(fields): JsonBody<AppendFields>,
) -> Result<Response, ApiError> {
    let token =
        LeaseToken::parse(&token).map_err(|_| ApiError::InvalidRequest("invalid lease token"))?;
    if fields.events.is_empty() {
        return Err(ApiError::InvalidRequest("events must not be empty"));
    }
    // Each event is one sealed write: one request may not cost Redis tens of thousands of them.
    if fields.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(ApiError::InvalidRequest(
            "at most 1000 events per append (send the rest in further calls)",
        ));
    }
    // As a store: events every tenant may follow (a shared entry's) need `store_shared`.
    let shared = tenancy::is_shared(token.operation(), fields.shared);
    caller.require(if shared {
        Scope::StoreShared
    } else {
        Scope::Store
    })?;
    let cache = tenancy::scoped(&state, &caller, fields.subject.as_deref(), shared)?;
    cache
        .append_live_events(&token, fields.from, &fields.events)
        .await?;
    let next = fields.from.saturating_add(fields.events.len() as u64);
    Ok(Json(sealcache_api::EventsAppended::new(
        fields.events.len() as u64,
        next,
    ))
    .into_response())
}

/// A followed live stream as `200 text/event-stream`, each event sent as it arrives.
pub(crate) fn answer(events: LiveEvents) -> Response {
    let body = events.map(|item| match item {
        Ok(event) => {
            let mut wire = Vec::new();
            event.write_sse(&mut wire);
            Ok(Bytes::from(wire))
        }
        // Ends the body without its last chunk: the client learns the stream is incomplete.
        Err(e) => {
            tracing::warn!(error = %e, "a followed live stream ended early");
            Err(std::io::Error::other(e))
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
