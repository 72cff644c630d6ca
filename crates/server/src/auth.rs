//! API-key authentication: `Authorization: Bearer KEY` or `X-API-Key: KEY`, recognised by its
//! SHA-256 digest in constant time, and the [`Caller`] it makes.
//!
//! Two kinds of keys: the legacy `API_KEY_FILE`, `API_KEY` and `ADDITIONAL_API_KEYS` (tenant
//! `default`, every scope, key id `legacy`) and the scoped keys of `SEALCACHE_API_KEYS_FILE`
//! ([`sealcache_config_gen::api_keys`]), which a `SIGHUP` replaces ([`ApiKeys::replace_scoped`]).

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sealcache_config_gen::api_keys::{ApiKeysFile, Digest, KeyId, Scopes, Tenant};
use sealcache_monitor::{CacheObserver, EventSource, SecurityEvent, SecurityEventType};
use subtle::ConditionallySelectable as _;
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::throttle::{AuthThrottle, Verdict};

/// One accepted key: its digest and what it makes the caller.
#[derive(Clone)]
struct Known {
    digest: Digest,
    key_id: KeyId,
    tenant: Tenant,
    scopes: Scopes,
}

/// The accepted keys at one moment.
#[derive(Clone, Default)]
struct KeySet {
    /// The legacy keys first, then the scoped ones.
    known: Vec<Known>,
    /// How many of `known` are legacy keys.
    legacy: usize,
    /// Tenants of the scoped keys, and keys per scope (the legacy ones included).
    posture: KeysPosture,
}

/// What the status shows of the keys: counts only (the JSON type of `sealcache-api`).
pub use sealcache_api::KeysPosture;

/// Two keys with one digest: the same key would be two callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbiguousKey {
    /// The scoped key's id.
    pub id: String,
}

impl std::fmt::Display for AmbiguousKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the keys file's key `{}` has the digest of a legacy key (API_KEY_FILE, API_KEY or ADDITIONAL_API_KEYS): one key cannot be both",
            self.id
        )
    }
}

impl std::error::Error for AmbiguousKey {}

impl KeySet {
    fn build(legacy: &[Digest], file: Option<&ApiKeysFile>) -> Result<Self, AmbiguousKey> {
        let mut known: Vec<Known> = legacy
            .iter()
            .map(|d| Known {
                digest: *d,
                key_id: KeyId::legacy(),
                tenant: Tenant::default_tenant(),
                scopes: Scopes::all(),
            })
            .collect();
        let mut tenants = std::collections::BTreeSet::new();
        if !legacy.is_empty() {
            tenants.insert(Tenant::default_tenant());
        }
        for entry in file.map(ApiKeysFile::entries).unwrap_or_default() {
            // Digests of configured keys, compared at load: no secret timing here.
            if legacy.iter().any(|d| bool::from(d.ct_eq(&entry.digest))) {
                return Err(AmbiguousKey {
                    id: entry.id.to_string(),
                });
            }
            tenants.insert(entry.tenant.clone());
            known.push(Known {
                digest: entry.digest,
                key_id: entry.id.clone(),
                tenant: entry.tenant.clone(),
                scopes: entry.scopes,
            });
        }
        let mut posture = KeysPosture::default();
        posture.keys_file = file.is_some();
        posture.scoped_keys = known.len() - legacy.len();
        posture.legacy_keys = legacy.len();
        posture.tenants = tenants.len();
        posture.keys_per_scope = sealcache_config_gen::api_keys::Scope::ALL
            .into_iter()
            .map(|s| {
                (
                    s.as_str().to_owned(),
                    known.iter().filter(|k| k.scopes.contains(s)).count(),
                )
            })
            .collect();
        Ok(Self {
            legacy: legacy.len(),
            posture,
            known,
        })
    }

    /// The key whose digest is `presented`'s.
    ///
    /// # Security
    /// Every known digest is compared, in constant time, with no early exit, and the match is
    /// selected with constant-time selects: timing tells neither whether nor which key matched
    /// (only the number of keys, which is no secret). The SHA-256 of the presented key is
    /// computed once, whatever it is.
    fn identify(&self, presented: &[u8]) -> Option<&Known> {
        let digest = Digest::of(presented);
        let mut found = subtle::Choice::from(0u8);
        let mut index = 0u64;
        for (i, known) in self.known.iter().enumerate() {
            let hit = known.digest.ct_eq(&digest);
            index.conditional_assign(&(i as u64), hit);
            found |= hit;
        }
        if bool::from(found) {
            usize::try_from(index).ok().and_then(|i| self.known.get(i))
        } else {
            None
        }
    }
}

/// The accepted API keys, shared by every request and replaced as a whole on reload. `Debug`
/// shows how many, never a key or digest.
#[derive(Clone, Default)]
pub struct ApiKeys {
    legacy: Arc<Vec<Digest>>,
    current: Arc<RwLock<Arc<KeySet>>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.snapshot();
        write!(
            f,
            "ApiKeys({} legacy, {} scoped)",
            set.legacy,
            set.known.len() - set.legacy
        )
    }
}

impl ApiKeys {
    /// The legacy keys from their texts (empty ones are dropped): tenant `default`, every scope.
    #[must_use]
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let legacy: Vec<Digest> = keys
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(|k| Digest::of(k.as_bytes()))
            .collect();
        // No keys file: legacy keys only, which cannot clash with one another's ids.
        let set = KeySet::build(&legacy, None).unwrap_or_default();
        Self {
            legacy: Arc::new(legacy),
            current: Arc::new(RwLock::new(Arc::new(set))),
        }
    }

    /// The legacy keys of [`ApiKeys::new`] and the scoped keys of a keys file.
    ///
    /// # Errors
    /// [`AmbiguousKey`] when a scoped key is also a legacy key.
    pub fn with_scoped<'a>(
        legacy: impl IntoIterator<Item = &'a str>,
        file: &ApiKeysFile,
    ) -> Result<Self, AmbiguousKey> {
        let keys = Self::new(legacy);
        keys.replace_scoped(file)?;
        Ok(keys)
    }

    /// Replaces the scoped keys (a reloaded keys file), keeping the legacy ones; requests in
    /// flight finish with the set they started with.
    ///
    /// # Errors
    /// [`AmbiguousKey`]; the running keys are unchanged.
    pub fn replace_scoped(&self, file: &ApiKeysFile) -> Result<(), AmbiguousKey> {
        let mut set = KeySet::build(&self.legacy, Some(file))?;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.posture.reloads_refused = current.posture.reloads_refused;
        *current = Arc::new(set);
        Ok(())
    }

    /// Counts a refused reload (the status shows it).
    pub fn record_refused_reload(&self) {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut set = (**current).clone();
        set.posture.reloads_refused += 1;
        *current = Arc::new(set);
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// True when no key is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.snapshot().known.is_empty()
    }

    /// Counts for the security status (no key, digest or tenant name).
    #[must_use]
    pub fn posture(&self) -> KeysPosture {
        self.snapshot().posture.clone()
    }

    /// Whether `presented` is an accepted key (constant time, see [`ApiKeys::caller`]).
    #[must_use]
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.snapshot().identify(presented).is_some()
    }

    /// The caller `presented` makes, if it is an accepted key.
    ///
    /// # Security
    /// Compared by digest against every key in constant time: timing tells neither whether nor
    /// which key matched.
    #[must_use]
    pub fn caller(&self, presented: &[u8], observer: &Arc<dyn CacheObserver>) -> Option<Caller> {
        let set = self.snapshot();
        set.identify(presented).map(|k| {
            Caller::new(
                k.key_id.clone(),
                k.tenant.clone(),
                k.scopes,
                observer.clone(),
            )
        })
    }
}

/// The keys a request presents: `Authorization: Bearer KEY` (the scheme in any case, RFC 9110
/// §11.1), then `X-API-Key: KEY`. Both are read: an `Authorization` header meant for something
/// else (a proxy's `Basic` credentials, a stale bearer token) never hides a valid `X-API-Key`.
/// Only the first value of each header counts: a request carries at most two guesses, whatever
/// number of repeated headers it sends (the throttle counts requests).
fn presented_keys(req: &Request) -> [Option<&[u8]>; 2] {
    let headers = req.headers();
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes();
        let scheme = v.get(..7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| v.get(7..))
            .flatten()
    });
    [bearer, headers.get("x-api-key").map(HeaderValue::as_bytes)]
}

/// The authentication layer's state ([`AuthState::layer`]).
#[derive(Clone, Debug)]
pub struct AuthState {
    /// Accepted keys.
    pub keys: ApiKeys,
    /// Where `api_auth_failed` is counted.
    pub observer: Arc<dyn CacheObserver>,
    /// Per-peer failure counting and refusal.
    pub throttle: Arc<AuthThrottle>,
}

/// Lets a request with a valid key in either header through, with its [`Caller`] as a request extension, whatever other requests from its address did; refuses
/// the rest with 401 and an `api_auth_failed` event, or, while their peer is blocked for too many
/// failures, with 429 and `Retry-After` (see [`crate::throttle`]).
///
/// # Security
/// The key is checked first, in constant time, on every request: a blocked peer is refused only
/// for requests whose key fails. So one misbehaving client cannot lock out the others that share
/// its address (behind NAT or docker-proxy every client is one peer); the cost is that a block
/// no longer hides whether a guess was right, which with keys of 192 bits and more is moot.
///
/// It runs as tower-http's [`ValidateRequest`] ([`AuthState::layer`]): synchronously, before the
/// inner service is called, without the future box and the clone of the inner service stack that
/// an `axum::middleware::from_fn` adds on every request (axum's own `Route` box and clone remain).
#[allow(clippy::result_large_err)] // the shape of `ValidateRequest::validate`, which calls it
fn check_api_key(state: &AuthState, req: &mut Request) -> Result<(), Response> {
    // Every presented key is checked (each in constant time), the first accepted one is the
    // caller: which header held it is not a secret, and a wrong one beside it is no failure.
    let [first, second] =
        presented_keys(req).map(|k| k.and_then(|k| state.keys.caller(k, &state.observer)));
    let caller = first.or(second);
    if let Some(caller) = caller {
        req.extensions_mut().insert(caller);
        return Ok(());
    }
    let path = req.uri().path().chars().take(64).collect::<String>();
    let event = SecurityEvent::new(SecurityEventType::ApiAuthFailed)
        .source(EventSource::HttpApi)
        .detail(format!("missing or wrong API key for {path}"));
    let peer = state.throttle.peer(req);
    // A blocked peer's failure is still counted, but neither logged (the block's
    // `api_rate_limited` record stands for all of them) nor counted toward another block.
    if let Some(Verdict::Blocked(left)) = peer.map(|p| state.throttle.check(p)) {
        state.observer.security_event(event.without_log_record());
        let mut response = ApiError::TooManyAuthFailures.into_response();
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(response);
    }
    let failure = peer.map(|p| (p, state.throttle.failure(p)));
    let event = if failure.is_some_and(|(_, f)| !f.log_now) {
        // Counted; logged in the peer's aggregated record for this window.
        event.without_log_record()
    } else {
        event
    };
    state.observer.security_event(event);
    if let Some((peer, f)) = failure
        && f.blocked
    {
        let config = state.throttle.config();
        state.observer.security_event(
            SecurityEvent::new(SecurityEventType::ApiRateLimited)
                .source(EventSource::HttpApi)
                .detail(format!(
                    "peer {peer} refused for {} s after {} failed API-key attempts within {} s (a valid key is still accepted)",
                    config.block.as_secs(),
                    config.limit,
                    config.window.as_secs()
                )),
        );
    }
    Err(ApiError::Unauthorized.into_response())
}

impl AuthState {
    /// The authentication layer: every request it wraps needs a valid key in either header (its
    /// `Caller` becomes a request extension); the rest get 401 and an `api_auth_failed` event, or
    /// 429 while their peer is blocked (see `crate::throttle`).
    #[must_use]
    pub fn layer(self) -> ValidateRequestHeaderLayer<ApiKeyCheck> {
        ValidateRequestHeaderLayer::custom(ApiKeyCheck(Arc::new(self)))
    }
}

/// The validator of [`AuthState::layer`]: the state behind one `Arc`, as the layer's service is
/// cloned for every request.
#[derive(Clone, Debug)]
pub struct ApiKeyCheck(Arc<AuthState>);

impl ValidateRequest<Body> for ApiKeyCheck {
    type ResponseBody = Body;

    fn validate(&mut self, req: &mut Request) -> Result<(), Response> {
        check_api_key(&self.0, req)
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use sealcache_monitor::SecurityAwareCacheMonitor;
    use tower::ServiceExt as _;

    use super::*;
    use crate::throttle::ThrottleConfig;

    const LIMIT: u32 = 3;

    fn app(monitor: Arc<SecurityAwareCacheMonitor>) -> Router {
        let state = AuthState {
            keys: ApiKeys::new(["the-valid-key"]),
            observer: monitor,
            throttle: Arc::new(AuthThrottle::new(ThrottleConfig {
                limit: LIMIT,
                window: Duration::from_secs(60),
                block: Duration::from_secs(60),
                trusted_proxies: Vec::new(),
            })),
        };
        Router::new()
            .route("/protected", get(|| async { "ok" }))
            .layer(state.layer())
    }

    /// A request from `peer` with `key` (none: no key header).
    async fn call(app: &Router, peer: &str, key: Option<&str>) -> Response {
        let mut request = axum::http::Request::get("/protected");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40_000)));
        app.clone().oneshot(request).await.unwrap()
    }

    /// A request from `peer` with these headers.
    async fn call_with(app: &Router, peer: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = axum::http::Request::get("/protected");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40_000)));
        app.clone().oneshot(request).await.unwrap()
    }

    fn file(entries: &[(&str, &str, &str, &str)]) -> ApiKeysFile {
        let text: String = entries
            .iter()
            .map(|(id, tenant, scopes, key)| {
                sealcache_config_gen::api_keys::ApiKeyEntry::new(
                    KeyId::new(id).unwrap(),
                    Tenant::new(tenant).unwrap(),
                    Scopes::parse_list(scopes).unwrap(),
                    Digest::of(key.as_bytes()),
                )
                .to_toml()
            })
            .collect();
        sealcache_config_gen::api_keys::parse(&text).unwrap()
    }

    #[test]
    fn each_key_makes_its_own_caller_and_a_reload_replaces_only_the_scoped_keys() {
        use sealcache_config_gen::api_keys::Scope;
        let observer: Arc<dyn CacheObserver> = Arc::new(SecurityAwareCacheMonitor::new());
        let keys = ApiKeys::with_scoped(
            ["legacy-key"],
            &file(&[
                ("web", "acme", "lookup,store", "web-key"),
                ("ops", "globex", "admin", "ops-key"),
            ]),
        )
        .unwrap();
        let web = keys.caller(b"web-key", &observer).unwrap();
        assert_eq!((web.key_id.as_str(), web.tenant.as_str()), ("web", "acme"));
        assert!(web.has(Scope::Store) && !web.has(Scope::Admin));
        let ops = keys.caller(b"ops-key", &observer).unwrap();
        assert_eq!(
            (ops.key_id.as_str(), ops.tenant.as_str()),
            ("ops", "globex")
        );
        let legacy = keys.caller(b"legacy-key", &observer).unwrap();
        assert_eq!(legacy.key_id.as_str(), "legacy");
        assert!(legacy.tenant.is_default() && legacy.scopes == Scopes::all());
        for wrong in [&b"web-ke"[..], b"web-key ", b"", b"WEB-KEY"] {
            assert!(keys.caller(wrong, &observer).is_none());
        }
        let posture = keys.posture();
        assert_eq!(
            (posture.scoped_keys, posture.legacy_keys, posture.tenants),
            (2, 1, 3)
        );
        assert_eq!(posture.keys_per_scope["store"], 2);
        assert_eq!(posture.keys_per_scope["admin"], 2);
        let shown = format!("{keys:?} {web:?}");
        assert!(
            !shown.contains("web-key") && !shown.contains("acme"),
            "{shown}"
        );

        // A reload: ops gone, a new key in; the legacy key stays.
        keys.replace_scoped(&file(&[("new", "acme", "lookup", "new-key")]))
            .unwrap();
        assert!(keys.caller(b"ops-key", &observer).is_none());
        assert!(keys.caller(b"new-key", &observer).is_some());
        assert!(keys.caller(b"legacy-key", &observer).is_some());
        // A scoped key that is also a legacy key: refused, the running set kept.
        let err = keys
            .replace_scoped(&file(&[("dup", "acme", "lookup", "legacy-key")]))
            .unwrap_err();
        assert_eq!(err.id, "dup");
        assert!(keys.caller(b"new-key", &observer).is_some());
        keys.record_refused_reload();
        assert_eq!(keys.posture().reloads_refused, 1);
    }

    #[tokio::test]
    async fn a_missing_scope_is_403_forbidden_and_counted_before_the_handler_runs() {
        use sealcache_config_gen::api_keys::Scope;
        let monitor = Arc::new(SecurityAwareCacheMonitor::new());
        let keys = ApiKeys::with_scoped(
            std::iter::empty(),
            &file(&[("reader", "acme", "lookup", "reader-key")]),
        )
        .unwrap();
        let state = AuthState {
            keys,
            observer: monitor.clone(),
            throttle: Arc::new(AuthThrottle::new(ThrottleConfig {
                limit: LIMIT,
                window: Duration::from_secs(60),
                block: Duration::from_secs(60),
                trusted_proxies: Vec::new(),
            })),
        };
        const STORE: &[Scope] = &[Scope::Store];
        const LOOKUP: &[Scope] = &[Scope::Lookup];
        let app = Router::new()
            .route(
                "/store",
                get(|| async { "stored" }).route_layer(crate::caller::RequireScope::layer(STORE)),
            )
            .route(
                "/lookup",
                get(|caller: Caller| async move { caller.key_id.to_string() })
                    .route_layer(crate::caller::RequireScope::layer(LOOKUP)),
            )
            .layer(state.layer());
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let request = axum::http::Request::get(path)
                    .header("x-api-key", "reader-key")
                    .body(Body::empty())
                    .unwrap();
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        assert_eq!(
            call("/lookup").await,
            (axum::http::StatusCode::OK, "reader".into())
        );
        let (status, body) = call("/store").await;
        assert_eq!(status, 403);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
        let summary = monitor.security_summary();
        assert_eq!(summary.events_by_type["api_scope_denied"], 1);
        assert_eq!(summary.events_by_type["api_auth_failed"], 0);
    }

    #[tokio::test]
    async fn a_scope_check_without_a_caller_in_front_refuses_and_the_handler_never_runs() {
        use sealcache_config_gen::api_keys::Scope;
        const LOOKUP: &[Scope] = &[Scope::Lookup];
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        // Routed without the authentication layer: no `Caller` is ever inserted.
        let app = Router::new().route(
            "/lookup",
            get(move || async move {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                "ran"
            })
            .route_layer(crate::caller::RequireScope::layer(LOOKUP)),
        );
        let request = axum::http::Request::get("/lookup")
            .header("x-api-key", "the-valid-key")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_valid_key_goes_through_while_its_address_is_blocked_and_failures_get_429() {
        let monitor = Arc::new(SecurityAwareCacheMonitor::new());
        let app = app(monitor.clone());
        let shared = "192.0.2.10"; // one NAT or docker-proxy address for every client
        for i in 0..LIMIT {
            let wrong = format!("guess-{i}");
            assert_eq!(call(&app, shared, Some(&wrong)).await.status(), 401);
        }
        // Blocked now: the valid key still goes through, every time.
        for _ in 0..3 {
            assert_eq!(
                call(&app, shared, Some("the-valid-key")).await.status(),
                200
            );
        }
        // A wrong key and a missing one get 429 with Retry-After.
        for key in [Some("guess-again"), None] {
            let refused = call(&app, shared, key).await;
            assert_eq!(refused.status(), 429);
            let retry: u64 = refused.headers()[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry));
        }
        // Another address is not blocked.
        assert_eq!(call(&app, "192.0.2.11", Some("x")).await.status(), 401);
        // Every failure counted (the refused ones too), one block.
        let summary = monitor.security_summary();
        assert_eq!(
            summary.events_by_type["api_auth_failed"],
            u64::from(LIMIT) + 3
        );
        assert_eq!(summary.events_by_type["api_rate_limited"], 1);
    }

    #[tokio::test]
    async fn repeated_key_headers_are_not_extra_guesses_only_the_first_value_counts() {
        let monitor = Arc::new(SecurityAwareCacheMonitor::new());
        let app = app(monitor.clone());
        let send = |values: &'static [&'static str]| {
            let app = app.clone();
            async move {
                let mut request = axum::http::Request::get("/protected");
                for v in values {
                    request = request.header("x-api-key", *v);
                }
                let mut request = request.body(Body::empty()).unwrap();
                request.extensions_mut().insert(ConnectInfo(SocketAddr::new(
                    "192.0.2.30".parse().unwrap(),
                    40_000,
                )));
                app.oneshot(request).await.unwrap().status()
            }
        };
        // The valid key behind a wrong one is not tried: 401, one failure counted.
        assert_eq!(send(&["wrong", "the-valid-key"]).await, 401);
        assert_eq!(
            monitor.security_summary().events_by_type["api_auth_failed"],
            1
        );
        assert_eq!(send(&["the-valid-key", "wrong"]).await, 200);
    }

    #[tokio::test]
    async fn a_valid_key_in_either_header_passes_whatever_the_other_header_holds() {
        let monitor = Arc::new(SecurityAwareCacheMonitor::new());
        let app = app(monitor.clone());
        let shared = "192.0.2.20";
        for i in 0..LIMIT {
            assert_eq!(
                call(&app, shared, Some(&format!("guess-{i}")))
                    .await
                    .status(),
                401
            );
        }
        // Blocked now. A valid key passes in either header beside a wrong or foreign one.
        let valid_pairs: [&[(&str, &str)]; 6] = [
            &[
                ("authorization", "Bearer wrong"),
                ("x-api-key", "the-valid-key"),
            ],
            &[
                ("authorization", "Bearer the-valid-key"),
                ("x-api-key", "wrong"),
            ],
            &[
                ("authorization", "Basic dXNlcjpwYXNz"),
                ("x-api-key", "the-valid-key"),
            ],
            &[("authorization", "Bearer"), ("x-api-key", "the-valid-key")],
            &[("authorization", "BEARER the-valid-key")],
            &[("authorization", "bearer the-valid-key")],
        ];
        for headers in valid_pairs {
            assert_eq!(
                call_with(&app, shared, headers).await.status(),
                200,
                "{headers:?}"
            );
        }
        // Two wrong keys, or a key under another scheme, are a failure: refused while blocked.
        let refused: [&[(&str, &str)]; 3] = [
            &[
                ("authorization", "Bearer wrong"),
                ("x-api-key", "wrong-too"),
            ],
            &[("authorization", "Basic the-valid-key")],
            &[("authorization", "Bearerthe-valid-key")],
        ];
        for headers in refused {
            assert_eq!(
                call_with(&app, shared, headers).await.status(),
                429,
                "{headers:?}"
            );
        }
        // Elsewhere they are 401, and the valid pairs 200.
        assert_eq!(
            call_with(&app, "192.0.2.21", refused[0]).await.status(),
            401
        );
        assert_eq!(
            call_with(&app, "192.0.2.21", valid_pairs[0]).await.status(),
            200
        );
        assert_eq!(
            monitor.security_summary().events_by_type["api_auth_failed"],
            u64::from(LIMIT) + 4
        );
    }
}
