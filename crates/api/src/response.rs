//! Response bodies of the HTTP API (docs/api.md). The server writes these types (a hit's body is
//! written byte for byte around the stored JSON, in [`LookupAnswer`]'s shape), and a reader
//! parses them with `serde_json`.

use serde::{Deserialize, Serialize};

use crate::keys::KeysPosture;
use crate::sse::SseEvent;
use crate::status::SecurityStatus;

/// The body of `GET /internal/cache/security-status`: the observed [`SecurityStatus`] (its
/// fields at the top level) and `api_keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct SecurityStatusResponse {
    /// The observed status.
    #[serde(flatten)]
    pub status: SecurityStatus,
    /// The server's API keys, as counts (`None`: not a server's status, such as the Python
    /// package's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<KeysPosture>,
    /// Members this version does not know (from a newer server), kept so that a reader that
    /// writes the status on (`sealcache status --json`) passes them through unchanged. Empty
    /// from a server of this version.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

impl SecurityStatusResponse {
    /// The body for `status` and the server's `api_keys`.
    #[must_use]
    pub fn new(status: SecurityStatus, api_keys: Option<KeysPosture>) -> Self {
        Self {
            status,
            api_keys,
            unknown: std::collections::BTreeMap::new(),
        }
    }
}

/// `GET /health`: whether the server reaches Redis (nothing of the security posture).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Health {
    /// `ok` when Redis answers, else `degraded`.
    pub status: String,
    /// `connected` or `unavailable`.
    pub redis: String,
}

impl Health {
    /// The body for a server that reaches Redis (`redis_up`) or not.
    #[must_use]
    pub fn new(redis_up: bool) -> Self {
        Self {
            status: if redis_up { "ok" } else { "degraded" }.to_owned(),
            redis: if redis_up { "connected" } else { "unavailable" }.to_owned(),
        }
    }
}

/// The lease a lookup grants to the one caller that should compute (`"lease"` was asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct LeaseGranted {
    /// The lease token: give it back with the store (`"lease": {"token": ...}`), or release it.
    pub token: String,
    /// Milliseconds until the lease expires and the next waiter takes over.
    pub expires_in_ms: u64,
}

impl LeaseGranted {
    /// A lease `token` expiring in `expires_in_ms`.
    #[must_use]
    pub fn new(token: impl Into<String>, expires_in_ms: u64) -> Self {
        Self {
            token: token.into(),
            expires_in_ms,
        }
    }
}

/// `POST /v1/cache/lookup` answered as JSON: a hit (`hit: true` with `response` or `events`,
/// and `ttl_remaining_seconds`), or a miss (`hit: false`, with `lease` when this caller should
/// compute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct LookupAnswer {
    /// A cached answer was found.
    pub hit: bool,
    /// A hit of a JSON value: the value as it was stored, any JSON (`null` included: a stored
    /// `null` reads as `Some(Value::Null)`, absent as `None`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub response: Option<serde_json::Value>,
    /// A hit of a stream: its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<SseEvent>>,
    /// A hit: seconds the entry has left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_remaining_seconds: Option<u64>,
    /// A hit read by an `admin` key: the id of the API key that stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_by: Option<String>,
    /// A miss for the one caller that should compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseGranted>,
}

/// A member that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl LookupAnswer {
    /// A miss, with `lease` for the caller that should compute.
    #[must_use]
    pub fn miss(lease: Option<LeaseGranted>) -> Self {
        Self {
            hit: false,
            response: None,
            events: None,
            ttl_remaining_seconds: None,
            written_by: None,
            lease,
        }
    }
}

/// `PUT /v1/cache/entries` (201): the entry is stored for `ttl_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Stored {
    /// Always `true`.
    pub stored: bool,
    /// The TTL the entry got (seconds).
    pub ttl_seconds: u64,
}

impl Stored {
    /// Stored for `ttl_seconds`.
    #[must_use]
    pub fn new(ttl_seconds: u64) -> Self {
        Self {
            stored: true,
            ttl_seconds,
        }
    }
}

/// `POST /internal/cache/invalidate`: how many entries were removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Invalidated {
    /// Entries removed.
    pub invalidated: u64,
}

impl Invalidated {
    /// `invalidated` entries removed.
    #[must_use]
    pub fn new(invalidated: u64) -> Self {
        Self { invalidated }
    }
}

/// `DELETE /v1/cache/leases/{token}`: whether a lease of the caller's was released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct LeaseReleased {
    /// `false`: no such lease of this caller (expired, completed, or another tenant's).
    pub released: bool,
}

impl LeaseReleased {
    /// Released or not.
    #[must_use]
    pub fn new(released: bool) -> Self {
        Self { released }
    }
}

/// `POST /v1/cache/leases/{token}/events`: the events appended to a live stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct EventsAppended {
    /// Events appended by this request.
    pub appended: u64,
    /// The index the next append starts at (`from`).
    pub next: u64,
}

impl EventsAppended {
    /// `appended` events, the next starting at `next`.
    #[must_use]
    pub fn new(appended: u64, next: u64) -> Self {
        Self { appended, next }
    }
}

/// `DELETE /v1/subjects/{subject}` and `DELETE /v1/tenants/{tenant}`: the data key is destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Erased {
    /// Always `true` (also when there was nothing to erase).
    pub erased: bool,
    /// The id of the destroyed data key, in hex (`None`: there was none).
    pub data_key_id: Option<String>,
    /// When, as RFC 3339 UTC.
    pub erased_at: String,
}

impl Erased {
    /// The data key `data_key_id` destroyed at `erased_at` (RFC 3339).
    #[must_use]
    pub fn new(data_key_id: Option<String>, erased_at: impl Into<String>) -> Self {
        Self {
            erased: true,
            data_key_id,
            erased_at: erased_at.into(),
        }
    }
}

/// Every error: `{"error": {"code": "...", "message": "..."}}` (the codes are in docs/api.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's stable code and its message (never a secret, never the request's text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ErrorDetail {
    /// Stable, machine-readable (`invalid_request`, `unauthorized`, ...).
    pub code: String,
    /// For people.
    pub message: String,
}

impl ErrorBody {
    /// The body of error `code` with `message`.
    #[must_use]
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
