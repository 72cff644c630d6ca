//! OpenTelemetry instruments through the SDK's in-memory exporter: names, units, attributes and
//! values after a scripted sequence; and the Prometheus text rendering of the same instruments.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use sealcache_monitor::{
    BreakerState, CacheObserver, LookupResult, OperationKind, SecurityEvent, SecurityEventType,
    SizeStage, Telemetry, Tier, names,
};

/// (name → (unit, [(sorted attributes, value)])) for sums and gauges; histograms give their count.
type Seen = BTreeMap<String, (String, Vec<(Vec<(String, String)>, f64)>)>;

fn collect(exporter: &InMemoryMetricExporter) -> Seen {
    let mut seen = Seen::new();
    for rm in exporter.get_finished_metrics().unwrap() {
        for scope in rm.scope_metrics() {
            assert_eq!(scope.scope().name(), "sealcache");
            for m in scope.metrics() {
                let mut points = Vec::new();
                let mut push = |attrs: Vec<(String, String)>, v: f64| points.push((attrs, v));
                let attrs_of = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                    let mut a: Vec<(String, String)> = it
                        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                        .collect();
                    a.sort();
                    a
                };
                match m.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        for p in s.data_points() {
                            push(attrs_of(&mut p.attributes()), p.value() as f64);
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                        for p in g.data_points() {
                            push(attrs_of(&mut p.attributes()), p.value() as f64);
                        }
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            push(attrs_of(&mut p.attributes()), p.count() as f64);
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            push(attrs_of(&mut p.attributes()), p.sum() as f64);
                        }
                    }
                    other => panic!("unexpected data for {}: {other:?}", m.name()),
                }
                seen.insert(m.name().to_owned(), (m.unit().to_owned(), points));
            }
        }
    }
    seen
}

fn value(seen: &Seen, name: &str, attrs: &[(&str, &str)]) -> f64 {
    let (_, points) = seen
        .get(name)
        .unwrap_or_else(|| panic!("{name} not exported: {seen:#?}"));
    let mut want: Vec<(String, String)> = attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    points
        .iter()
        .find(|(a, _)| *a == want)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{name}{want:?} missing in {points:?}"))
}

fn script(o: &dyn CacheObserver) {
    for _ in 0..3 {
        o.lookup("summarize", Tier::L1, LookupResult::Hit);
    }
    o.lookup("summarize", Tier::Redis, LookupResult::Miss);
    o.lookup("qa", Tier::Redis, LookupResult::Error);
    o.operation(OperationKind::Get, Duration::from_micros(120));
    o.operation(OperationKind::Get, Duration::from_micros(80));
    o.lookup_duration(Tier::L1, Duration::from_nanos(600));
    o.redis_command("GET", Duration::from_micros(90), true);
    o.redis_command("SET", Duration::from_micros(90), false);
    o.entry_size(SizeStage::Plain, 4000);
    o.entry_size(SizeStage::Stored, 2100);
    o.seal(3);
    o.seal(3);
    o.security_event(SecurityEvent::new(SecurityEventType::DecryptFailed));
    o.security_event(SecurityEvent::new(SecurityEventType::ApiAuthFailed));
    o.security_event(SecurityEvent::new(SecurityEventType::ApiAuthFailed));
    o.singleflight_coalesced();
    o.l1_entries(42);
    o.redis_available(true);
    o.breaker_state(BreakerState::HalfOpen);
    o.invalidation(7);
}

#[test]
fn instruments_have_the_designed_names_units_attributes_and_values() {
    let exporter = InMemoryMetricExporter::default();
    let telemetry = Telemetry::builder("sealcache-test", "testing")
        .with_periodic_exporter(exporter.clone())
        .build();
    let observer = telemetry.observer();
    script(&observer);
    telemetry.force_flush().unwrap();
    let seen = collect(&exporter);

    let units: BTreeMap<&str, &str> = [
        (names::LOOKUPS, "{lookup}"),
        (names::OPERATION_DURATION, "s"),
        (names::DB_OPERATION_DURATION, "s"),
        (names::ENTRY_SIZE, "By"),
        (names::SEALS, "{seal}"),
        (names::SECURITY_EVENTS, "{event}"),
        (names::SINGLEFLIGHT_COALESCED, "{call}"),
        (names::L1_ENTRIES, "{entry}"),
        (names::REDIS_AVAILABLE, "{status}"),
        (names::BREAKER_STATE, "{state}"),
        (names::INVALIDATIONS, "{invalidation}"),
        (names::INVALIDATED_KEYS, "{key}"),
    ]
    .into();
    for (name, unit) in &units {
        assert_eq!(
            seen.get(*name).map(|(u, _)| u.as_str()),
            Some(*unit),
            "{name}"
        );
    }
    assert_eq!(
        value(
            &seen,
            names::LOOKUPS,
            &[
                ("result", "hit"),
                ("tier", "l1"),
                ("operation", "summarize")
            ]
        ),
        3.0
    );
    assert_eq!(
        value(
            &seen,
            names::LOOKUPS,
            &[
                ("result", "miss"),
                ("tier", "redis"),
                ("operation", "summarize")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &seen,
            names::LOOKUPS,
            &[("result", "error"), ("tier", "redis"), ("operation", "qa")]
        ),
        1.0
    );
    assert_eq!(
        value(&seen, names::OPERATION_DURATION, &[("operation", "get")]),
        2.0
    );
    assert_eq!(
        value(
            &seen,
            names::OPERATION_DURATION,
            &[("operation", "get"), ("tier", "l1")]
        ),
        1.0,
        "a get that ended in L1 carries its tier"
    );
    assert_eq!(
        value(
            &seen,
            names::DB_OPERATION_DURATION,
            &[("db.system.name", "redis"), ("db.operation.name", "GET")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &seen,
            names::DB_OPERATION_DURATION,
            &[
                ("db.system.name", "redis"),
                ("db.operation.name", "SET"),
                ("error.type", "redis_error")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(&seen, names::ENTRY_SIZE, &[("stage", "plain")]),
        4000.0
    );
    assert_eq!(value(&seen, names::SEALS, &[("key_id", "3")]), 2.0);
    assert_eq!(
        value(&seen, names::SECURITY_EVENTS, &[("type", "decrypt_failed")]),
        1.0
    );
    assert_eq!(
        value(
            &seen,
            names::SECURITY_EVENTS,
            &[("type", "api_auth_failed")]
        ),
        2.0
    );
    assert_eq!(value(&seen, names::L1_ENTRIES, &[]), 42.0);
    assert_eq!(value(&seen, names::BREAKER_STATE, &[]), 1.0);
    assert_eq!(value(&seen, names::INVALIDATED_KEYS, &[]), 7.0);
    telemetry.shutdown().unwrap();
}

#[test]
fn prometheus_text_renders_the_same_instruments() {
    let telemetry = Telemetry::builder("sealcache-test", "production")
        .with_prometheus()
        .unwrap()
        .build();
    let observer = telemetry.observer();
    script(&observer);
    let text = telemetry.render_prometheus().unwrap().unwrap();
    assert_eq!(
        sample(
            &text,
            "sealcache_lookups_total",
            &[
                ("operation", "summarize"),
                ("result", "hit"),
                ("tier", "l1")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "sealcache_security_events_total",
            &[("type", "api_auth_failed")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "sealcache_seals_total", &[("key_id", "3")]),
        Some(2.0)
    );
    assert_eq!(sample(&text, "sealcache_l1_entries", &[]), Some(42.0));
    assert!(
        text.contains("sealcache_operation_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("sealcache_entry_size_bytes"), "{text}");
    assert!(
        text.contains("db_client_operation_duration_seconds"),
        "{text}"
    );
    assert!(
        text.contains("deployment_environment_name=\"production\""),
        "no resource attributes in\n{text}"
    );
    let none = Telemetry::builder("x", "y").build();
    assert!(none.render_prometheus().unwrap().is_none());
}

/// The value of the first sample of `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let body = rest.strip_suffix('}')?;
            let have: Vec<(&str, &str)> = body
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once('=').map(|(k, v)| (k, v.trim_matches('"'))))
                .collect();
            labels
                .iter()
                .all(|l| have.contains(l))
                .then(|| value.parse().ok())
                .flatten()
        })
}
