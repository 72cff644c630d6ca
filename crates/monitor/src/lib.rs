//! Security-aware monitoring for sealcache: performance figures, security events, and their export
//! through OpenTelemetry.
//!
//! # Brief overview
//!
//! * [`CacheObserver`] is the seam the cache and the server call: lookups, durations, sizes, seals,
//!   L1 size, invalidations, Redis availability, breaker state and [`SecurityEvent`]s. [`NoopObserver`]
//!   records nothing; [`Tee`] sends to two observers.
//! * [`SecurityAwareCacheMonitor`] keeps lock-free performance counters and a bounded ring of
//!   security events with per-type totals, 5-minute and 1-hour windows, and [`AlertRule`]s that
//!   raise one `tracing` record per window. Its [`performance_summary`](SecurityAwareCacheMonitor::performance_summary)
//!   and [`security_summary`](SecurityAwareCacheMonitor::security_summary) are JSON-serializable.
//! * With the `otel` feature, `OtelObserver` records the instruments of docs/architecture.md §7
//!   from a `Meter`, and `Telemetry` sets up OTLP/HTTP (`otlp`), a Prometheus text registry
//!   (`prometheus`), or nothing.
//! * With the `acl-log` feature, `AclLogPoller` turns Redis `ACL LOG` entries into `auth_failed`
//!   and `acl_denied` events, counted exactly (whole deltas, across reconnects, restarts and log resets).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use sealcache_monitor::{
//!     CacheObserver, LookupResult, OperationKind, SecurityAwareCacheMonitor, SecurityEvent,
//!     SecurityEventType, Tier,
//! };
//!
//! let monitor = SecurityAwareCacheMonitor::new();
//! for _ in 0..3 {
//!     monitor.lookup("qa", Tier::L1, LookupResult::Hit);
//! }
//! monitor.lookup("qa", Tier::Redis, LookupResult::Miss);
//! monitor.operation(OperationKind::Get, Duration::from_micros(40));
//! monitor.security_event(SecurityEvent::new(SecurityEventType::ApiAuthFailed));
//!
//! let perf = monitor.performance_summary();
//! assert_eq!(perf.hit_rate, 0.75); // hits / (hits + misses) of lookups only
//! let json = serde_json::to_value(monitor.security_summary())?;
//! assert_eq!(json["recent_auth_failures"], 1);
//! assert_eq!(json["last_security_event"]["type"], "api_auth_failed");
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! | feature | enables | default |
//! |---|---|---|
//! | `otel` | `OtelObserver` (instruments of docs/architecture.md §7) and `Telemetry` setup | no |
//! | `otlp` | `otel` + OTLP/HTTP export (`http-proto`, blocking reqwest), honouring `OTEL_EXPORTER_OTLP_*` | no |
//! | `prometheus` | `otel` + a Prometheus registry rendered as text for `/metrics` | no |
//! | `tracing-layer` | `otel` + a `tracing-opentelemetry` layer helper for spans | no |
//! | `acl-log` | `AclLogPoller` over redis-rs (Redis server-side events) | no |
//!
//! With no feature the crate depends on no Redis, HTTP or OpenTelemetry crate.
//!
//! # Security
//!
//! Event details are cut to 160 bytes and must never hold a value, key, password or full Redis
//! key ([`key_tag`] gives a safe short tag). Metric attributes are bounded: event types, tiers,
//! results and stages are fixed sets, operation names are capped at [`MAX_OPERATIONS`].

mod clock;
mod event;
mod monitor;
mod observer;
mod perf;
mod security;

#[cfg(feature = "otel")]
mod otel;

#[cfg(feature = "acl-log")]
mod acl_log;

#[cfg(feature = "otlp")]
pub mod export;
#[cfg(feature = "otlp")]
mod sampling;

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{
    EventSource, MAX_DETAIL_LEN, Outcome, SecurityEvent, SecurityEventType, Severity, key_tag,
};
pub use monitor::{MonitorOptions, RECENT_EVENTS, SecurityAwareCacheMonitor};
pub use observer::{
    BreakerState, CacheObserver, LookupResult, NoopObserver, OperationKind, SizeStage, Tee, Tier,
    WriteFailure,
};
pub use perf::{MAX_OPERATIONS, PerformanceSummary, Sizes, TierCounts, Timings, hit_rate};
pub use security::{
    Alert, AlertRule, DEFAULT_RING_CAPACITY, LONG_WINDOW, SHORT_WINDOW, SecuritySummary,
    default_rules,
};

#[cfg(feature = "otel")]
pub use otel::*;

#[cfg(feature = "acl-log")]
pub use acl_log::{AclLogError, AclLogPoller};

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
