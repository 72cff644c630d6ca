//! The JSON types of the sealcache HTTP API, shared by the server that writes them and every
//! reader (the `sealcache` operator command, `cargo xtask`, scripts in Rust).
//!
//! Every type is `Serialize` and `Deserialize` and `#[non_exhaustive]`; build values with the
//! constructors. **Compatibility.** A reader built against this version reads what a newer
//! server writes as long as the change is additive: top-level fields it does not know are kept
//! in [`SecurityStatusResponse::unknown`] and written back unchanged, a check it does not know
//! is [`CheckName::Other`]. A new security level,
//! impact or node role would be a breaking change of the API. From an older server it reads a
//! status without the fields added since (flags and counters read as `false`/zero, a check
//! without `observed`/`impact` as observed/`degraded`); `security_level`, `checks` and
//! `keyring_reloads` are required (a backend that does not report its keyring reloads cannot
//! confirm a rotation).
//!
//! * [`SecurityStatusResponse`]: `GET /internal/cache/security-status`, a [`SecurityStatus`]
//!   and the server's [`KeysPosture`].
//! * The other bodies: [`Health`], [`LookupAnswer`] (with [`LeaseGranted`], [`SseEvent`]),
//!   [`Stored`], [`Invalidated`], [`LeaseReleased`], [`EventsAppended`], [`Erased`], and every
//!   error's [`ErrorBody`].
//! * [`SecurityStatus`]: the observed posture, its [`Check`]s and one [`SecurityLevel`]; the
//!   `sealcache` crate assesses it, the server adds what it observes itself
//!   ([`SecurityStatus::add_check`] re-assesses by the same rules).
//!
//! # Example
//!
//! ```
//! use sealcache_api::{CheckName, SecurityLevel, SecurityStatusResponse};
//!
//! let body = r#"{
//!     "encryption_enabled": true, "tls_enabled": true, "tls_version": "TLSv1.3",
//!     "authenticated_user": "cache_app", "default_user_disabled": true,
//!     "auth_configured": true, "primary_key_id": 2, "decrypt_only_key_ids": [1],
//!     "certificate_expires_in_days": 364, "environment": "production", "confidence": 0.9,
//!     "development_override": false, "redis_available": true,
//!     "keyring_reloads": {"applied": 1, "refused": 0, "last_refusal": null},
//!     "security_level": "degraded",
//!     "checks": [
//!         {"name": "tls_negotiated", "passed": true, "observed": true,
//!          "impact": "degraded", "detail": "TLSv1.3"},
//!         {"name": "a_check_from_a_newer_server", "passed": false, "observed": false,
//!          "impact": "degraded", "detail": "not observed"}
//!     ],
//!     "api_keys": {"keys_file": true, "scoped_keys": 3, "legacy_keys": 0, "tenants": 2}
//! }"#;
//! let response: SecurityStatusResponse = serde_json::from_str(body)?;
//! let status = &response.status;
//! assert_eq!(status.security_level, SecurityLevel::Degraded);
//! assert!(status.check(CheckName::TlsNegotiated).is_some_and(|c| c.passed));
//! assert_eq!(status.checks[1].name, CheckName::Other);
//! assert_eq!(response.api_keys.map(|k| k.tenants), Some(2));
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Feature flags
//!
//! | feature | what it adds | default |
//! |---|---|---|
//! | `openapi` | `utoipa::ToSchema` for every type (the server's `GET /openapi.json`) | no |

pub mod keys;
pub mod response;
pub mod sse;
pub mod status;

pub use keys::KeysPosture;
pub use response::{
    Erased, ErrorBody, ErrorDetail, EventsAppended, Health, Invalidated, LeaseGranted,
    LeaseReleased, LookupAnswer, SecurityStatusResponse, Stored,
};
pub use sse::{InvalidEvent, SseEvent, render_sse};
pub use status::{
    CERTIFICATE_WARNING_DAYS, Check, CheckName, ClusterStatus, Impact, KeyringReloadStatus,
    L1CoherenceStatus, NodeRole, NodeStatus, SecurityLevel, SecurityStatus,
};

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
