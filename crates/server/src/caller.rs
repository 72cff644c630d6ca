//! Who is calling: the API key's id, tenant and scopes, which the authentication middleware
//! ([`crate::auth`]) puts on every authenticated request.
//!
//! Handlers take a [`Caller`] (an extractor) and read its tenant; each route needs one scope (or
//! one of a few), checked by [`RequireScope`] before the body is read, or by
//! [`Caller::require`] where the body decides (`all: true` needs `admin`). docs/api.md lists the
//! scope of each route.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sealcache_monitor::{CacheObserver, EventSource, SecurityEvent, SecurityEventType};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

pub use sealcache_config_gen::api_keys::{KeyId, Scope, Scopes, Tenant};

use crate::error::ApiError;

/// The caller of an authenticated request: its key's id, tenant and scopes.
///
/// # Security
/// Set only by the authentication middleware, from the key that matched; a handler that finds
/// none answers 500 (fail closed), never a default caller. `Debug` shows the key id and scopes,
/// not the tenant (customer data, see [`Tenant`]).
#[derive(Clone)]
pub struct Caller {
    /// The key's id (`legacy` for `API_KEY_FILE`, `API_KEY` and `ADDITIONAL_API_KEYS`).
    pub key_id: KeyId,
    /// The tenant the key acts for (`default` for the legacy keys).
    pub tenant: Tenant,
    /// What the key may do (every scope for the legacy keys).
    pub scopes: Scopes,
    observer: Arc<dyn CacheObserver>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("key_id", &self.key_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// A caller; `observer` is where a denied scope is counted.
    #[must_use]
    pub fn new(
        key_id: KeyId,
        tenant: Tenant,
        scopes: Scopes,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        Self {
            key_id,
            tenant,
            scopes,
            observer,
        }
    }

    /// Whether the key holds `scope` (no event: for choices, such as showing `written_by`).
    #[must_use]
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// Ok when the key holds `scope`; otherwise 403 `forbidden`, counted as an
    /// `api_scope_denied` security event (logged with the key id and the scope).
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.require_any(&[scope])
    }

    /// Ok when the key may do what `scope` allows to **every tenant's** entries at once (an
    /// operation's invalidation: entry keys are keyed digests, so one tenant's entries of an
    /// operation cannot be told from another's). A key of the `default` tenant needs `scope`; a
    /// key of any other tenant needs `admin` too (an operator's key), since otherwise a tenant
    /// could remove every other tenant's answers. Refusals are 403 `forbidden`, counted.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn require_across_tenants(&self, scope: Scope) -> Result<(), ApiError> {
        self.require(scope)?;
        if self.tenant.is_default() || self.scopes.contains(Scope::Admin) {
            return Ok(());
        }
        self.observer.security_event(
            SecurityEvent::new(SecurityEventType::ApiScopeDenied)
                .source(EventSource::HttpApi)
                .detail(format!(
                    "API key {} acts for one tenant: {} reaches every tenant's entries and needs admin",
                    self.key_id,
                    scope.as_str()
                )),
        );
        Err(ApiError::Forbidden)
    }

    /// Ok when the key holds at least one of `scopes`; otherwise as [`Caller::require`].
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        if scopes.iter().any(|s| self.scopes.contains(*s)) {
            return Ok(());
        }
        let needed: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        self.observer.security_event(
            SecurityEvent::new(SecurityEventType::ApiScopeDenied)
                .source(EventSource::HttpApi)
                .detail(format!(
                    "API key {} lacks scope {}",
                    self.key_id,
                    needed.join(" or ")
                )),
        );
        Err(ApiError::Forbidden)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!("a protected handler ran without a caller: refused");
            ApiError::Internal
        })
    }
}

/// Route layer: lets the request through when its caller holds one of these scopes, else answers
/// [`Caller::require_any`]'s 403 (before the body is read). It runs as tower-http's
/// [`ValidateRequest`]: synchronously, without the future box and service clone of a `from_fn`.
#[derive(Clone, Copy, Debug)]
pub struct RequireScope(pub &'static [Scope]);

impl RequireScope {
    /// The layer that requires one of `scopes`.
    #[must_use]
    pub fn layer(scopes: &'static [Scope]) -> ValidateRequestHeaderLayer<Self> {
        ValidateRequestHeaderLayer::custom(Self(scopes))
    }
}

impl ValidateRequest<Body> for RequireScope {
    type ResponseBody = Body;

    fn validate(&mut self, req: &mut Request) -> Result<(), Response> {
        let Some(caller) = req.extensions().get::<Caller>() else {
            tracing::error!("a protected route ran without a caller: refused");
            return Err(ApiError::Internal.into_response());
        };
        caller
            .require_any(self.0)
            .map_err(IntoResponse::into_response)
    }
}
