//! API-key authentication: `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sealcache_monitor::{CacheObserver, EventSource, SecurityEvent, SecurityEventType};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::throttle::{AuthThrottle, Verdict};

/// The accepted API keys. `Debug` shows how many, never a key.
#[derive(Clone, Default)]
pub struct ApiKeys(Arc<Vec<Zeroizing<Vec<u8>>>>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// Keys from their texts (empty ones are dropped).
    #[must_use]
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self(Arc::new(
            keys.into_iter()
                .filter(|k| !k.is_empty())
                .map(|k| Zeroizing::new(k.as_bytes().to_vec()))
                .collect(),
        ))
    }

    /// True when no key is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time check against every key (no early exit: timing does not tell which key, or
    /// how much of one, matched).
    #[must_use]
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut ok = subtle::Choice::from(0u8);
        for key in self.0.iter() {
            ok |= key.as_slice().ct_eq(presented);
        }
        ok.into()
    }
}

fn presented_key(req: &Request) -> Option<&[u8]> {
    let headers = req.headers();
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.as_bytes();
        return v
            .strip_prefix(b"Bearer ")
            .or_else(|| v.strip_prefix(b"bearer "));
    }
    headers.get("x-api-key").map(|v| v.as_bytes())
}

/// Middleware state.
#[derive(Clone, Debug)]
pub struct AuthState {
    /// Accepted keys.
    pub keys: ApiKeys,
    /// Where `api_auth_failed` is counted.
    pub observer: Arc<dyn CacheObserver>,
    /// Per-peer failure counting and refusal.
    pub throttle: Arc<AuthThrottle>,
}

/// Rejects requests without a valid key with 401 and an `api_auth_failed` event; a peer over the
/// failure limit gets 429 with `Retry-After` before its key is looked at (see [`crate::throttle`]).
pub async fn require_api_key(State(state): State<AuthState>, req: Request, next: Next) -> Response {
    // The peer is worked out only when it matters: some peer is blocked, or this key fails.
    let blocked = state
        .throttle
        .any_blocked()
        .then(|| state.throttle.peer(&req))
        .flatten()
        .map(|p| state.throttle.check(p));
    if let Some(Verdict::Blocked(left)) = blocked {
        let mut response = ApiError::TooManyAuthFailures.into_response();
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let accepted = presented_key(&req).is_some_and(|k| state.keys.accepts(k));
    if accepted {
        return next.run(req).await;
    }
    let failure = state
        .throttle
        .peer(&req)
        .map(|p| (p, state.throttle.failure(p)));
    let path = req.uri().path().chars().take(64).collect::<String>();
    let mut event = SecurityEvent::new(SecurityEventType::ApiAuthFailed)
        .source(EventSource::HttpApi)
        .detail(format!("missing or wrong API key for {path}"));
    if failure.is_some_and(|(_, f)| !f.log_now) {
        // Counted; logged in the peer's aggregated record for this window.
        event = event.without_log_record();
    }
    state.observer.security_event(event);
    if let Some((peer, f)) = failure
        && f.blocked
    {
        let config = state.throttle.config();
        state.observer.security_event(
            SecurityEvent::new(SecurityEventType::ApiRateLimited)
                .source(EventSource::HttpApi)
                .detail(format!(
                    "peer {peer} refused for {} s after {} failed API-key attempts within {} s",
                    config.block.as_secs(),
                    config.limit,
                    config.window.as_secs()
                )),
        );
    }
    ApiError::Unauthorized.into_response()
}
