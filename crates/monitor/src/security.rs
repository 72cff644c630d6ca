//! The security log: a bounded ring, per-type totals, sliding-window counts, and thresholds that
//! raise one `tracing` record per window.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::clock::Clock;
use crate::event::{SecurityEvent, SecurityEventType, Severity};

/// Default ring capacity.
pub const DEFAULT_RING_CAPACITY: usize = 1000;
/// The short window of the summary.
pub const SHORT_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The long window of the summary.
pub const LONG_WINDOW: Duration = Duration::from_secs(60 * 60);
const BUCKET: u64 = 60;
const BUCKETS: usize = 60;

/// A rule: `threshold` events of `kind` within one `window` raise one log record at `level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    /// The event type.
    pub kind: SecurityEventType,
    /// How many events in one window.
    pub threshold: u64,
    /// The (tumbling) window.
    pub window: Duration,
    /// `Severity::High` and above log at error, lower at warn.
    pub level: Severity,
    /// Only while the environment is production-like (`override_used` in production).
    pub production_only: bool,
}

/// The default rules: 5 auth failures a minute, any decrypt failure or unknown key id, any override
/// in production, 10 API auth failures a minute, 3 TLS errors a minute, 5 ACL denials a minute.
#[must_use]
pub fn default_rules() -> Vec<AlertRule> {
    let minute = Duration::from_secs(60);
    let rule = |kind, threshold, window, level, production_only| AlertRule {
        kind,
        threshold,
        window,
        level,
        production_only,
    };
    vec![
        rule(
            SecurityEventType::AuthFailed,
            5,
            minute,
            Severity::Medium,
            false,
        ),
        rule(
            SecurityEventType::DecryptFailed,
            1,
            SHORT_WINDOW,
            Severity::High,
            false,
        ),
        rule(
            SecurityEventType::UnknownKeyId,
            1,
            SHORT_WINDOW,
            Severity::High,
            false,
        ),
        rule(
            SecurityEventType::OverrideUsed,
            1,
            LONG_WINDOW,
            Severity::High,
            true,
        ),
        rule(
            SecurityEventType::ApiAuthFailed,
            10,
            minute,
            Severity::Medium,
            false,
        ),
        rule(
            SecurityEventType::TlsError,
            3,
            minute,
            Severity::High,
            false,
        ),
        rule(
            SecurityEventType::AclDenied,
            5,
            minute,
            Severity::Medium,
            false,
        ),
    ]
}

/// An alert that fired (also logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule's event type.
    pub kind: SecurityEventType,
    /// Events counted in the window when it fired.
    pub count: u64,
    /// Start of the window (seconds since the epoch).
    pub window_start: u64,
}

#[derive(Debug)]
struct Windows {
    /// Per type: (minute index, count) for the last hour.
    buckets: Vec<[(u64, u64); BUCKETS]>,
    /// Per rule: (window index, count in it, fired).
    rule_state: Vec<(u64, u64, bool)>,
}

#[derive(Debug)]
struct Inner {
    ring: VecDeque<SecurityEvent>,
    windows: Windows,
    alerts: Vec<Alert>,
}

/// Security events with totals, windows and thresholds.
#[derive(Debug)]
pub(crate) struct SecurityLog {
    capacity: usize,
    totals: [AtomicU64; SecurityEventType::ALL.len()],
    inner: Mutex<Inner>,
    rules: Vec<AlertRule>,
    production_like: bool,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SecurityLog {
    pub(crate) fn new(capacity: usize, rules: Vec<AlertRule>, production_like: bool) -> Self {
        let rule_count = rules.len();
        Self {
            capacity: capacity.max(1),
            totals: Default::default(),
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.clamp(1, 4096)),
                windows: Windows {
                    buckets: vec![[(u64::MAX, 0); BUCKETS]; SecurityEventType::ALL.len()],
                    rule_state: vec![(u64::MAX, 0, false); rule_count],
                },
                alerts: Vec::new(),
            }),
            rules,
            production_like,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `event` (its timestamp decides its window) and returns the alerts it raised. An
    /// event with a count adds the count to the totals, the window and the rules, and writes one
    /// log record.
    pub(crate) fn record(&self, event: SecurityEvent) -> Vec<Alert> {
        let kind = event.kind;
        let n = event.occurrences();
        self.totals[kind.index()].fetch_add(n, Relaxed);
        if event.log_record {
            emit(&event);
        }
        let at = secs(event.timestamp);
        let mut fired = Vec::new();
        let mut inner = self.lock();
        let minute = at / BUCKET;
        let slot = &mut inner.windows.buckets[kind.index()]
            [usize::try_from(minute % BUCKETS as u64).unwrap_or(0)];
        if slot.0 == minute {
            slot.1 = slot.1.saturating_add(n);
        } else {
            *slot = (minute, n);
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.kind != kind || (rule.production_only && !self.production_like) {
                continue;
            }
            let window = rule.window.as_secs().max(1);
            let index = at / window;
            let state = &mut inner.windows.rule_state[i];
            if state.0 != index {
                *state = (index, 0, false);
            }
            state.1 = state.1.saturating_add(n);
            if state.1 >= rule.threshold && !state.2 {
                state.2 = true;
                let alert = Alert {
                    kind,
                    count: state.1,
                    window_start: index * window,
                };
                log_alert(rule, &alert);
                fired.push(alert);
            }
        }
        inner.alerts.extend(fired.iter().cloned());
        if inner.ring.len() == self.capacity {
            inner.ring.pop_front();
        }
        inner.ring.push_back(event);
        fired
    }

    /// Events of each type within `window` before `now`.
    fn window_counts(inner: &Inner, now: SystemTime, window: Duration) -> BTreeMap<String, u64> {
        let now_minute = secs(now) / BUCKET;
        let minutes = (window.as_secs() / BUCKET).max(1);
        let oldest = now_minute.saturating_sub(minutes - 1);
        let mut out = BTreeMap::new();
        for kind in SecurityEventType::ALL {
            let n: u64 = inner.windows.buckets[kind.index()]
                .iter()
                .filter(|(m, _)| *m != u64::MAX && *m >= oldest && *m <= now_minute)
                .map(|(_, c)| c)
                .sum();
            if n > 0 {
                out.insert(kind.as_str().to_owned(), n);
            }
        }
        out
    }

    pub(crate) fn total(&self, kind: SecurityEventType) -> u64 {
        self.totals[kind.index()].load(Relaxed)
    }

    pub(crate) fn alerts(&self) -> Vec<Alert> {
        self.lock().alerts.clone()
    }

    pub(crate) fn summary(&self, clock: &dyn Clock, recent: usize) -> SecuritySummary {
        let now = clock.now();
        let inner = self.lock();
        let last_5_minutes = Self::window_counts(&inner, now, SHORT_WINDOW);
        let last_hour = Self::window_counts(&inner, now, LONG_WINDOW);
        let events_by_type: BTreeMap<String, u64> = SecurityEventType::ALL
            .into_iter()
            .map(|k| (k.as_str().to_owned(), self.total(k)))
            .collect();
        SecuritySummary {
            recent_auth_failures: last_hour.get("auth_failed").copied().unwrap_or(0)
                + last_hour.get("api_auth_failed").copied().unwrap_or(0),
            total_security_events: events_by_type.values().sum(),
            last_security_event: inner.ring.back().cloned(),
            events_by_type,
            last_5_minutes,
            last_hour,
            recent_events: inner.ring.iter().rev().take(recent).cloned().collect(),
            ring_capacity: self.capacity,
            alerts_fired: inner.alerts.len() as u64,
        }
    }
}

/// Every event is also one `tracing` record: type, count, severity, source, outcome, detail; never a
/// value.
fn emit(event: &SecurityEvent) {
    let (kind, source, outcome) = (
        event.kind.as_str(),
        format!("{:?}", event.source),
        format!("{:?}", event.outcome),
    );
    let detail = &*event.detail;
    let count = event.occurrences();
    if event.severity >= Severity::High {
        tracing::error!(target: "sealcache::security", event = "security_event", r#type = kind, count, severity = ?event.severity, source, outcome, detail);
    } else {
        tracing::warn!(target: "sealcache::security", event = "security_event", r#type = kind, count, severity = ?event.severity, source, outcome, detail);
    }
}

fn log_alert(rule: &AlertRule, alert: &Alert) {
    let kind = alert.kind.as_str();
    let window_secs = rule.window.as_secs();
    if rule.level >= Severity::High {
        tracing::error!(target: "sealcache::security", event = "security_alert", r#type = kind, count = alert.count, window_secs, "security threshold reached");
    } else {
        tracing::warn!(target: "sealcache::security", event = "security_alert", r#type = kind, count = alert.count, window_secs, "security threshold reached");
    }
}

/// `security_summary()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecuritySummary {
    /// Authentication failures (Redis and API) in the last hour.
    pub recent_auth_failures: u64,
    /// Events since start (an event with a count counts that many).
    pub total_security_events: u64,
    /// The latest event.
    pub last_security_event: Option<SecurityEvent>,
    /// Totals per type since start (every type present, zero included; counts included).
    pub events_by_type: BTreeMap<String, u64>,
    /// Per type in the last 5 minutes (types with events only).
    pub last_5_minutes: BTreeMap<String, u64>,
    /// Per type in the last hour.
    pub last_hour: BTreeMap<String, u64>,
    /// The latest events, newest first.
    pub recent_events: Vec<SecurityEvent>,
    /// Ring capacity.
    pub ring_capacity: usize,
    /// Threshold alerts raised since start.
    pub alerts_fired: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_counted_event_counts_in_totals_windows_and_thresholds_once_logged() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let log = SecurityLog::new(10, default_rules(), true);
        let event = SecurityEvent::new(SecurityEventType::AuthFailed)
            .count(20_000)
            .at(clock.now());
        let alerts = log.record(event);
        // One alert (threshold 5 a minute), with the whole count.
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 20_000);
        assert_eq!(log.total(SecurityEventType::AuthFailed), 20_000);
        let summary = log.summary(&clock, 20);
        assert_eq!(summary.total_security_events, 20_000);
        assert_eq!(summary.last_5_minutes["auth_failed"], 20_000);
        assert_eq!(summary.recent_auth_failures, 20_000);
        // One event in the ring, carrying the count.
        assert_eq!(summary.recent_events.len(), 1);
        assert_eq!(summary.recent_events[0].count, 20_000);
        // A zero count is one occurrence.
        let mut zero = SecurityEvent::new(SecurityEventType::AuthFailed).at(clock.now());
        zero.count = 0;
        assert!(
            log.record(zero).is_empty(),
            "the window's alert fired already"
        );
        assert_eq!(log.total(SecurityEventType::AuthFailed), 20_001);
    }
}
