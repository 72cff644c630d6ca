//! [`OtelObserver`]'s instruments and their prepared attribute sets.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

use super::names;
use crate::event::SecurityEventType;
use crate::observer::{LookupResult, OperationKind, SizeStage, Tier, WriteFailure};
use crate::perf::MAX_OPERATIONS;

/// Latency buckets in seconds (50 µs to 10 s): cache latencies live far below the SDK's defaults.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
/// Size buckets in bytes (64 B to 16 MiB).
const SIZE_BUCKETS: &[f64] = &[
    64.0,
    256.0,
    1024.0,
    4096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

const TIERS: [Tier; 2] = [Tier::L1, Tier::Redis];
const RESULTS: [LookupResult; 3] = [LookupResult::Hit, LookupResult::Miss, LookupResult::Error];

fn lookup_attrs(operation: &str) -> [[[KeyValue; 3]; 3]; 2] {
    TIERS.map(|tier| {
        RESULTS.map(|result| {
            [
                KeyValue::new("result", result.as_str()),
                KeyValue::new("tier", tier.as_str()),
                KeyValue::new("operation", operation.to_owned()),
            ]
        })
    })
}

pub(super) struct OperationAttrs {
    name: Box<str>,
    attrs: [[[KeyValue; 3]; 3]; 2],
}

/// Records every [`CacheObserver`](crate::CacheObserver) call on OpenTelemetry instruments.
///
/// Attribute sets are built once (per operation name, on first sight), so the hit path borrows
/// prepared slices: no allocation, no lock of ours (the SDK's instruments are lock-free for
/// existing attribute sets).
pub struct OtelObserver {
    pub(super) db_duration: Histogram<f64>,
    pub(super) lookups: Counter<u64>,
    pub(super) op_duration: Histogram<f64>,
    pub(super) entry_size: Histogram<u64>,
    pub(super) seals: Counter<u64>,
    pub(super) security: Counter<u64>,
    pub(super) coalesced: Counter<u64>,
    pub(super) write_failures: Counter<u64>,
    pub(super) write_reasons: [[KeyValue; 1]; WriteFailure::ALL.len()],
    pub(super) l1_entries: Gauge<u64>,
    pub(super) l1_size: Gauge<u64>,
    pub(super) redis_available: Gauge<u64>,
    pub(super) breaker: Gauge<u64>,
    pub(super) invalidations: Counter<u64>,
    pub(super) invalidated_keys: Counter<u64>,
    pub(super) operations: [OnceLock<OperationAttrs>; MAX_OPERATIONS],
    pub(super) other: [[[KeyValue; 3]; 3]; 2],
    pub(super) op_kinds: [[KeyValue; 1]; 5],
    pub(super) get_tiers: [[KeyValue; 2]; 2],
    pub(super) stages: [[KeyValue; 1]; 3],
    pub(super) event_types: [[KeyValue; 1]; SecurityEventType::ALL.len()],
    pub(super) db_ok: Vec<(&'static str, [KeyValue; 2])>,
    /// Security events as OTLP log records, when log export is on.
    #[cfg(feature = "otlp")]
    pub(super) security_logs: Option<crate::export::SecurityLogger>,
}

impl std::fmt::Debug for OtelObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelObserver").finish_non_exhaustive()
    }
}

/// Redis commands whose attribute sets are prepared in advance.
const DB_COMMANDS: &[&str] = &[
    "GET", "SET", "DEL", "UNLINK", "PTTL", "SCAN", "PING", "ACL", "EVALSHA", "MGET",
];

impl OtelObserver {
    /// Creates the instruments on `meter` (use a meter named [`METER_NAME`](super::METER_NAME)).
    ///
    /// Every security event type starts at 0, so dashboards and alerts see "no events" as zero
    /// rather than as a missing series.
    #[must_use]
    pub fn new(meter: &Meter) -> Self {
        let observer = Self::instruments(meter);
        for attrs in &observer.event_types {
            observer.security.add(0, attrs);
        }
        for attrs in &observer.write_reasons {
            observer.write_failures.add(0, attrs);
        }
        observer
    }

    fn instruments(meter: &Meter) -> Self {
        Self {
            db_duration: meter
                .f64_histogram(names::DB_OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of Redis commands issued by the cache")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            lookups: meter
                .u64_counter(names::LOOKUPS)
                .with_unit("{lookup}")
                .with_description("Cache lookups by result, tier and operation")
                .build(),
            op_duration: meter
                .f64_histogram(names::OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of cache operations")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            entry_size: meter
                .u64_histogram(names::ENTRY_SIZE)
                .with_unit("By")
                .with_description("Size of cache entries by stage (plain, compressed, stored)")
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build(),
            seals: meter
                .u64_counter(names::SEALS)
                .with_unit("{seal}")
                .with_description("Values sealed, by encryption key id (nonce budget)")
                .build(),
            security: meter
                .u64_counter(names::SECURITY_EVENTS)
                .with_unit("{event}")
                .with_description("Security events by type")
                .build(),
            coalesced: meter
                .u64_counter(names::SINGLEFLIGHT_COALESCED)
                .with_unit("{call}")
                .with_description("Computations shared by concurrent callers")
                .build(),
            write_failures: meter
                .u64_counter(names::WRITE_FAILURES)
                .with_unit("{write}")
                .with_description("Writes that did not reach Redis (nothing cached), by reason")
                .build(),
            write_reasons: WriteFailure::ALL.map(|r| [KeyValue::new("reason", r.as_str())]),
            l1_entries: meter
                .u64_gauge(names::L1_ENTRIES)
                .with_unit("{entry}")
                .with_description("Entries in the in-process L1 tier")
                .build(),
            l1_size: meter
                .u64_gauge(names::L1_SIZE)
                .with_unit("By")
                .with_description(
                    "Bytes the in-process L1 tier holds, as weighed against its byte bound",
                )
                .build(),
            redis_available: meter
                .u64_gauge(names::REDIS_AVAILABLE)
                .with_unit("{status}")
                .with_description("1 when Redis is reachable, 0 when not")
                .build(),
            breaker: meter
                .u64_gauge(names::BREAKER_STATE)
                .with_unit("{state}")
                .with_description("Redis circuit breaker: 0 closed, 1 half-open, 2 open")
                .build(),
            invalidations: meter
                .u64_counter(names::INVALIDATIONS)
                .with_unit("{invalidation}")
                .with_description("Invalidation calls")
                .build(),
            invalidated_keys: meter
                .u64_counter(names::INVALIDATED_KEYS)
                .with_unit("{key}")
                .with_description("Keys removed by invalidations")
                .build(),
            operations: std::array::from_fn(|_| OnceLock::new()),
            other: lookup_attrs("other"),
            op_kinds: OperationKind::ALL.map(|k| [KeyValue::new("operation", k.as_str())]),
            get_tiers: TIERS.map(|t| {
                [
                    KeyValue::new("operation", "get"),
                    KeyValue::new("tier", t.as_str()),
                ]
            }),
            stages: [SizeStage::Plain, SizeStage::Compressed, SizeStage::Stored]
                .map(|s| [KeyValue::new("stage", s.as_str())]),
            event_types: SecurityEventType::ALL.map(|t| [KeyValue::new("type", t.as_str())]),
            db_ok: DB_COMMANDS
                .iter()
                .map(|c| {
                    (
                        *c,
                        [
                            KeyValue::new("db.system.name", "redis"),
                            KeyValue::new("db.operation.name", *c),
                        ],
                    )
                })
                .collect(),
            #[cfg(feature = "otlp")]
            security_logs: None,
        }
    }

    pub(super) fn operation_attrs(&self, operation: &str) -> &[[[KeyValue; 3]; 3]; 2] {
        for slot in &self.operations {
            match slot.get() {
                Some(entry) if &*entry.name == operation => return &entry.attrs,
                Some(_) => {}
                None => {
                    // First sighting: build this name's attribute sets once.
                    let entry = slot.get_or_init(|| OperationAttrs {
                        name: operation.into(),
                        attrs: lookup_attrs(operation),
                    });
                    if &*entry.name == operation {
                        return &entry.attrs;
                    }
                }
            }
        }
        &self.other
    }
}
