//! The sealcache HTTP backend: the sealed AI response cache and its security-status API.
//!
//! # Brief overview
//!
//! * [`app`] builds the axum `Router` from an [`AppState`] (tests call it with `oneshot`, no socket).
//! * Authentication ([`auth`]): everything but `/health` needs `Authorization: Bearer KEY` or
//!   `X-API-Key: KEY`, recognised by its SHA-256 in constant time; failures are 401 and an
//!   `api_auth_failed` event. The key makes the request's [`Caller`] (key id, tenant, scopes);
//!   each route needs a [`Scope`], else 403 `forbidden` and an `api_scope_denied` event
//!   ([`caller`]). Scoped keys come from `SEALCACHE_API_KEYS_FILE`, reloaded on `SIGHUP`
//!   ([`keys_reload`]).
//! * Errors ([`ApiError`]): `{"error": {"code", "message"}}` with fixed texts; details only in logs.
//! * The security status adds what the server observes itself: network isolation ([`isolation`])
//!   and the live ACL read as the monitor user ([`AclPosture`]: `acl_users`, `acl_rights`).
//!
//! Endpoints: `GET /health`, `GET /internal/cache/security-status`, `GET /internal/cache/metrics`,
//! `GET /metrics`, `POST /v1/cache/lookup` (leases, cache control, `text/event-stream` replay),
//! `PUT /v1/cache/entries`, `DELETE /v1/cache/leases/{token}`, `POST /v1/cache/leases/{token}/events`
//! (live streams), `POST /internal/cache/invalidate`, `DELETE /v1/subjects/{subject}`,
//! `DELETE /v1/tenants/{tenant}`, and `GET /openapi.json`: the OpenAPI 3.1 document generated
//! from the handlers and the body types ([`openapi`]). See `docs/api.md`.
//!
//! # Example
//!
//! ```no_run
//! # async fn run(state: sealcache_server::AppState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, sealcache_server::app(state)).await
//! # }
//! ```
//!
//! # Feature flags
//!
//! None.
//!
//! # Security
//!
//! The API refuses to start without an API key outside development; the cache refuses an insecure
//! production configuration; request bodies are capped (1 MiB by default); no error echoes input,
//! and logs carry neither request text nor secrets.

pub mod auth;
pub mod caller;
mod conn_io;
mod error;
pub mod isolation;
pub mod keys_reload;
mod limits;
pub mod openapi;
pub mod posture;
pub mod reload;
mod routes;
mod serve;
pub mod telemetry;
pub mod throttle;
mod trace;

pub use trace::{SpanGate, export_filter};

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use sealcache::AiResponseCache;
use sealcache_monitor::{CacheObserver, Telemetry};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

pub use auth::{ApiKeys, KeysPosture};
pub use caller::{Caller, Scope};
pub use error::ApiError;
pub use limits::MAX_REQUEST_ID_LEN;
pub use posture::AclPosture;
pub use sealcache_settings::ServerLimits;
pub use serve::serve;
pub use throttle::{AuthThrottle, ThrottleConfig};

/// Default request body limit (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Everything the handlers share, behind one `Arc`.
///
/// axum clones the state into every request, once per layer and extractor that holds it, and a
/// handler's future carries it: cloning it is one reference count, and it is one pointer wide. Its
/// parts are read through `Deref` (`state.cache`, `state.limits`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    /// The state of a server built from `parts`.
    #[must_use]
    pub fn new(parts: SharedState) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct SharedState {
    /// The cache.
    pub cache: AiResponseCache,
    /// Telemetry (Prometheus registry for `/metrics`).
    pub telemetry: Telemetry,
    /// Accepted API keys.
    pub keys: ApiKeys,
    /// Redis host and port, for the isolation check.
    pub redis_host: Option<(String, u16)>,
    /// `REDIS_NETWORK_ISOLATION=true` (a claim, verified by the check).
    pub isolation_claimed: bool,
    /// `/metrics` without authentication.
    pub metrics_public: bool,
    /// Body limit, timeouts, in-flight limit (the connection limits apply in [`serve`]).
    pub limits: ServerLimits,
    /// API-key brute-force throttle.
    pub throttle: Arc<AuthThrottle>,
    /// The live ACL as the monitor user reads it (`acl_users`, `acl_rights` in the status).
    pub posture: Arc<AclPosture>,
}

impl SharedState {
    /// The security posture as the status endpoint and the `sealcache.security.level` gauge
    /// report it: the cache's own observations, the live ACL read as the monitor user, and the
    /// network-isolation check. One function, so the gauge and the endpoint cannot disagree.
    pub async fn observed_status(&self) -> sealcache::SecurityStatus {
        let mut status = self.cache.security_status().await;
        self.posture.apply(&mut status).await;
        let isolation = match &self.redis_host {
            Some((host, port)) => isolation::observe(host, *port).await,
            None => isolation::Isolation {
                isolated: false,
                detail: "no Redis host".into(),
            },
        };
        status.record_network_isolation(
            isolation.isolated,
            self.isolation_claimed,
            &isolation.detail,
        );
        status
    }
}

/// The router: every endpoint behind the serving layers (request ids, body limit, metrics,
/// catch-panic).
pub fn app(state: AppState) -> Router {
    serving_layers(api_routes(&state), state)
}

/// The endpoints, with authentication where it is needed.
fn api_routes(state: &AppState) -> Router<AppState> {
    let observer: Arc<dyn CacheObserver> = state.cache.observer().clone();
    let auth_state = auth::AuthState {
        keys: state.keys.clone(),
        observer,
        throttle: state.throttle.clone(),
    };
    // The scope each route needs, checked before its body is read (docs/api.md). Invalidation
    // needs `invalidate` for an operation and `admin` for `all` (clear): the handler decides.
    let needs = |scopes: &'static [Scope]| caller::RequireScope::layer(scopes);
    const ADMIN: &[Scope] = &[Scope::Admin];
    let mut protected = Router::new()
        .route(
            "/internal/cache/security-status",
            get(routes::security_status).route_layer(needs(ADMIN)),
        )
        .route(
            "/internal/cache/metrics",
            get(routes::metrics_json).route_layer(needs(ADMIN)),
        )
        .route(
            "/internal/cache/invalidate",
            post(routes::invalidate).route_layer(needs(&[Scope::Invalidate, Scope::Admin])),
        )
        .route(
            "/v1/cache/lookup",
            post(routes::lookup).route_layer(needs(&[Scope::Lookup])),
        )
        .route(
            "/v1/cache/entries",
            put(routes::store).route_layer(needs(&[Scope::Store, Scope::StoreShared])),
        )
        .route(
            "/v1/cache/leases/{token}",
            delete(routes::release_lease).route_layer(needs(&[Scope::Store, Scope::StoreShared])),
        )
        .route(
            "/v1/cache/leases/{token}/events",
            post(routes::append_live_events)
                .route_layer(needs(&[Scope::Store, Scope::StoreShared])),
        )
        .route(
            "/v1/subjects/{subject}",
            delete(routes::tenancy::erase_subject).route_layer(needs(&[Scope::Erase])),
        )
        .route(
            "/v1/tenants/{tenant}",
            delete(routes::tenancy::erase_tenant).route_layer(needs(ADMIN)),
        );
    let mut public = Router::new()
        .route("/health", get(routes::health))
        .route("/openapi.json", get(openapi::openapi_json));
    if state.metrics_public {
        public = public.route("/metrics", get(routes::metrics_text));
    } else {
        protected = protected.route(
            "/metrics",
            get(routes::metrics_text).route_layer(needs(ADMIN)),
        );
    }
    let protected = protected
        .layer(auth_state.layer())
        // Outermost: a path with a parameter (an id, a lease token) is redacted before anything
        // logs it.
        .layer(tower::util::MapRequestLayer::new(
            routes::tenancy::redact_path,
        ));
    public.merge(protected)
}

/// What every response goes through. A handler panic is caught here and answered with the
/// documented 500 JSON error (and its request id), so no client ever sees a reset connection.
fn serving_layers(routes: Router<AppState>, state: AppState) -> Router {
    let http_metrics = telemetry::HttpMetrics::new(&state.telemetry.meter());
    let panics = telemetry::PanicCounter::new(&state.telemetry.meter());
    let catch_panic =
        CatchPanicLayer::custom(move |_payload: Box<dyn std::any::Any + Send>| panics.respond());
    let guard = limits::Guard {
        body_limit: state.limits.body_limit,
        drain_deadline: state.limits.request_timeout,
        in_flight: limits::InFlightLimit::new(
            state.limits.max_in_flight,
            state.limits.max_in_flight_bytes,
            state.limits.body_limit,
        ),
        metrics: http_metrics,
        ids: Arc::default(),
        sampler: state.telemetry.head_sampler(),
    };
    routes
        .fallback(|| async { ApiError::NotFound })
        .layer(catch_panic)
        .layer(DefaultBodyLimit::max(state.limits.body_limit))
        .layer(RequestBodyTimeoutLayer::new(state.limits.body_read_timeout))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(guard, limits::guard))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    fn state() -> AppState {
        let env = sealcache_env_detect::EnvironmentDetector::new(
            sealcache_env_detect::MapSource::new().var("ENVIRONMENT", "development"),
        )
        .detect(sealcache_env_detect::FeatureContext::SecurityEnforcement);
        let cache = sealcache::CacheBuilder::new(env)
            .no_keyring()
            .redis(sealcache::RedisConfig::new("redis://127.0.0.1:1/0"))
            .build()
            .unwrap();
        AppState::new(SharedState {
            cache,
            telemetry: Telemetry::builder("sealcache-test", "development")
                .with_prometheus()
                .unwrap()
                .build(),
            keys: ApiKeys::new(["k"]),
            redis_host: None,
            isolation_claimed: false,
            metrics_public: true,
            limits: ServerLimits::default(),
            throttle: Arc::new(AuthThrottle::new(ThrottleConfig {
                limit: 10,
                window: std::time::Duration::from_secs(60),
                block: std::time::Duration::from_secs(60),
                trusted_proxies: Vec::new(),
            })),
            posture: Arc::default(),
        })
    }

    #[tokio::test]
    async fn a_handler_panic_is_the_documented_500_with_a_request_id_and_counted() {
        let state = state();
        let telemetry = state.telemetry.clone();
        async fn boom() -> &'static str {
            panic!("secret request text")
        }
        let routes = Router::new().route("/boom", get(boom));
        let app = serving_layers(routes, state);
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert!(response.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "internal", "message": "internal error"}})
        );
        let text = telemetry.render_prometheus().unwrap().unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("sealcache_http_server_panics_total") && l.ends_with(" 1")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_rejected_path_segment_is_the_json_error_body() {
        // A path segment that is not UTF-8: axum's own rejection is text; the client must get
        // the documented JSON body, on every route with a path parameter.
        for (method, uri) in [
            ("DELETE", "/v1/subjects/%FF"),
            ("DELETE", "/v1/tenants/%C0%AF"),
            ("DELETE", "/v1/cache/leases/%FF"),
            ("POST", "/v1/cache/leases/%FF/events"),
        ] {
            let response = app(state())
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(uri)
                        .header("x-api-key", "k")
                        .header("content-type", "application/json")
                        .body(Body::from("{}"))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{method} {uri}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{method} {uri}"
            );
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(body["error"]["code"].is_string(), "{method} {uri}: {body}");
        }
    }
}

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
