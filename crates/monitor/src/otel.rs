//! OpenTelemetry: the instruments of docs/architecture.md §7 and the exporter setup (feature
//! `otel`).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::event::{SecurityEvent, SecurityEventType};
use crate::observer::{
    BreakerState, CacheObserver, LookupResult, OperationKind, SizeStage, Tier, WriteFailure,
};
use crate::perf::MAX_OPERATIONS;

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

struct OperationAttrs {
    name: Box<str>,
    attrs: [[[KeyValue; 3]; 3]; 2],
}

/// Records every [`CacheObserver`] call on OpenTelemetry instruments.
///
/// Attribute sets are built once (per operation name, on first sight), so the hit path borrows
/// prepared slices: no allocation, no lock of ours (the SDK's instruments are lock-free for
/// existing attribute sets).
pub struct OtelObserver {
    db_duration: Histogram<f64>,
    lookups: Counter<u64>,
    op_duration: Histogram<f64>,
    entry_size: Histogram<u64>,
    seals: Counter<u64>,
    security: Counter<u64>,
    coalesced: Counter<u64>,
    write_failures: Counter<u64>,
    write_reasons: [[KeyValue; 1]; WriteFailure::ALL.len()],
    l1_entries: Gauge<u64>,
    redis_available: Gauge<u64>,
    breaker: Gauge<u64>,
    invalidations: Counter<u64>,
    invalidated_keys: Counter<u64>,
    operations: [OnceLock<OperationAttrs>; MAX_OPERATIONS],
    other: [[[KeyValue; 3]; 3]; 2],
    op_kinds: [[KeyValue; 1]; 5],
    get_tiers: [[KeyValue; 2]; 2],
    stages: [[KeyValue; 1]; 3],
    event_types: [[KeyValue; 1]; SecurityEventType::ALL.len()],
    db_ok: Vec<(&'static str, [KeyValue; 2])>,
    /// Security events as OTLP log records, when log export is on.
    #[cfg(feature = "otlp")]
    security_logs: Option<crate::export::SecurityLogger>,
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
    /// Creates the instruments on `meter` (use a meter named [`METER_NAME`]).
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

    fn operation_attrs(&self, operation: &str) -> &[[[KeyValue; 3]; 3]; 2] {
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

fn tier_index(t: Tier) -> usize {
    usize::from(t == Tier::Redis)
}

fn result_index(r: LookupResult) -> usize {
    match r {
        LookupResult::Hit => 0,
        LookupResult::Miss => 1,
        LookupResult::Error => 2,
    }
}

impl CacheObserver for OtelObserver {
    fn lookup(&self, operation: &str, tier: Tier, result: LookupResult) {
        let attrs = &self.operation_attrs(operation)[tier_index(tier)][result_index(result)];
        self.lookups.add(1, attrs);
    }

    fn operation(&self, kind: OperationKind, elapsed: Duration) {
        self.op_duration
            .record(elapsed.as_secs_f64(), &self.op_kinds[kind as usize]);
    }

    fn lookup_duration(&self, tier: Tier, elapsed: Duration) {
        self.op_duration
            .record(elapsed.as_secs_f64(), &self.get_tiers[tier_index(tier)]);
    }

    fn redis_command(&self, command: &'static str, elapsed: Duration, ok: bool) {
        let prepared = self.db_ok.iter().find(|(c, _)| *c == command);
        match (prepared, ok) {
            (Some((_, attrs)), true) => self.db_duration.record(elapsed.as_secs_f64(), attrs),
            _ => {
                let mut attrs = vec![
                    KeyValue::new("db.system.name", "redis"),
                    KeyValue::new("db.operation.name", command),
                ];
                if !ok {
                    attrs.push(KeyValue::new("error.type", "redis_error"));
                }
                self.db_duration.record(elapsed.as_secs_f64(), &attrs);
            }
        }
    }

    fn entry_size(&self, stage: SizeStage, bytes: u64) {
        let i = match stage {
            SizeStage::Plain => 0,
            SizeStage::Compressed => 1,
            SizeStage::Stored => 2,
        };
        self.entry_size.record(bytes, &self.stages[i]);
    }

    fn seal(&self, key_id: u32) {
        self.seals
            .add(1, &[KeyValue::new("key_id", i64::from(key_id))]);
    }

    fn l1_entries(&self, entries: u64) {
        self.l1_entries.record(entries, &[]);
    }

    fn invalidation(&self, keys: u64) {
        self.invalidations.add(1, &[]);
        self.invalidated_keys.add(keys, &[]);
    }

    fn singleflight_coalesced(&self) {
        self.coalesced.add(1, &[]);
    }

    fn write_failure(&self, reason: WriteFailure) {
        self.write_failures
            .add(1, &self.write_reasons[reason.index()]);
    }

    fn redis_available(&self, available: bool) {
        self.redis_available.record(u64::from(available), &[]);
    }

    fn breaker_state(&self, state: BreakerState) {
        self.breaker.record(state.as_gauge(), &[]);
    }

    fn security_event(&self, event: SecurityEvent) {
        self.security
            .add(event.occurrences(), &self.event_types[event.kind.index()]);
        #[cfg(feature = "otlp")]
        if let Some(logs) = &self.security_logs {
            logs.emit(&event);
        }
    }
}

/// Errors setting telemetry up.
#[derive(Debug)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    Otlp(String),
    /// The Prometheus exporter could not be built or rendered.
    Prometheus(String),
    /// Flushing or shutting down the provider failed.
    Sdk(String),
}

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TelemetryError::Otlp(e) => write!(f, "OTLP exporter: {e}"),
            TelemetryError::Prometheus(e) => write!(f, "Prometheus exporter: {e}"),
            TelemetryError::Sdk(e) => write!(f, "OpenTelemetry SDK: {e}"),
        }
    }
}

impl std::error::Error for TelemetryError {}

/// Builds a [`Telemetry`]: a meter provider with the resource attributes `service.name` and
/// `deployment.environment.name`, and the exporters asked for (metrics, and with the `otlp`
/// feature traces and security log records). With none, instruments still work and export nothing.
#[derive(Debug)]
pub struct TelemetryBuilder {
    inner: opentelemetry_sdk::metrics::MeterProviderBuilder,
    #[cfg(feature = "otlp")]
    resource: Resource,
    #[cfg(feature = "otlp")]
    traces: Option<(
        opentelemetry_sdk::trace::SdkTracerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    logs: Option<(
        opentelemetry_sdk::logs::SdkLoggerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    head_sampler: Option<crate::export::HeadSampler>,
    #[cfg(feature = "prometheus")]
    registry: Option<prometheus::Registry>,
}

/// True when `vars` sets any of `names` to something not blank.
#[cfg(feature = "otlp")]
fn any_set(vars: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> bool {
    names
        .iter()
        .any(|v| vars(v).is_some_and(|s| !s.trim().is_empty()))
}

impl TelemetryBuilder {
    /// Adds a Prometheus registry, rendered by [`Telemetry::render_prometheus`] (for `/metrics`).
    ///
    /// # Errors
    /// [`TelemetryError::Prometheus`] if the exporter cannot be built.
    #[cfg(feature = "prometheus")]
    pub fn with_prometheus(mut self) -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
        self.inner = self.inner.with_reader(exporter);
        self.registry = Some(registry);
        Ok(self)
    }

    /// Adds OTLP/HTTP (protobuf) metric export. The standard `OTEL_EXPORTER_OTLP_*` variables
    /// (endpoint, headers, timeout) and `OTEL_METRIC_EXPORT_INTERVAL` apply.
    ///
    /// # Errors
    /// [`TelemetryError::Otlp`] if the exporter cannot be built.
    #[cfg(feature = "otlp")]
    pub fn with_otlp(mut self) -> Result<Self, TelemetryError> {
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        self.inner = self.inner.with_periodic_exporter(exporter);
        Ok(self)
    }

    /// Adds OTLP/HTTP trace export: a batch span processor on its own thread behind a bounded
    /// queue (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048; `OTEL_BSP_SCHEDULE_DELAY`) that drops and
    /// counts (`sealcache.telemetry.dropped{signal="spans"}`) rather than block or grow. Sampling
    /// (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, default `parentbased_always_on`) is
    /// decided at the root by [`Telemetry::head_sampler`]; the SDK keeps what reaches it. Spans
    /// reach it through [`Telemetry::tracing_layer`].
    ///
    /// # Errors
    /// [`TelemetryError::Otlp`] if the exporter cannot be built.
    #[cfg(feature = "otlp")]
    pub fn with_otlp_traces(
        mut self,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        use crate::export::{GatedSpanProcessor, QueueGate, ReleasingSpanExporter};
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        let queue = crate::export::queue_size(vars, "OTEL_BSP_MAX_QUEUE_SIZE");
        let gate = std::sync::Arc::new(QueueGate::new(queue));
        let head = crate::export::HeadSampler::from_vars(vars);
        let batch = BatchSpanProcessor::builder(ReleasingSpanExporter {
            inner: exporter,
            gate: gate.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(queue)
                .build(),
        )
        .build();
        let provider = SdkTracerProvider::builder()
            .with_resource(self.resource.clone())
            .with_sampler(head.sdk_sampler())
            .with_id_generator(head.id_generator())
            .with_span_processor(GatedSpanProcessor {
                inner: batch,
                gate: gate.clone(),
            })
            .build();
        self.traces = Some((provider, gate));
        self.head_sampler = Some(head);
        Ok(self)
    }

    /// Adds OTLP/HTTP log-record export of security events (`event.name` =
    /// `sealcache.security.<type>`), behind a bounded queue (`OTEL_BLRP_MAX_QUEUE_SIZE`, default
    /// 2048) that drops and counts (`sealcache.telemetry.dropped{signal="logs"}`).
    ///
    /// # Errors
    /// [`TelemetryError::Otlp`] if the exporter cannot be built.
    #[cfg(feature = "otlp")]
    pub fn with_otlp_logs(
        mut self,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        use crate::export::{GatedLogProcessor, QueueGate, ReleasingLogExporter};
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        let queue = crate::export::queue_size(vars, "OTEL_BLRP_MAX_QUEUE_SIZE");
        let gate = std::sync::Arc::new(QueueGate::new(queue));
        let batch = BatchLogProcessor::builder(ReleasingLogExporter {
            inner: exporter,
            gate: gate.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(queue)
                .build(),
        )
        .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(self.resource.clone())
            .with_log_processor(GatedLogProcessor {
                inner: batch,
                gate: gate.clone(),
            })
            .build();
        self.logs = Some((provider, gate));
        Ok(self)
    }

    /// OTLP export of each signal whose endpoint `vars` sets: metrics for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, traces for it or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, security log records for it or
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`; nothing otherwise (no push).
    ///
    /// # Errors
    /// As [`TelemetryBuilder::with_otlp`].
    #[cfg(feature = "otlp")]
    pub fn with_otlp_if_configured(
        self,
        vars: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        const ALL: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let mut this = self;
        if any_set(&vars, &[ALL, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]) {
            this = this.with_otlp()?;
        }
        if any_set(&vars, &[ALL, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
            this = this.with_otlp_traces(&vars)?;
        }
        if any_set(&vars, &[ALL, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"]) {
            this = this.with_otlp_logs(&vars)?;
        }
        Ok(this)
    }

    /// Adds any push exporter behind a periodic reader (tests use the SDK's in-memory exporter;
    /// [`Telemetry::force_flush`] exports at once).
    #[must_use]
    pub fn with_periodic_exporter<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>(
        mut self,
        exporter: E,
    ) -> Self {
        self.inner = self.inner.with_periodic_exporter(exporter);
        self
    }

    /// Builds it.
    #[must_use]
    pub fn build(self) -> Telemetry {
        let provider = self.inner.build();
        #[cfg(feature = "otlp")]
        {
            let gates: Vec<(&'static str, std::sync::Arc<crate::export::QueueGate>)> = self
                .traces
                .iter()
                .map(|(_, g)| ("spans", g.clone()))
                .chain(self.logs.iter().map(|(_, g)| ("logs", g.clone())))
                .collect();
            if !gates.is_empty() {
                let _dropped = provider
                    .meter(METER_NAME)
                    .u64_observable_counter(names::TELEMETRY_DROPPED)
                    .with_unit("{item}")
                    .with_description(
                        "Spans and log records lost: export queue full, or export failed",
                    )
                    .with_callback(move |observer| {
                        for (signal, gate) in &gates {
                            for (reason, n) in [
                                ("queue_full", gate.dropped()),
                                ("export_failed", gate.failed()),
                            ] {
                                observer.observe(
                                    n,
                                    &[
                                        KeyValue::new("signal", *signal),
                                        KeyValue::new("reason", reason),
                                    ],
                                );
                            }
                        }
                    })
                    .build();
            }
        }
        Telemetry {
            provider,
            #[cfg(feature = "otlp")]
            traces: self.traces,
            #[cfg(feature = "otlp")]
            logs: self.logs,
            #[cfg(feature = "otlp")]
            head_sampler: self.head_sampler,
            #[cfg(feature = "prometheus")]
            registry: self.registry,
        }
    }
}

/// The meter provider and its exporters (and, with the `otlp` feature, the tracer and logger
/// providers).
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkMeterProvider,
    #[cfg(feature = "otlp")]
    traces: Option<(
        opentelemetry_sdk::trace::SdkTracerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    logs: Option<(
        opentelemetry_sdk::logs::SdkLoggerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    head_sampler: Option<crate::export::HeadSampler>,
    #[cfg(feature = "prometheus")]
    registry: Option<prometheus::Registry>,
}

impl Telemetry {
    /// A builder for `service_name` in `environment` (`deployment.environment.name`).
    #[must_use]
    pub fn builder(service_name: &str, environment: &str) -> TelemetryBuilder {
        let resource = Resource::builder()
            .with_service_name(service_name.to_owned())
            .with_attribute(KeyValue::new(
                "deployment.environment.name",
                environment.to_owned(),
            ))
            .build();
        TelemetryBuilder {
            inner: SdkMeterProvider::builder().with_resource(resource.clone()),
            #[cfg(feature = "otlp")]
            resource,
            #[cfg(feature = "otlp")]
            traces: None,
            #[cfg(feature = "otlp")]
            logs: None,
            #[cfg(feature = "otlp")]
            head_sampler: None,
            #[cfg(feature = "prometheus")]
            registry: None,
        }
    }

    /// The sealcache meter.
    #[must_use]
    pub fn meter(&self) -> Meter {
        self.provider.meter(METER_NAME)
    }

    /// An observer recording on this provider (and emitting security log records when log export
    /// is on).
    #[must_use]
    pub fn observer(&self) -> OtelObserver {
        #[allow(unused_mut)]
        let mut observer = OtelObserver::new(&self.meter());
        #[cfg(feature = "otlp")]
        {
            use opentelemetry::logs::LoggerProvider as _;
            observer.security_logs =
                self.logs
                    .as_ref()
                    .map(|(provider, _)| crate::export::SecurityLogger {
                        logger: provider.logger(METER_NAME),
                    });
        }
        observer
    }

    /// The provider (for other instruments).
    #[must_use]
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// True when traces are exported (an OTLP traces endpoint was configured).
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn traces_enabled(&self) -> bool {
        self.traces.is_some()
    }

    /// The head-sampling decision for requests when traces are exported (`None` otherwise): the
    /// creator of a trace's root span asks it before creating any span.
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn head_sampler(&self) -> Option<crate::export::HeadSampler> {
        self.head_sampler
    }

    /// Spans and log records lost since start (export queue full, or export failed).
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn dropped(&self) -> (u64, u64) {
        let lost = |g: &crate::export::QueueGate| g.dropped() + g.failed();
        (
            self.traces.as_ref().map_or(0, |(_, g)| lost(g)),
            self.logs.as_ref().map_or(0, |(_, g)| lost(g)),
        )
    }

    /// The `tracing` layer that exports spans (the server's request spans and the cache's and
    /// Redis commands' child spans), or `None` when traces are not exported. Install it before
    /// any span is created, and not inside a `reload` layer (it would lose the parent context).
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn tracing_layer<S>(
        &self,
    ) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        self.traces
            .as_ref()
            .map(|(provider, _)| tracing_layer(provider))
    }

    /// The Prometheus text exposition of every instrument, or `None` without a registry.
    ///
    /// # Errors
    /// [`TelemetryError::Prometheus`] if encoding fails.
    #[cfg(feature = "prometheus")]
    pub fn render_prometheus(&self) -> Result<Option<String>, TelemetryError> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .map(Some)
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))
    }

    /// Exports everything pending now (metrics, spans, log records).
    ///
    /// # Errors
    /// [`TelemetryError::Sdk`].
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otlp")]
        {
            if let Some((p, _)) = &self.traces {
                p.force_flush()
                    .map_err(|e| TelemetryError::Sdk(e.to_string()))?;
            }
            if let Some((p, _)) = &self.logs {
                p.force_flush()
                    .map_err(|e| TelemetryError::Sdk(e.to_string()))?;
            }
        }
        self.provider
            .force_flush()
            .map_err(|e| TelemetryError::Sdk(e.to_string()))
    }

    /// Flushes and stops the exporters.
    ///
    /// # Errors
    /// [`TelemetryError::Sdk`].
    pub fn shutdown(&self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otlp")]
        {
            if let Some((p, _)) = &self.traces {
                let _ = p.shutdown();
            }
            if let Some((p, _)) = &self.logs {
                let _ = p.shutdown();
            }
        }
        self.provider
            .shutdown()
            .map_err(|e| TelemetryError::Sdk(e.to_string()))
    }
}

/// A `tracing` layer that turns spans into OpenTelemetry spans on `provider`.
#[cfg(feature = "tracing-layer")]
#[must_use]
pub fn tracing_layer<S>(
    provider: &opentelemetry_sdk::trace::SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(METER_NAME))
        // Only what the semantic conventions ask for: no thread, code location or busy/idle
        // attributes, and a security event logged at error level does not mark the request
        // span failed (its status follows the response).
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_error_events_to_status(false)
        .with_error_events_to_exceptions(false)
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use opentelemetry_sdk::metrics::InMemoryMetricExporter;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

    use super::*;

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
