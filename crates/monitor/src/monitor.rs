//! `SecurityAwareCacheMonitor`: the performance monitor extended with security events.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::event::SecurityEvent;
use crate::observer::{
    BreakerState, CacheObserver, LookupResult, OperationKind, SizeStage, Tier, WriteFailure,
};
use crate::perf::{PerfCounters, PerformanceSummary};
use crate::security::{
    Alert, AlertRule, DEFAULT_RING_CAPACITY, SecurityLog, SecuritySummary, default_rules,
};

/// Events listed in `security_summary().recent_events`.
pub const RECENT_EVENTS: usize = 20;

/// Options for [`SecurityAwareCacheMonitor`].
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Ring capacity for recent events.
    pub ring_capacity: usize,
    /// Threshold rules.
    pub rules: Vec<AlertRule>,
    /// Whether the environment is production-like (rules marked `production_only`).
    pub production_like: bool,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        Self {
            ring_capacity: DEFAULT_RING_CAPACITY,
            rules: default_rules(),
            production_like: true,
        }
    }
}

/// Performance and security recording for one cache, cheap to share (`Arc`) and to call.
///
/// ```
/// use sealcache_monitor::{CacheObserver, LookupResult, SecurityAwareCacheMonitor, SecurityEvent, SecurityEventType, Tier};
///
/// let monitor = SecurityAwareCacheMonitor::new();
/// monitor.lookup("summarize", Tier::Redis, LookupResult::Hit);
/// monitor.lookup("summarize", Tier::Redis, LookupResult::Miss);
/// monitor.security_event(SecurityEvent::new(SecurityEventType::DecryptFailed).detail("key 3fa2c1"));
/// assert_eq!(monitor.performance_summary().hit_rate, 0.5);
/// let security = monitor.security_summary();
/// assert_eq!(security.total_security_events, 1);
/// assert_eq!(security.events_by_type["decrypt_failed"], 1);
/// ```
#[derive(Debug)]
pub struct SecurityAwareCacheMonitor {
    perf: PerfCounters,
    security: SecurityLog,
    clock: Arc<dyn Clock>,
}

impl Default for SecurityAwareCacheMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityAwareCacheMonitor {
    /// A monitor with the default options and the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_options(MonitorOptions::default(), Arc::new(SystemClock))
    }

    /// A monitor with `options` and `clock`.
    #[must_use]
    pub fn with_options(options: MonitorOptions, clock: Arc<dyn Clock>) -> Self {
        Self {
            perf: PerfCounters::default(),
            security: SecurityLog::new(
                options.ring_capacity,
                options.rules,
                options.production_like,
            ),
            clock,
        }
    }

    /// Performance figures.
    #[must_use]
    pub fn performance_summary(&self) -> PerformanceSummary {
        self.perf.summary()
    }

    /// Security figures (the seed's `recent_auth_failures`, `total_security_events`,
    /// `last_security_event`, plus per-type totals and windows).
    #[must_use]
    pub fn security_summary(&self) -> SecuritySummary {
        self.security.summary(self.clock.as_ref(), RECENT_EVENTS)
    }

    /// Alerts raised so far.
    #[must_use]
    pub fn alerts(&self) -> Vec<Alert> {
        self.security.alerts()
    }

    /// Records a security event and returns the alerts it raised. The event's timestamp is
    /// replaced by the monitor's clock.
    pub fn record_security_event(&self, event: SecurityEvent) -> Vec<Alert> {
        self.security.record(event.at(self.clock.now()))
    }
}

impl CacheObserver for SecurityAwareCacheMonitor {
    fn lookup(&self, operation: &str, tier: Tier, result: LookupResult) {
        self.perf.lookup(operation, tier, result);
    }
    fn operation(&self, kind: OperationKind, elapsed: Duration) {
        self.perf.operation(kind, elapsed);
    }
    fn redis_command(&self, _command: &'static str, _elapsed: Duration, ok: bool) {
        self.perf.redis_command(ok);
    }
    fn entry_size(&self, stage: SizeStage, bytes: u64) {
        self.perf.entry_size(stage, bytes);
    }
    fn seal(&self, key_id: u32) {
        self.perf.seal(key_id);
    }
    fn l1_entries(&self, entries: u64) {
        self.perf.l1_entries(entries);
    }
    fn l1_bytes(&self, bytes: u64) {
        self.perf.l1_bytes(bytes);
    }
    fn invalidation(&self, keys: u64) {
        self.perf.invalidation(keys);
    }
    fn singleflight_coalesced(&self) {
        self.perf.coalesced();
    }
    fn write_failure(&self, reason: WriteFailure) {
        self.perf.write_failure(reason);
    }
    fn redis_available(&self, available: bool) {
        self.perf.redis_available(available);
    }
    fn breaker_state(&self, state: BreakerState) {
        self.perf.breaker(state);
    }
    fn security_event(&self, event: SecurityEvent) {
        self.record_security_event(event);
    }
}
