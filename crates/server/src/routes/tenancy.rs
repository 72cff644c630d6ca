//! Tenants, subjects, shared entries and erasure over HTTP.
//!
//! * Lookups and stores act for the caller's tenant (from its API key), and for the `subject` of
//!   their body when given; `"shared": true` (or an operation in `SEALCACHE_SHARED_OPERATIONS`)
//!   reads and writes the entry shared across tenants instead (storing one needs scope
//!   `store_shared`), whose hits carry neither `ttl_remaining_seconds` nor `Age` (they would
//!   tell one tenant when another asked).
//! * `DELETE /v1/subjects/{subject}` (scope `erase`, the caller's tenant) and
//!   `DELETE /v1/tenants/{tenant}` (scope `admin`) destroy the data keys (see the cache's
//!   `erase_subject` / `erase_tenant`) and answer `{"erased": true, "data_key_id": ..., "erased_at":
//!   ...}`.
//!
//! Paths of these routes carry a raw id: [`redact_path`] replaces the request's path with its
//! route template before anything (authentication failures included) can log it.

use std::collections::HashSet;
use std::sync::OnceLock;

use axum::Json;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use sealcache::AiResponseCache;

use crate::AppState;
use crate::caller::{Caller, Scope};
use crate::error::ApiError;

/// The environment variable naming the operations shared across tenants (comma-separated).
pub(crate) const SHARED_OPERATIONS_VAR: &str = "SEALCACHE_SHARED_OPERATIONS";

/// The operations shared across tenants, read once from [`SHARED_OPERATIONS_VAR`].
fn shared_operations() -> &'static HashSet<String> {
    static SHARED: OnceLock<HashSet<String>> = OnceLock::new();
    SHARED.get_or_init(|| {
        std::env::var(SHARED_OPERATIONS_VAR)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|op| !op.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Whether a request of `operation` with body member `shared` reads or writes the shared entry.
pub(crate) fn is_shared(operation: &str, shared: Option<bool>) -> bool {
    shared.unwrap_or(false) || shared_operations().contains(operation)
}

/// The cache as the caller sees it: its tenant (and `subject`), or the shared entries.
///
/// # Errors
/// [`ApiError::InvalidRequest`] for a subject on a shared entry, or an id the cache refuses.
pub(crate) fn scoped(
    state: &AppState,
    caller: &Caller,
    subject: Option<&str>,
    shared: bool,
) -> Result<AiResponseCache, ApiError> {
    let cache = if shared {
        if subject.is_some() {
            return Err(ApiError::InvalidRequest(
                "a shared entry has no subject (shared entries hold no personal data)",
            ));
        }
        state.cache.shared()
    } else {
        let cache = state.cache.tenant(caller.tenant.as_str())?;
        match subject {
            Some(subject) => cache.subject(subject)?,
            None => cache,
        }
    };
    // Every value it stores names the API key that stored it (`written_by`, for admins).
    Ok(cache.written_by(caller.key_id.as_str())?)
}

/// A shared entry's hit without `ttl_remaining_seconds` and `Age`.
pub(crate) async fn shared_answer(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::AGE);
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal.into_response();
    };
    if !is_json {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    // The hit body ends with `,"ttl_remaining_seconds":N}` (written by the lookup's answer).
    const MEMBER: &[u8] = b",\"ttl_remaining_seconds\":";
    let cut = bytes
        .windows(MEMBER.len())
        .rposition(|w| w == MEMBER)
        .filter(|&at| {
            bytes[at + MEMBER.len()..]
                .strip_suffix(b"}")
                .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
        });
    let body = match cut {
        Some(at) => {
            let mut trimmed = bytes[..at].to_vec();
            trimmed.push(b'}');
            parts.headers.remove(header::CONTENT_LENGTH);
            axum::body::Body::from(trimmed)
        }
        None => axum::body::Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// The answer of an erasure.
fn erased(erasure: &sealcache::Erasure) -> Response {
    let at: chrono_like::Rfc3339 = erasure.erased_at.into();
    Json(sealcache_api::Erased::new(
        erasure.data_key_id.clone(),
        at.to_string(),
    ))
    .into_response()
}

/// `DELETE /v1/subjects/{subject}`: destroys the data key of a subject of the caller's tenant.
#[utoipa::path(delete, path = "/v1/subjects/{subject}", tag = "tenancy",
    params(("subject" = String, Path, min_length = 1, max_length = 1024, description = "The end user, within the caller's tenant: 1 to 1,024 bytes of UTF-8 once percent-decoded, no control character (maxLength counts characters, the server counts bytes)")),
    responses((status = 200, description = "The subject's data key is destroyed (scope `erase`)", body = sealcache_api::Erased),
        (status = 507, description = "Redis refused the write for memory (`store_full`)", body = sealcache_api::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn erase_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Erase)?;
    let cache = state.cache.tenant(caller.tenant.as_str())?;
    let erasure = cache.erase_subject(&subject).await?;
    Ok(erased(&erasure))
}

/// `DELETE /v1/tenants/{tenant}`: destroys every data key of a tenant.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenancy",
    params(("tenant" = String, Path, min_length = 1, max_length = 256, description = "The tenant")),
    responses((status = 200, description = "The tenant's data key and its subjects' are destroyed (scope `admin`)", body = sealcache_api::Erased),
        (status = 507, description = "Redis refused the write for memory (`store_full`)", body = sealcache_api::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub(crate) async fn erase_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let erasure = state.cache.tenant(&tenant)?.erase_tenant().await?;
    Ok(erased(&erasure))
}

/// Request rewrite (outermost on the protected routes, as tower's `MapRequest`): the path of a
/// route with a parameter (a subject or tenant id, a lease token: ids a log must not hold, a token
/// that is a capability) is replaced by its template (`/v1/subjects/{subject}`,
/// `/v1/cache/leases/{token}`) before authentication or anything else can log it. Path parameters
/// were captured when the route matched, so handlers still get them.
pub(crate) fn redact_path(mut req: Request) -> Request {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .filter(|p| p.as_str().contains('{'))
        .map(|p| p.as_str().parse::<Uri>());
    if let Some(Ok(uri)) = template {
        *req.uri_mut() = uri;
    }
    req
}

/// RFC 3339 UTC timestamps without a date-time dependency.
mod chrono_like {
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A time written as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub(super) struct Rfc3339(SystemTime);

    impl From<SystemTime> for Rfc3339 {
        fn from(t: SystemTime) -> Self {
            Self(t)
        }
    }

    impl std::fmt::Display for Rfc3339 {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
            let secs = since.as_secs();
            let (days, rem) = (secs / 86_400, secs % 86_400);
            // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
            let z = i64::try_from(days).unwrap_or(0) + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let day = doy - (153 * mp + 2) / 5 + 1;
            let month = if mp < 10 { mp + 3 } else { mp - 9 };
            let year = yoe + era * 400 + i64::from(month <= 2);
            write!(
                f,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60,
                since.subsec_millis()
            )
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::time::Duration;

        #[test]
        fn known_instants() {
            let at = |s: u64, ms: u64| {
                Rfc3339::from(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms)).to_string()
            };
            assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
            assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
            assert_eq!(at(1_796_083_199, 999), "2026-11-30T23:59:59.999Z");
        }
    }
}
