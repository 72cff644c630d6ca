//! OpenTelemetry: the instruments of docs/architecture.md §7 and the exporter setup (feature
//! `otel`).

mod instruments;
mod observer;
mod pipeline;

pub use instruments::OtelObserver;
pub use pipeline::*;

/// The instrumentation scope name of every sealcache instrument.
pub const METER_NAME: &str = "sealcache";

/// Instrument names (OpenTelemetry style) with their units.
pub mod names {
    /// `db.client.operation.duration` (s): Redis commands, semantic-convention attributes.
    pub const DB_OPERATION_DURATION: &str = "db.client.operation.duration";
    /// `sealcache.lookups` ({lookup}): `result`, `tier`, `operation`.
    pub const LOOKUPS: &str = "sealcache.lookups";
    /// `sealcache.operation.duration` (s): `operation` = get|set|delete|invalidate|key_generation;
    /// `get` also carries `tier` = l1|redis (where the request ended).
    pub const OPERATION_DURATION: &str = "sealcache.operation.duration";
    /// `sealcache.entry.size` (By): `stage` = plain|compressed|stored.
    pub const ENTRY_SIZE: &str = "sealcache.entry.size";
    /// `sealcache.seals` ({seal}): `key_id`.
    pub const SEALS: &str = "sealcache.seals";
    /// `sealcache.security.events` ({event}): `type`.
    pub const SECURITY_EVENTS: &str = "sealcache.security.events";
    /// `sealcache.singleflight.coalesced` ({call}).
    pub const SINGLEFLIGHT_COALESCED: &str = "sealcache.singleflight.coalesced";
    /// `sealcache.write.failures` ({write}): `reason` = oom|readonly|noperm|refused|unavailable.
    pub const WRITE_FAILURES: &str = "sealcache.write.failures";
    /// `sealcache.l1.entries` ({entry}), a gauge.
    pub const L1_ENTRIES: &str = "sealcache.l1.entries";
    /// `sealcache.l1.size` (By), a gauge: what L1's entries cost the heap, as weighed against its
    /// byte bound.
    pub const L1_SIZE: &str = "sealcache.l1.size";
    /// `sealcache.redis.available` ({status}), a gauge: 1 up, 0 down. (Not unit `1`: the Prometheus
    /// exporter would append `_ratio`.)
    pub const REDIS_AVAILABLE: &str = "sealcache.redis.available";
    /// `sealcache.breaker.state` ({state}), a gauge: 0 closed, 1 half-open, 2 open.
    pub const BREAKER_STATE: &str = "sealcache.breaker.state";
    /// `sealcache.invalidations` ({invalidation}).
    pub const INVALIDATIONS: &str = "sealcache.invalidations";
    /// `sealcache.invalidated.keys` ({key}).
    pub const INVALIDATED_KEYS: &str = "sealcache.invalidated.keys";
    /// `sealcache.telemetry.dropped` ({item}): spans and log records lost (`signal` =
    /// spans|logs, `reason` = queue_full|export_failed).
    pub const TELEMETRY_DROPPED: &str = "sealcache.telemetry.dropped";
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use opentelemetry_sdk::metrics::InMemoryMetricExporter;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

    use super::*;
    use crate::event::{SecurityEvent, SecurityEventType};
    use crate::observer::CacheObserver as _;

    #[test]
    fn a_counted_event_adds_its_count_to_the_security_counter() {
        let exporter = InMemoryMetricExporter::default();
        let telemetry = Telemetry::builder("sealcache-test", "testing")
            .with_periodic_exporter(exporter.clone())
            .build();
        let observer = telemetry.observer();
        observer.security_event(SecurityEvent::new(SecurityEventType::AuthFailed).count(20_000));
        observer.security_event(SecurityEvent::new(SecurityEventType::AuthFailed));
        telemetry.force_flush().unwrap();
        let mut auth_failed = None;
        for rm in exporter.get_finished_metrics().unwrap() {
            for scope in rm.scope_metrics() {
                for m in scope
                    .metrics()
                    .filter(|m| m.name() == names::SECURITY_EVENTS)
                {
                    if let AggregatedMetrics::U64(MetricData::Sum(s)) = m.data() {
                        auth_failed = s
                            .data_points()
                            .find(|p| {
                                p.attributes()
                                    .any(|kv| kv.value.to_string() == "auth_failed")
                            })
                            .map(|p| p.value());
                    }
                }
            }
        }
        assert_eq!(auth_failed, Some(20_001));
    }
}
