//! The seam: what the cache and the server report, and the no-op and tee implementations.

use std::time::Duration;

use serde::Serialize;

use crate::event::SecurityEvent;

/// Which cache tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The in-process L1.
    L1,
    /// Redis.
    Redis,
}

impl Tier {
    /// Attribute value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::Redis => "redis",
        }
    }
}

/// The result of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupResult {
    /// Found and served.
    Hit,
    /// Not found (or refused: a security failure is a miss too).
    Miss,
    /// Redis failed or was skipped by the breaker.
    Error,
}

impl LookupResult {
    /// Attribute value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LookupResult::Hit => "hit",
            LookupResult::Miss => "miss",
            LookupResult::Error => "error",
        }
    }
}

/// A cache operation whose duration is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// `get`.
    Get,
    /// `set`.
    Set,
    /// `delete`.
    Delete,
    /// `invalidate_operation` / `clear`.
    Invalidate,
    /// Computing a cache key (HMAC).
    KeyGeneration,
}

impl OperationKind {
    /// Every kind.
    pub const ALL: [OperationKind; 5] = [
        OperationKind::Get,
        OperationKind::Set,
        OperationKind::Delete,
        OperationKind::Invalidate,
        OperationKind::KeyGeneration,
    ];

    /// Attribute value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Get => "get",
            OperationKind::Set => "set",
            OperationKind::Delete => "delete",
            OperationKind::Invalidate => "invalidate",
            OperationKind::KeyGeneration => "key_generation",
        }
    }
}

/// Which size is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeStage {
    /// The plaintext.
    Plain,
    /// After compression (equals plain when not compressed).
    Compressed,
    /// The stored envelope.
    Stored,
}

impl SizeStage {
    /// Attribute value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SizeStage::Plain => "plain",
            SizeStage::Compressed => "compressed",
            SizeStage::Stored => "stored",
        }
    }
}

/// Why a write to Redis failed (`sealcache.write.failures`, attribute `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WriteFailure {
    /// Redis refused it for lack of memory (`OOM`, `maxmemory` with `noeviction`).
    OutOfMemory,
    /// The node is a read-only replica (`READONLY`).
    ReadOnly,
    /// The ACL user may not write there (`NOPERM`).
    NoPermission,
    /// Any other error reply.
    Refused,
    /// Redis was unreachable, timed out, or skipped by the open breaker.
    Unavailable,
}

impl WriteFailure {
    /// Every reason, in [`WriteFailure::index`] order.
    pub const ALL: [WriteFailure; 5] = [
        WriteFailure::OutOfMemory,
        WriteFailure::ReadOnly,
        WriteFailure::NoPermission,
        WriteFailure::Refused,
        WriteFailure::Unavailable,
    ];

    /// Attribute value: `oom`, `readonly`, `noperm`, `refused` or `unavailable`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WriteFailure::OutOfMemory => "oom",
            WriteFailure::ReadOnly => "readonly",
            WriteFailure::NoPermission => "noperm",
            WriteFailure::Refused => "refused",
            WriteFailure::Unavailable => "unavailable",
        }
    }

    /// Position in [`WriteFailure::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The Redis circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Redis is used.
    Closed,
    /// One trial call is allowed.
    HalfOpen,
    /// Redis is skipped until the cool-down ends.
    Open,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    #[must_use]
    pub fn as_gauge(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// What the cache and the server report. Every method has an empty default, so an implementation
/// overrides only what it records.
///
/// # Performance contract
/// [`CacheObserver::lookup`] and [`CacheObserver::operation`] are on the cache's hit path:
/// implementations must not allocate or take a lock there (atomics, or the OpenTelemetry SDK's own
/// instruments).
///
/// `operation` is the AI operation name (`summarize`, `qa`, ...), already validated by the cache;
/// implementations keep its cardinality bounded.
pub trait CacheObserver: Send + Sync + std::fmt::Debug {
    /// A lookup finished.
    fn lookup(&self, _operation: &str, _tier: Tier, _result: LookupResult) {}
    /// A cache operation took `elapsed`.
    fn operation(&self, _kind: OperationKind, _elapsed: Duration) {}
    /// A `get` took `elapsed` and ended at `tier` (L1 hit, or Redis hit/miss/error). The default
    /// records it as an untiered [`OperationKind::Get`]; the OpenTelemetry observer adds `tier`.
    fn lookup_duration(&self, _tier: Tier, elapsed: Duration) {
        self.operation(OperationKind::Get, elapsed);
    }
    /// A Redis command (`GET`, `SET`, `UNLINK`, ...) took `elapsed`; `ok` is false on error.
    fn redis_command(&self, _command: &'static str, _elapsed: Duration, _ok: bool) {}
    /// An entry's size at `stage`.
    fn entry_size(&self, _stage: SizeStage, _bytes: u64) {}
    /// A value was sealed with `key_id`.
    fn seal(&self, _key_id: u32) {}
    /// The L1 tier now holds `entries`.
    fn l1_entries(&self, _entries: u64) {}
    /// The L1 tier now holds `bytes`: what its entries cost the heap, as weighed against its byte
    /// bound.
    fn l1_bytes(&self, _bytes: u64) {}
    /// An invalidation removed `keys`.
    fn invalidation(&self, _keys: u64) {}
    /// A computation was shared by a concurrent caller (single-flight).
    fn singleflight_coalesced(&self) {}
    /// A write did not reach Redis (nothing was cached anywhere).
    fn write_failure(&self, _reason: WriteFailure) {}
    /// Redis became available or unavailable.
    fn redis_available(&self, _available: bool) {}
    /// The breaker changed state.
    fn breaker_state(&self, _state: BreakerState) {}
    /// A security event happened.
    fn security_event(&self, _event: SecurityEvent) {}
}

/// Records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl CacheObserver for NoopObserver {}

/// Sends everything to two observers (for example the in-process monitor and OpenTelemetry).
#[derive(Debug, Clone)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: CacheObserver, B: CacheObserver> CacheObserver for Tee<A, B> {
    fn lookup(&self, operation: &str, tier: Tier, result: LookupResult) {
        self.0.lookup(operation, tier, result);
        self.1.lookup(operation, tier, result);
    }
    fn operation(&self, kind: OperationKind, elapsed: Duration) {
        self.0.operation(kind, elapsed);
        self.1.operation(kind, elapsed);
    }
    fn lookup_duration(&self, tier: Tier, elapsed: Duration) {
        self.0.lookup_duration(tier, elapsed);
        self.1.lookup_duration(tier, elapsed);
    }
    fn redis_command(&self, command: &'static str, elapsed: Duration, ok: bool) {
        self.0.redis_command(command, elapsed, ok);
        self.1.redis_command(command, elapsed, ok);
    }
    fn entry_size(&self, stage: SizeStage, bytes: u64) {
        self.0.entry_size(stage, bytes);
        self.1.entry_size(stage, bytes);
    }
    fn seal(&self, key_id: u32) {
        self.0.seal(key_id);
        self.1.seal(key_id);
    }
    fn l1_entries(&self, entries: u64) {
        self.0.l1_entries(entries);
        self.1.l1_entries(entries);
    }
    fn l1_bytes(&self, bytes: u64) {
        self.0.l1_bytes(bytes);
        self.1.l1_bytes(bytes);
    }
    fn invalidation(&self, keys: u64) {
        self.0.invalidation(keys);
        self.1.invalidation(keys);
    }
    fn singleflight_coalesced(&self) {
        self.0.singleflight_coalesced();
        self.1.singleflight_coalesced();
    }
    fn write_failure(&self, reason: WriteFailure) {
        self.0.write_failure(reason);
        self.1.write_failure(reason);
    }
    fn redis_available(&self, available: bool) {
        self.0.redis_available(available);
        self.1.redis_available(available);
    }
    fn breaker_state(&self, state: BreakerState) {
        self.0.breaker_state(state);
        self.1.breaker_state(state);
    }
    fn security_event(&self, event: SecurityEvent) {
        self.0.security_event(event.clone());
        self.1.security_event(event);
    }
}

impl<T: CacheObserver + ?Sized> CacheObserver for std::sync::Arc<T> {
    fn lookup(&self, operation: &str, tier: Tier, result: LookupResult) {
        (**self).lookup(operation, tier, result);
    }
    fn operation(&self, kind: OperationKind, elapsed: Duration) {
        (**self).operation(kind, elapsed);
    }
    fn lookup_duration(&self, tier: Tier, elapsed: Duration) {
        (**self).lookup_duration(tier, elapsed);
    }
    fn redis_command(&self, command: &'static str, elapsed: Duration, ok: bool) {
        (**self).redis_command(command, elapsed, ok);
    }
    fn entry_size(&self, stage: SizeStage, bytes: u64) {
        (**self).entry_size(stage, bytes);
    }
    fn seal(&self, key_id: u32) {
        (**self).seal(key_id);
    }
    fn l1_entries(&self, entries: u64) {
        (**self).l1_entries(entries);
    }
    fn l1_bytes(&self, bytes: u64) {
        (**self).l1_bytes(bytes);
    }
    fn invalidation(&self, keys: u64) {
        (**self).invalidation(keys);
    }
    fn singleflight_coalesced(&self) {
        (**self).singleflight_coalesced();
    }
    fn write_failure(&self, reason: WriteFailure) {
        (**self).write_failure(reason);
    }
    fn redis_available(&self, available: bool) {
        (**self).redis_available(available);
    }
    fn breaker_state(&self, state: BreakerState) {
        (**self).breaker_state(state);
    }
    fn security_event(&self, event: SecurityEvent) {
        (**self).security_event(event);
    }
}
