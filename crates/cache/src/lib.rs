//! sealcache: a production-hardened, sealed Redis cache for AI/LLM responses.
//!
//! # Brief overview
//!
//! * [`AiResponseCache`] caches model answers keyed by an [`AiRequest`] (`text`, `operation`,
//!   `options`, `question`, `model`): `get`, `set`, `get_or_compute` (single-flight within the
//!   process and, through leases in Redis, across every process on the same Redis), `delete`,
//!   `invalidate_operation`, `clear`, `stats`, `security_status`.
//! * [`AiResponseCache::lookup_or_lease`] with [`LookupOptions`] (`max_age`, `no_cache`, a lease
//!   and a wait) answers a [`LookupOutcome`]: the HTTP API's lookup-or-lease protocol, with
//!   [`LeaseToken`]s that name their lease without server state.
//! * Streamed answers: [`SseEvent`]s stored as one sealed value ([`AiResponseCache::set_events`],
//!   [`StreamRecorder`]), replayed byte-exact ([`Cached::sse_bytes`], [`EventStream`]), computed
//!   once with callers attaching to the live stream ([`AiResponseCache::get_or_compute_stream`]).
//! * [`SealedCache`] is the generic layer over explicit keys and serde values.
//! * [`CacheBuilder`] decides keyring, then transport, then builds under the strict policy
//!   (docs/architecture.md §5); [`from_settings`] builds from `sealcache-config-gen`'s settings.
//! * [`RedisConfig`] (TLS with a pinned CA and a client certificate, ACL user, timeouts, breaker),
//!   [`TtlPolicy`], [`CacheOptions`].
//!
//! Keys are `{namespace}:v3:{operation}:{hex HMAC-SHA256}` of the owner (tenant and subject, see
//! [`AiResponseCache::tenant`]) and the request, options canonicalized
//! as RFC 8785 (JCS) does (no request text in key names); values are sealed with `sealcache-codec` (zstd, AES-256-GCM bound to the key); an
//! in-process L1 (bounded LRU) sits in front of Redis and never outlives the Redis entry; every
//! write is one `SET key value PX ttl`; invalidation is `SCAN MATCH` + `UNLINK`, never `KEYS`.
//!
//! # Example
//!
//! ```no_run
//! use sealcache::{AiRequest, CacheBuilder, RedisConfig};
//! use sealcache_codec::Keyring;
//! use sealcache_env_detect::{EnvironmentDetector, FeatureContext};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let environment = EnvironmentDetector::default().detect(FeatureContext::SecurityEnforcement);
//! let cache = CacheBuilder::new(environment)
//!     .keyring(Keyring::from_file("deploy/generated/secrets/encryption_keyring")?)
//!     .redis(
//!         RedisConfig::new("rediss://redis:6379/0")
//!             .acl_user("cache_app", std::fs::read_to_string("deploy/generated/secrets/redis_app_password")?)
//!             .tls_files(
//!                 "deploy/generated/secrets/tls/ca.crt",
//!                 "deploy/generated/secrets/tls/client.crt",
//!                 "deploy/generated/secrets/tls/client.key",
//!             ),
//!     )
//!     .build()?;
//!
//! let request = AiRequest::new("summarize", "A long article ...").model("gpt-4o-mini");
//! let answer = cache
//!     .get_or_compute(&request, None, || async {
//!         Ok::<_, std::io::Error>(serde_json::json!({"summary": "Short."}))
//!     })
//!     .await?;
//! println!("{} (from {})", answer.value, answer.origin.as_str());
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | enables | default |
//! |---|---|---|
//! | `settings` | [`from_settings`] (`sealcache-config-gen`'s `SecuritySettings`) | yes |
//!
//! # Security
//!
//! Guaranteed: a value is served only if it authenticates for its exact Redis key; every failure to
//! open (tampered, copied from another key, unknown key id, oversize, legacy plaintext) is a miss and
//! a counted security event, never an error to the caller and never bytes served; a dead Redis costs
//! each call at most the response timeout (plus a margin) and nothing once the breaker is open;
//! TLS uses rustls with the `ring` provider and pins the configured CA; credentials are never taken
//! from (or shown in) the URL. Left to the caller: keeping the keyring and passwords in 0600 files,
//! running one cache per process, and choosing TTLs. See `docs/cache.md`.

mod ai;
mod backend;
mod breaker;
mod builder;
mod cache;
mod coherence;
mod compute;
mod connect;
pub mod danger;
mod data_key;
mod error;
mod flight;
mod json_text;
mod key;
mod keyring_reload;
mod l1;
mod lease;
mod live;
mod live_remote;
mod policy;
mod posture;
mod scope;
mod status;
mod stored_value;
mod stream;
mod tls_probe;
mod ttl;
mod wake;

pub use ai::AiResponseCache;
pub use breaker::BreakerConfig;
pub use builder::{
    CacheBuilder, KeySource, KeyringDecided, NeedsKeyring, NeedsTransport, ReadyToBuild,
};
#[cfg(feature = "settings")]
pub use builder::{from_settings, from_settings_with};
pub use bytes::Bytes;
pub use cache::{
    CLEAR_CONFIRMATION, CacheOptions, CacheStats, Cached, DEFAULT_L1_MAX_BYTES,
    DEFAULT_L1_MAX_ENTRY_BYTES, DEFAULT_LEASE_POLL, DEFAULT_LEASE_TTL, DEFAULT_LEASE_WAIT,
    DEFAULT_MAX_LIVE_FOLLOWERS, SCAN_BATCH, SealedCache,
};
pub use coherence::invalidation_channel;
pub use compute::{Answer, Origin};
pub use connect::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, RedisConfig, redact_url};
pub use data_key::{DEFAULT_DATA_KEY_CACHE_BYTES, DEFAULT_DATA_KEY_CACHE_ENTRIES, Erasure};
pub use error::{
    ComputeError, Error, KeyringRefusal, PolicyViolation, Requirement, Result, TlsFailure,
    WriteRefusal,
};
pub use json_text::{JsonText, check_json_text};
pub use key::{AiRequest, KeyScheme, validate_key, validate_operation};
pub use keyring_reload::{KeyringReload, KeyringReloadStatus, KeyringReloaded};
pub use lease::{HeldLease, Lease, LeaseToken, LookupOptions, LookupOutcome};
pub use live::{LiveStream, StreamError};
pub use live_remote::{FRAME_TTL, FollowError, Followed, LiveEvents};
pub use policy::unmet_requirements;
pub use posture::password_generation;
pub use scope::{
    DEFAULT_TENANT, MAX_SUBJECT_LEN, MAX_TENANT_LEN, validate_subject, validate_tenant,
};
pub use status::{
    CERTIFICATE_WARNING_DAYS, Check, CheckName, ClusterStatus, Impact, L1CoherenceStatus, NodeRole,
    NodeStatus, SecurityLevel, SecurityStatus,
};
pub use stored_value::EntryKind;
pub use stream::{EventStream, SseEvent, StreamRecorder, render_sse};
pub use ttl::TtlPolicy;

// What the public API needs, so that a program depends on `sealcache` (and `tokio`) alone.
pub use sealcache_codec::{Dictionary, Keyring, SecretKey};
pub use sealcache_env_detect::{
    Environment, EnvironmentDetector, EnvironmentInfo, FeatureContext, MapSource, Policy,
    SecurityMode,
};
pub use sealcache_monitor::{BreakerState, CacheObserver, SecurityEvent, SecurityEventType, Tier};
#[cfg(feature = "settings")]
pub use sealcache_settings::SecuritySettings;

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
