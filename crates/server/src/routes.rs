//! The HTTP endpoints (a contract: paths, fields and codes).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::AppState;
use crate::caller::{Caller, Scope};
use crate::error::ApiError;

mod body;
pub(crate) mod lease;
pub(crate) mod live;
pub(crate) mod tenancy;

use body::{Fields, JsonBody};
pub(crate) use lease::release as release_lease;
pub(crate) use live::append as append_live_events;

/// The fields of a lookup (the request's, and its cache control: `lease`, `wait_ms`,
/// `max_age_seconds`, `no_cache`): every other member is refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestFields {
    /// The request text (the prompt) whose answer is cached.
    text: String,
    /// The operation (`a-z`, `0-9`, `_`, `-`; 1 to 64).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    operation: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    options: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    lease: Option<lease::LookupLease>,
    /// When another client holds the lease, wait up to this many milliseconds for its entry: at
    /// most the server's request timeout (`SEALCACHE_REQUEST_TIMEOUT_SECS`) less 1 s, 29000 by
    /// default; a longer wait is refused with 400.
    #[serde(default)]
    #[schema(minimum = 0)]
    wait_ms: Option<u64>,
    /// Serve a cached entry only if it was stored at most this many seconds ago.
    #[serde(default)]
    max_age_seconds: Option<u64>,
    #[serde(default)]
    no_cache: Option<bool>,
    /// The end user whose data the entry holds, within the caller's tenant: 1 to 1,024 bytes of UTF-8, no
    /// control character (`maxLength` counts characters, the server counts bytes).
    #[serde(default)]
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
        min_length = 1,
        max_length = 1024
    )]
    subject: Option<String>,
    /// The entry shared across tenants (see `tenancy`).
    #[serde(default)]
    shared: Option<bool>,
}

impl Fields for RequestFields {
    const FIELDS: &'static [&'static str] = &[
        "text",
        "operation",
        "options",
        "question",
        "model",
        "lease",
        "wait_ms",
        "max_age_seconds",
        "no_cache",
        "subject",
        "shared",
    ];
    const NESTED: &'static [&'static str] = &["options", "lease"];
}

impl RequestFields {
    fn into_request(self) -> sealcache::AiRequest {
        sealcache::AiRequest {
            text: self.text,
            operation: self.operation,
            options: self.options.unwrap_or_default(),
            question: self.question,
            model: self.model,
        }
    }
}

/// `GET /health` (no auth; says nothing about the security posture).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Whether the server reaches Redis", body = sealcache_api::Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let up = state.cache.redis_available().await;
    (StatusCode::OK, Json(sealcache_api::Health::new(up))).into_response()
}

/// `POST /v1/cache/lookup`: a hit, or a miss (with a lease for the one caller that should
/// compute, when asked for one), after waiting up to `wait_ms` for another holder's entry. A cached
/// stream is answered as `text/event-stream` when the client accepts it.
#[utoipa::path(post, path = "/v1/cache/lookup", tag = "cache", request_body = RequestFields,
    responses(
        (status = 200, description = "A hit or a miss (with a lease for the caller that should compute); a cached stream as server-sent events when `Accept: text/event-stream`", content(
            (sealcache_api::LookupAnswer = "application/json"),
            (String = "text/event-stream"),
        )),
    ),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    lease::WantsEventStream(sse): lease::WantsEventStream,
    JsonBody(fields): JsonBody<RequestFields>,
) -> Result<Response, ApiError> {
    let shared = tenancy::is_shared(&fields.operation, fields.shared);
    if fields.lease.is_some() {
        // A lease is a promise to store: a key that may not store the entry would only make
        // every other caller wait for its TTL.
        caller.require(if shared {
            Scope::StoreShared
        } else {
            Scope::Store
        })?;
    }
    let cache = tenancy::scoped(&state, &caller, fields.subject.as_deref(), shared)?;
    let options = lease::lookup_options(
        &state.limits,
        fields.lease.as_ref(),
        fields.wait_ms,
        fields.max_age_seconds,
        fields.no_cache,
    )?;
    let request = fields.into_request();
    // A client that takes server-sent events and waits follows a holder's live stream.
    let outcome = if sse && !options.wait.is_zero() {
        match cache.lookup_or_follow(&request, options).await? {
            sealcache::Followed::Outcome(outcome) => outcome,
            sealcache::Followed::Live(events) => return Ok(live::answer(events)),
            _ => sealcache::LookupOutcome::Miss,
        }
    } else {
        cache.lookup_or_lease(&request, options).await?
    };
    // `written_by` for admins, never on a shared entry (every tenant reads it: the storing key's
    // id is another tenant's business).
    let answer = lease::answer(outcome, sse, caller.has(Scope::Admin) && !shared)?;
    if shared {
        return Ok(tenancy::shared_answer(answer).await);
    }
    Ok(answer)
}

/// The fields of a store: [`RequestFields`]' request members and `response` (or `events`),
/// `ttl_seconds`, `lease`. Spelt out rather than `#[serde(flatten)]`ed: flattening buffers the
/// members and cannot refuse unknown ones.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreFields {
    /// The request text (the prompt) whose answer is cached.
    text: String,
    /// The operation (`a-z`, `0-9`, `_`, `-`; 1 to 64).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    operation: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    options: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// Any JSON value, `null` included (so not a plain `Option`, which would read `null` as
    /// absent).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Value)]
    response: Option<Box<RawValue>>,
    #[serde(default)]
    #[schema(min_items = 1)]
    events: Option<Vec<sealcache::SseEvent>>,
    /// The entry's lifetime in seconds (1 to 2,592,000, 30 days; default: the operation's).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2_592_000)]
    ttl_seconds: Option<u64>,
    #[serde(default)]
    lease: Option<lease::StoreLease>,
    /// The end user whose data the entry holds, within the caller's tenant: 1 to 1,024 bytes of UTF-8, no
    /// control character (`maxLength` counts characters, the server counts bytes).
    #[serde(default)]
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
        min_length = 1,
        max_length = 1024
    )]
    subject: Option<String>,
    #[serde(default)]
    shared: Option<bool>,
}

/// A member that is present, whatever its value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl Fields for StoreFields {
    const FIELDS: &'static [&'static str] = &[
        "text",
        "operation",
        "options",
        "question",
        "model",
        "response",
        "events",
        "ttl_seconds",
        "lease",
        "subject",
        "shared",
    ];
    const NESTED: &'static [&'static str] = &["options", "events", "lease"];
}

/// What a store stores: one JSON value, or a completed stream of events.
#[derive(Debug)]
pub(crate) enum Stored {
    Response(Box<RawValue>),
    Events(Vec<sealcache::SseEvent>),
}

impl StoreFields {
    /// The request, what to store, the TTL and the lease it completes.
    fn split(
        self,
    ) -> Result<
        (
            RequestFields,
            Stored,
            Option<u64>,
            Option<lease::StoreLease>,
        ),
        ApiError,
    > {
        let request = RequestFields {
            text: self.text,
            operation: self.operation,
            options: self.options,
            question: self.question,
            model: self.model,
            lease: None,
            wait_ms: None,
            max_age_seconds: None,
            no_cache: None,
            subject: self.subject,
            shared: self.shared,
        };
        let stored = match (self.response, self.events) {
            (Some(response), None) => Stored::Response(response),
            (None, Some(events)) => Stored::Events(events),
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "give either response or events, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::InvalidRequest(
                    "a required field is missing or has the wrong type",
                ));
            }
        };
        Ok((request, stored, self.ttl_seconds, self.lease))
    }
}

/// `PUT /v1/cache/entries`: stores a response (or a completed stream of events) and, with a lease
/// token, completes that lease.
#[utoipa::path(put, path = "/v1/cache/entries", tag = "cache", request_body = StoreFields,
    responses(
        (status = 201, description = "Stored (and the lease completed)", body = sealcache_api::Stored),
        (status = 507, description = "Redis refused the write for memory (`store_full`): cached nowhere", body = sealcache_api::ErrorBody),
    ),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn store(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(fields): JsonBody<StoreFields>,
) -> Result<Response, ApiError> {
    // The route lets `store` and `store_shared` keys in; an entry of the caller's tenant needs
    // `store` (a shared one, `store_shared`: every tenant reads it).
    let shared = tenancy::is_shared(&fields.operation, fields.shared);
    caller.require(if shared {
        Scope::StoreShared
    } else {
        Scope::Store
    })?;
    let (request, stored, ttl_seconds, lease) = fields.split()?;
    let cache = tenancy::scoped(&state, &caller, request.subject.as_deref(), shared)?;
    let ttl = ttl_seconds.map(Duration::from_secs);
    if ttl.is_some_and(|t| t.is_zero() || t > Duration::from_secs(30 * 86_400)) {
        return Err(ApiError::InvalidRequest(
            "ttl_seconds must be between 1 and 2592000",
        ));
    }
    let request = request.into_request();
    let token = lease::store_token(&cache, &request, lease)?;
    let mut published = 0;
    let used = match stored {
        Stored::Response(response) => {
            // The body parser checked the syntax: only the escapes are left to check.
            let json = sealcache::JsonText::from_raw_value(&response)?;
            cache.set_json_text(&request, json, ttl).await?
        }
        Stored::Events(events) => {
            published = events.len() as u64;
            cache.set_events(&request, &events, ttl).await?
        }
    };
    // After the entry is in: a waiter that sees the lease go finds the entry; then the live
    // frames the holder published are removed (followers read the stored entry from here on).
    if let Some(token) = token {
        lease::complete(&cache, Some(token.clone())).await;
        if published > 0 {
            cache.remove_live_events(&token, published).await;
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(sealcache_api::Stored::new(used.as_secs())),
    )
        .into_response())
}

/// The fields of an invalidation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidateFields {
    /// Remove every entry of this operation (scope `invalidate`).
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", min_length = 1, max_length = 64)]
    operation: Option<String>,
    /// Remove every entry (scope `admin`; with `confirm`).
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    confirm: Option<String>,
}

impl Fields for InvalidateFields {
    const FIELDS: &'static [&'static str] = &["operation", "all", "confirm"];
    const NESTED: &'static [&'static str] = &[];
}

/// `POST /internal/cache/invalidate`.
/// An operation's entries need scope `invalidate` (and `admin` too for a key of a tenant other
/// than `default`: the operation's entries of every tenant go); everything (`all`, clear) needs
/// `admin`.
#[utoipa::path(post, path = "/internal/cache/invalidate", tag = "operations", request_body = InvalidateFields,
    responses((status = 200, description = "Entries removed", body = sealcache_api::Invalidated)),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn invalidate(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(fields): JsonBody<InvalidateFields>,
) -> Result<Response, ApiError> {
    let removed = match (fields.operation, fields.all) {
        (Some(op), None | Some(false)) => {
            caller.require_across_tenants(Scope::Invalidate)?;
            state.cache.invalidate_operation(&op).await?
        }
        (None, Some(true)) => {
            caller.require(Scope::Admin)?;
            let confirm = fields.confirm.unwrap_or_default();
            state.cache.clear(&confirm).await.map_err(|e| match e {
                sealcache::Error::ClearNotConfirmed => ApiError::InvalidRequest(
                    "clearing everything needs \"confirm\": \"invalidate-all\"",
                ),
                other => other.into(),
            })?
        }
        _ => {
            return Err(ApiError::InvalidRequest(
                "give either \"operation\" or \"all\": true with \"confirm\"",
            ));
        }
    };
    Ok(Json(sealcache_api::Invalidated::new(removed)).into_response())
}

/// `GET /internal/cache/security-status`: the observed status, and `api_keys` (counts only: tenants
/// configured, keys per scope, refused reloads of the keys file).
#[utoipa::path(get, path = "/internal/cache/security-status", tag = "operations",
    responses((status = 200, description = "The observed security posture (scope `admin`)", body = sealcache_api::SecurityStatusResponse)),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn security_status(State(state): State<AppState>) -> Response {
    let status = state.observed_status().await;
    Json(sealcache_api::SecurityStatusResponse::new(
        status,
        Some(state.keys.posture()),
    ))
    .into_response()
}

/// `GET /internal/cache/metrics`.
#[utoipa::path(get, path = "/internal/cache/metrics", tag = "operations",
    responses((status = 200, description = "The monitor's performance and security summaries (scope `admin`)", content_type = "application/json")),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn metrics_json(State(state): State<AppState>) -> Response {
    let monitor = state.cache.monitor();
    Json(serde_json::json!({
        "performance": monitor.performance_summary(),
        "security": monitor.security_summary(),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text of the OpenTelemetry instruments.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text of the OpenTelemetry instruments (public when `SEALCACHE_METRICS_PUBLIC=true`, else scope `admin`)", body = String, content_type = "text/plain")),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    match state.telemetry.render_prometheus() {
        Ok(Some(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(None) => ApiError::Internal.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "metrics rendering failed");
            ApiError::Internal.into_response()
        }
    }
}
