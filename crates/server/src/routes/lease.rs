//! Leases, per-request cache control and streamed answers over HTTP (see `docs/api.md`).
//!
//! * `POST /v1/cache/lookup` takes `"lease": {"ttl_ms": N}`, `"wait_ms": M`, `"max_age_seconds"`
//!   and `"no_cache"`; a miss answers `{"hit": false, "lease": {"token", "expires_in_ms"}}` to the
//!   one caller that should compute, and the others wait up to `wait_ms` for its entry.
//! * `PUT /v1/cache/entries` takes `"lease": {"token": ...}` (it completes the lease) and
//!   `"events": [{"event": NAME?, "data": TEXT}, ...]` instead of `"response"`.
//! * `DELETE /v1/cache/leases/{token}` abandons a lease.
//! * A lookup with `Accept: text/event-stream` answers a cached stream as `text/event-stream`.
//!
//! The server keeps no lease state: a token names its entry (operation and key digest) and carries
//! the lease's secret, and every part is checked strictly before the key is rebuilt inside the
//! server's own namespace (`sealcache::LeaseToken::parse`).

use std::io::Write as _;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sealcache::{AiResponseCache, Cached, EntryKind, LeaseToken, LookupOptions, LookupOutcome};
use sealcache_api::{LeaseGranted, LookupAnswer};
use serde::Deserialize;

use crate::caller::{Caller, Scope};
use crate::error::ApiError;
use crate::routes::tenancy;
use crate::{AppState, ServerLimits};

/// Longest lease a client may take (10 minutes).
const MAX_LEASE_TTL_MS: u64 = 600_000;
/// Shortest lease a client may take.
const MIN_LEASE_TTL_MS: u64 = 10;
/// How much sooner than the request timeout a wait must end (the answer must still get out).
const WAIT_MARGIN: Duration = Duration::from_secs(1);

/// `"lease"` of a lookup.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupLease {
    /// How long the lease holds, in milliseconds (10 to 600,000).
    #[schema(minimum = 10, maximum = 600_000)]
    ttl_ms: u64,
}

/// `"lease"` of a store.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreLease {
    /// The token the lookup granted.
    #[schema(pattern = "^[a-z0-9_-]{1,64}\\.[0-9a-f]{64}\\.[0-9a-f]{32}$")]
    token: String,
}

/// The lookup's cache-control and lease members, checked.
pub(crate) fn lookup_options(
    limits: &ServerLimits,
    lease: Option<&LookupLease>,
    wait_ms: Option<u64>,
    max_age_seconds: Option<u64>,
    no_cache: Option<bool>,
) -> Result<LookupOptions, ApiError> {
    let mut options = LookupOptions::default().no_cache(no_cache.unwrap_or(false));
    if let Some(lease) = lease {
        if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(&lease.ttl_ms) {
            return Err(ApiError::InvalidRequest(
                "lease.ttl_ms must be between 10 and 600000",
            ));
        }
        options = options.lease(Duration::from_millis(lease.ttl_ms));
    }
    if let Some(wait_ms) = wait_ms {
        let longest = limits.request_timeout.saturating_sub(WAIT_MARGIN);
        let wait = Duration::from_millis(wait_ms);
        if wait > longest {
            return Err(ApiError::InvalidRequest(
                "wait_ms must end at least 1 s before the server's request timeout",
            ));
        }
        options = options.wait(wait);
    }
    if let Some(seconds) = max_age_seconds {
        options = options.max_age(Duration::from_secs(seconds));
    }
    Ok(options)
}

/// Whether the client asked for `text/event-stream` ([`accepts_event_stream`]), read where the
/// headers are (axum's `HeaderMap` extractor would copy them all for one look).
pub(crate) struct WantsEventStream(pub(crate) bool);

impl<S: Send + Sync> FromRequestParts<S> for WantsEventStream {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(accepts_event_stream(&parts.headers)))
    }
}

/// Whether the client asked for `text/event-stream` (a media range in `Accept` with q > 0).
pub(crate) fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/event-stream") && !refused
        })
}

/// A lookup's answer on a hit, `{"hit":true,"response":JSON,"ttl_remaining_seconds":N}` (or
/// `"events"` for a stream), written around the stored JSON text without parsing it again: the
/// text goes out as it is, byte for byte, less any white space around it (as a `RawValue` holds
/// it). The bytes are what `serde_json` writes for the same fields (tested).
///
/// No re-parse is needed: the cache hands out only JSON text it checked when it was stored (or,
/// for a legacy value, when it was opened) and that authenticated since. An empty text (which no
/// writer produces) is refused rather than sent as broken JSON.
fn json_hit_body(
    member: &str,
    json: &[u8],
    ttl_remaining_seconds: u64,
    written_by: Option<&str>,
) -> Option<Vec<u8>> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let start = json.iter().position(|b| !is_space(b))?;
    let end = json.iter().rposition(|b| !is_space(b))? + 1;
    let json = &json[start..end];
    let mut body = Vec::with_capacity(json.len() + 64);
    body.extend_from_slice(b"{\"hit\":true,\"");
    body.extend_from_slice(member.as_bytes());
    body.extend_from_slice(b"\":");
    body.extend_from_slice(json);
    // Writing into a `Vec` cannot fail.
    let _ = write!(body, ",\"ttl_remaining_seconds\":{ttl_remaining_seconds}");
    if let Some(writer) = written_by {
        // An API key id: `a-z`, `0-9`, `_`, `-` only (checked when sealed and when opened), so
        // nothing to escape.
        let _ = write!(body, ",\"written_by\":\"{writer}\"");
    }
    body.push(b'}');
    Some(body)
}

/// The answer for `outcome`; `show_writer`: a hit names the API key that stored it
/// (`written_by`, for `admin` callers).
pub(crate) fn answer(
    outcome: LookupOutcome,
    sse: bool,
    show_writer: bool,
) -> Result<Response, ApiError> {
    match outcome {
        LookupOutcome::Hit(hit) => hit_response(&hit, sse, show_writer),
        LookupOutcome::Lease(lease) => Ok(Json(LookupAnswer::miss(Some(LeaseGranted::new(
            lease.token().as_str(),
            u64::try_from(lease.expires_in().as_millis()).unwrap_or(u64::MAX),
        ))))
        .into_response()),
        _ => Ok(Json(LookupAnswer::miss(None)).into_response()),
    }
}

/// A hit: a stream as `text/event-stream` when asked for, otherwise JSON (`response` for a JSON
/// value, `events` for a stream). `Age` (RFC 9111 §5.1) says how long ago it was stored, when known.
fn hit_response(hit: &Cached, sse: bool, show_writer: bool) -> Result<Response, ApiError> {
    let mut response = if sse && hit.kind() == EntryKind::EventStream {
        let body = hit.sse_bytes().map_err(|_| {
            tracing::error!("a stored stream is not a list of events");
            ApiError::Internal
        })?;
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response()
    } else {
        // Never re-parsed (into a `Value` that would round numbers beyond double precision and
        // fail on escapes the store accepted, nor into a `RawValue`): see `json_hit_body`.
        let member = if hit.kind() == EntryKind::EventStream {
            "events"
        } else {
            "response"
        };
        // Rounded to the nearest second, as Redis's TTL does (a fresh 7200 s entry is 7200).
        let ttl = hit
            .ttl_remaining()
            .map_or(0, |d| (d.as_millis() as u64).saturating_add(500) / 1000);
        let writer = hit.written_by().filter(|_| show_writer);
        let bytes = json_hit_body(member, hit.json_bytes(), ttl, writer).ok_or_else(|| {
            tracing::error!("a stored value is empty");
            ApiError::Internal
        })?;
        ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
    };
    if let Some(age) = hit.age() {
        response
            .headers_mut()
            .insert(header::AGE, HeaderValue::from(age.as_secs()));
    }
    Ok(response)
}

/// A store's lease token, checked against its request (before anything is stored).
pub(crate) fn store_token(
    cache: &AiResponseCache,
    request: &sealcache::AiRequest,
    lease: Option<StoreLease>,
) -> Result<Option<LeaseToken>, ApiError> {
    let Some(lease) = lease else {
        return Ok(None);
    };
    let token = LeaseToken::parse(&lease.token)
        .map_err(|_| ApiError::InvalidRequest("lease.token is not a lease token"))?;
    cache.check_lease(request, &token)?;
    Ok(Some(token))
}

/// Completes a lease after its entry was stored. The entry is in: a release that fails only
/// leaves the lease to expire (waiters find the entry meanwhile), so it is logged, not answered.
pub(crate) async fn complete(cache: &AiResponseCache, token: Option<LeaseToken>) {
    if let Some(token) = token
        && let Err(err) = cache.release_lease(&token).await
    {
        tracing::warn!(error = %err, "a completed lease could not be released; it will expire");
    }
}

/// `DELETE /v1/cache/leases/{token}`: abandons a lease (the next waiter takes it over). A token
/// acts only for the tenant whose caller took it (or, for a shared entry, for callers holding
/// `store_shared`): any other caller's release releases nothing, as an expired token's.
#[utoipa::path(delete, path = "/v1/cache/leases/{token}", tag = "cache",
    params(("token" = String, Path, pattern = "^[a-z0-9_-]{1,64}\\.[0-9a-f]{64}\\.[0-9a-f]{32}$", description = "The lease token a lookup granted")),
    responses((status = 200, description = "Whether a lease of the caller's was released", body = sealcache_api::LeaseReleased)),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let token =
        LeaseToken::parse(&token).map_err(|_| ApiError::InvalidRequest("invalid lease token"))?;
    let mut released = tenancy::scoped(&state, &caller, None, false)?
        .release_lease(&token)
        .await?;
    if !released && caller.has(Scope::StoreShared) {
        released = tenancy::scoped(&state, &caller, None, true)?
            .release_lease(&token)
            .await?;
    }
    Ok(Json(sealcache_api::LeaseReleased::new(released)).into_response())
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde::Serialize;
    use serde_json::value::RawValue;

    fn accept(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        accepts_event_stream(&headers)
    }

    /// What the hit body was before it was written by hand: `serde_json` over a `RawValue`.
    #[derive(Serialize)]
    struct JsonHit<'a> {
        hit: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        events: Option<&'a RawValue>,
        ttl_remaining_seconds: u64,
    }

    #[test]
    fn the_hit_body_is_what_serde_json_writes() {
        for (json, ttl) in [
            (&br#"{"summary":"S\u00e9 \ud83d\ude00","n":1.50,"big":123456789012345678901234567890}"#[..], 7200),
            (b"  [1, 2 ,{\"a\" : null}]\n\t\r ", 0),
            (b"\"just a string\"", u64::MAX),
            (b"null", 1),
            (br#"[{"event":"delta","data":"x"},{"data":"[DONE]"}]"#, 42),
        ] {
            let raw: &RawValue = serde_json::from_slice(json).unwrap();
            for member in ["response", "events"] {
                let expected = serde_json::to_vec(&JsonHit {
                    hit: true,
                    response: (member == "response").then_some(raw),
                    events: (member == "events").then_some(raw),
                    ttl_remaining_seconds: ttl,
                })
                .unwrap();
                assert_eq!(json_hit_body(member, json, ttl, None).unwrap(), expected);
            }
        }
        assert_eq!(json_hit_body("response", b" \n", 1, None), None);
        assert_eq!(json_hit_body("response", b"", 1, None), None);
        let with_writer = json_hit_body("response", b"[1]", 5, Some("web-1")).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&with_writer).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"hit": true, "response": [1], "ttl_remaining_seconds": 5, "written_by": "web-1"})
        );
    }

    #[test]
    fn event_streams_are_asked_for_by_accept() {
        assert!(accept("text/event-stream"));
        assert!(accept("application/json, Text/Event-Stream;q=0.5"));
        assert!(!accept("text/event-stream;q=0"));
        assert!(!accept("application/json"));
        assert!(!accept("*/*"));
        assert!(!accepts_event_stream(&HeaderMap::new()));
    }
}
