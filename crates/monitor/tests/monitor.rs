//! The in-process monitor: hit rate, summaries, ring bounds, windows with an injectable clock,
//! thresholds once per window, and exact totals under concurrency.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sealcache_monitor::{
    AlertRule, BreakerState, CacheObserver, LookupResult, ManualClock, MonitorOptions,
    OperationKind, SecurityAwareCacheMonitor, SecurityEvent, SecurityEventType, Severity,
    SizeStage, Tier, default_rules,
};

fn clocked(
    capacity: usize,
    rules: Vec<AlertRule>,
) -> (SecurityAwareCacheMonitor, Arc<ManualClock>) {
    // Start on a minute boundary so window arithmetic in the test is exact.
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 / 3600 * 3600),
    ));
    let options = MonitorOptions {
        ring_capacity: capacity,
        rules,
        production_like: true,
    };
    (
        SecurityAwareCacheMonitor::with_options(options, clock.clone()),
        clock,
    )
}

#[test]
fn hit_rate_counts_lookups_only_and_summaries_serialize() {
    let m = SecurityAwareCacheMonitor::new();
    for _ in 0..6 {
        m.lookup("summarize", Tier::L1, LookupResult::Hit);
    }
    for _ in 0..2 {
        m.lookup("qa", Tier::Redis, LookupResult::Hit);
    }
    for _ in 0..2 {
        m.lookup("qa", Tier::Redis, LookupResult::Miss);
    }
    m.lookup("qa", Tier::Redis, LookupResult::Error);
    // Writes and deletes are not lookups: they must not dilute the hit rate (the template's bug).
    for _ in 0..50 {
        m.operation(OperationKind::Set, Duration::from_millis(1));
    }
    m.operation(OperationKind::Get, Duration::from_millis(3));
    m.entry_size(SizeStage::Plain, 1000);
    m.entry_size(SizeStage::Compressed, 500);
    m.entry_size(SizeStage::Stored, 535);
    m.seal(2);
    m.seal(2);
    m.l1_entries(17);
    m.invalidation(40);
    m.singleflight_coalesced();
    m.redis_available(false);
    m.breaker_state(BreakerState::Open);
    let p = m.performance_summary();
    assert!((p.hit_rate - 0.8).abs() < 1e-12, "{}", p.hit_rate);
    assert_eq!(
        (p.l1.hits, p.redis.hits, p.redis.misses, p.redis.errors),
        (6, 2, 2, 1)
    );
    assert!((p.by_operation["qa"].hit_rate - 0.5).abs() < 1e-12);
    assert_eq!(p.by_operation["summarize"].hits, 6);
    assert_eq!(p.durations["set"].count, 50);
    assert!((p.durations["get"].mean_ms - 3.0).abs() < 1e-9);
    assert!((p.sizes.compression_ratio - 0.535).abs() < 1e-9);
    assert_eq!(p.seals_by_key_id["2"], 2);
    assert_eq!(
        (
            p.l1_entries,
            p.invalidations,
            p.keys_removed,
            p.singleflight_coalesced
        ),
        (17, 1, 40, 1)
    );
    assert!(!p.redis_available);
    assert_eq!(p.breaker_state, BreakerState::Open);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["breaker_state"], "open");
    assert_eq!(json["l1"]["hits"], 6);
}

#[test]
fn operation_names_are_capped() {
    let m = SecurityAwareCacheMonitor::new();
    for i in 0..100 {
        m.lookup(&format!("op{i}"), Tier::Redis, LookupResult::Miss);
    }
    let p = m.performance_summary();
    assert_eq!(p.by_operation.len(), sealcache_monitor::MAX_OPERATIONS + 1);
    assert_eq!(
        p.by_operation["other"].misses,
        100 - sealcache_monitor::MAX_OPERATIONS as u64
    );
}

#[test]
fn ring_is_bounded_and_totals_are_not() {
    let (m, _) = clocked(10, vec![]);
    for i in 0..25 {
        m.security_event(
            SecurityEvent::new(SecurityEventType::BadEnvelope).detail(format!("n{i}")),
        );
    }
    let s = m.security_summary();
    assert_eq!(s.total_security_events, 25);
    assert_eq!(s.events_by_type["bad_envelope"], 25);
    assert_eq!(
        s.events_by_type["decrypt_failed"], 0,
        "every type is present"
    );
    assert_eq!(s.ring_capacity, 10);
    assert_eq!(s.recent_events.len(), 10);
    assert_eq!(s.recent_events[0].detail, "n24", "newest first");
    assert_eq!(s.last_security_event.as_ref().unwrap().detail, "n24");
}

#[test]
fn sliding_windows_follow_the_clock() {
    let (m, clock) = clocked(1000, vec![]);
    m.security_event(SecurityEvent::new(SecurityEventType::AuthFailed));
    clock.advance(Duration::from_secs(4 * 60));
    m.security_event(SecurityEvent::new(SecurityEventType::AuthFailed));
    m.security_event(SecurityEvent::new(SecurityEventType::TlsError));
    let s = m.security_summary();
    assert_eq!(s.last_5_minutes["auth_failed"], 2);
    assert_eq!(s.recent_auth_failures, 2);
    clock.advance(Duration::from_secs(2 * 60));
    let s = m.security_summary();
    assert_eq!(
        s.last_5_minutes["auth_failed"], 1,
        "the first fell out of the 5-minute window"
    );
    assert_eq!(s.last_hour["auth_failed"], 2);
    clock.advance(Duration::from_secs(60 * 60));
    let s = m.security_summary();
    assert!(s.last_hour.is_empty());
    assert_eq!(s.recent_auth_failures, 0);
    assert_eq!(
        s.events_by_type["auth_failed"], 2,
        "totals since start remain"
    );
}

#[test]
fn thresholds_fire_once_per_window() {
    let (m, clock) = clocked(1000, default_rules());
    // 5 auth failures a minute → one alert, not five; 12 more in the same minute → none.
    let mut alerts = 0;
    for _ in 0..17 {
        alerts += m
            .record_security_event(SecurityEvent::new(SecurityEventType::AuthFailed))
            .len();
    }
    assert_eq!(alerts, 1);
    // Next minute: counting starts again.
    clock.advance(Duration::from_secs(60));
    for _ in 0..4 {
        assert!(
            m.record_security_event(SecurityEvent::new(SecurityEventType::AuthFailed))
                .is_empty()
        );
    }
    assert_eq!(
        m.record_security_event(SecurityEvent::new(SecurityEventType::AuthFailed))
            .len(),
        1
    );
    // Any decrypt failure alerts, once per 5 minutes.
    assert_eq!(
        m.record_security_event(SecurityEvent::new(SecurityEventType::DecryptFailed))
            .len(),
        1
    );
    assert!(
        m.record_security_event(SecurityEvent::new(SecurityEventType::DecryptFailed))
            .is_empty()
    );
    // The override alerts in production only.
    assert_eq!(
        m.record_security_event(SecurityEvent::new(SecurityEventType::OverrideUsed))
            .len(),
        1
    );
    let options = MonitorOptions {
        production_like: false,
        ..MonitorOptions::default()
    };
    let dev = SecurityAwareCacheMonitor::with_options(
        options,
        Arc::new(ManualClock::new(SystemTime::now())),
    );
    assert!(
        dev.record_security_event(SecurityEvent::new(SecurityEventType::OverrideUsed))
            .is_empty()
    );
    assert_eq!(m.alerts().len(), 4);
    assert_eq!(m.security_summary().alerts_fired, 4);
}

#[test]
fn concurrent_recording_gives_exact_totals() {
    let m = Arc::new(SecurityAwareCacheMonitor::with_options(
        MonitorOptions {
            rules: vec![],
            ..MonitorOptions::default()
        },
        Arc::new(sealcache_monitor::SystemClock),
    ));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..100_000u32 {
                    let result = if i % 4 == 0 {
                        LookupResult::Miss
                    } else {
                        LookupResult::Hit
                    };
                    m.lookup(
                        if t % 2 == 0 { "qa" } else { "summarize" },
                        Tier::Redis,
                        result,
                    );
                    if i % 1000 == 0 {
                        m.security_event(SecurityEvent::new(SecurityEventType::DecryptFailed));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let p = m.performance_summary();
    assert_eq!(p.lookups.hits + p.lookups.misses, 800_000);
    assert_eq!(p.lookups.misses, 200_000);
    assert_eq!(
        p.by_operation["qa"].hits + p.by_operation["qa"].misses,
        400_000
    );
    assert_eq!(m.security_summary().events_by_type["decrypt_failed"], 800);
}

#[test]
fn details_are_cut_and_keys_are_tagged() {
    let long = "x".repeat(1000);
    let e = SecurityEvent::new(SecurityEventType::Oversize).detail(long);
    assert_eq!(e.detail.len(), sealcache_monitor::MAX_DETAIL_LEN);
    let tag = sealcache_monitor::key_tag(
        "ai_cache:v2:qa:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    );
    assert_eq!(tag, "9f86d081884c");
    assert_eq!(e.severity, Severity::Medium);
    assert_eq!(SecurityEventType::DecryptFailed.as_str(), "decrypt_failed");
    let names: std::collections::BTreeSet<&str> =
        SecurityEventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        names.len(),
        SecurityEventType::ALL.len(),
        "names are unique"
    );
}
