//! Trace and log-record export over OTLP/HTTP that never blocks a request and counts what it drops
//! (feature `otlp`).
//!
//! The SDK's batch processors run on their own threads and hand spans and records over a bounded
//! channel with `try_send`, so a request never waits for the collector. What they drop when the
//! channel is full they only count privately. [`QueueGate`] makes the drops ours: at most
//! `capacity` spans (or records) are "in flight" from the moment they end until their export
//! returns, which is never fewer than sit in the SDK's channel of the same capacity, so the SDK
//! never sees a full channel; every item beyond that is dropped here, with one atomic operation,
//! and counted in `sealcache.telemetry.dropped{signal, reason="queue_full"}`. Items whose export
//! failed (collector down, refusing, timing out) are counted with `reason="export_failed"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity as OtelSeverity};
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchLogProcessor, LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLogger,
};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, Span, SpanData, SpanExporter, SpanProcessor,
};

use crate::event::{SecurityEvent, Severity};
pub use crate::sampling::{RatioTraceIds, RemoteParent};

/// Default capacity of each export queue (spans, log records).
pub const DEFAULT_QUEUE_SIZE: usize = 2048;

/// A bound on the items waiting for export, shared by a processor and its exporter.
#[derive(Debug)]
pub struct QueueGate {
    in_flight: AtomicUsize,
    capacity: usize,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl QueueGate {
    /// A gate letting at most `capacity` items wait (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn try_acquire(&self) -> bool {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    fn release(&self, n: usize) {
        // Never below zero, whatever an exporter reports.
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_sub(n))
            });
    }

    /// Items dropped since start because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Items lost since start because their export failed (collector refused, down, timed out).
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn export_failed(&self, n: usize) {
        self.failed
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// A span processor that admits a span to the batch processor only through the gate.
#[derive(Debug)]
pub(crate) struct GatedSpanProcessor {
    pub(crate) inner: BatchSpanProcessor,
    pub(crate) gate: Arc<QueueGate>,
}

impl SpanProcessor for GatedSpanProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.gate.try_acquire() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    // Must be forwarded: without it exported spans lose `service.name`.
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A span exporter that releases the gate when an export returns (exported or failed).
#[derive(Debug)]
pub(crate) struct ReleasingSpanExporter<E> {
    pub(crate) inner: E,
    pub(crate) gate: Arc<QueueGate>,
}

impl<E: SpanExporter> SpanExporter for ReleasingSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.gate.release(n);
        if result.is_err() {
            self.gate.export_failed(n);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A log processor that admits a record to the batch processor only through the gate.
#[derive(Debug)]
pub(crate) struct GatedLogProcessor {
    pub(crate) inner: BatchLogProcessor,
    pub(crate) gate: Arc<QueueGate>,
}

impl LogProcessor for GatedLogProcessor {
    fn emit(&self, data: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if self.gate.try_acquire() {
            self.inner.emit(data, scope);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A log exporter that releases the gate when an export returns.
#[derive(Debug)]
pub(crate) struct ReleasingLogExporter<E> {
    pub(crate) inner: E,
    pub(crate) gate: Arc<QueueGate>,
}

impl<E: LogExporter> LogExporter for ReleasingLogExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count();
        let result = self.inner.export(batch).await;
        self.gate.release(n);
        if result.is_err() {
            self.gate.export_failed(n);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Head sampling: the decision the standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`
/// variables ask for, made once where a trace's root span would be created (the server's request
/// span), **before** any span exists.
///
/// Deciding there, rather than in the SDK's sampler when each span starts, is what keeps tracing
/// cheap: an unsampled request creates no span at all (its cache and Redis spans neither), where
/// an SDK sampler would still have every span built and then dropped. The SDK then gets a sampler
/// that keeps what reaches it ([`HeadSampler::sdk_sampler`]).
///
/// Names: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (the default),
/// `parentbased_always_off`, `parentbased_traceidratio`; a missing or invalid ratio is 1.
/// Parent-based samplers follow the caller's `traceparent` sampled flag when there is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadSampler {
    parent_based: bool,
    ratio: f64,
}

impl HeadSampler {
    /// The sampler `vars` name.
    #[must_use]
    pub fn from_vars(vars: &dyn Fn(&str) -> Option<String>) -> Self {
        let ratio = vars("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0);
        let (parent_based, ratio) = match vars("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            Some("always_on") => (false, 1.0),
            Some("always_off") => (false, 0.0),
            Some("traceidratio") => (false, ratio),
            Some("parentbased_always_off") => (true, 0.0),
            Some("parentbased_traceidratio") => (true, ratio),
            _ => (true, 1.0),
        };
        Self {
            parent_based,
            ratio,
        }
    }

    /// Whether to trace a request. `parent`: the caller's valid `traceparent`, `None` without
    /// one.
    ///
    /// Parent-based samplers follow the parent's sampled flag. A ratio decides from the trace id,
    /// as OpenTelemetry's `TraceIdRatioBased` does (see [`crate::export::RatioTraceIds`]): the
    /// parent's, or for a root request a trace id drawn for it, whose decision the id the SDK
    /// then gives the trace ([`HeadSampler::id_generator`]) carries. Every service of a trace
    /// that samples by ratio therefore agrees.
    #[must_use]
    pub fn sample_trace(&self, parent: Option<RemoteParent>) -> bool {
        if self.parent_based
            && let Some(parent) = parent
        {
            return parent.sampled;
        }
        if self.ratio >= 1.0 {
            return true;
        }
        if self.ratio <= 0.0 {
            return false;
        }
        let trace_id = parent.map_or_else(crate::sampling::random_trace_id, |p| p.trace_id);
        crate::sampling::keeps(self.ratio, trace_id)
    }

    /// [`HeadSampler::sample_trace`] knowing only the parent's sampled flag: without its trace id,
    /// a ratio decides as for a root request.
    #[must_use]
    pub fn sample(&self, remote_sampled: Option<bool>) -> bool {
        if self.parent_based
            && let Some(sampled) = remote_sampled
        {
            return sampled;
        }
        self.sample_trace(None)
    }

    /// The SDK's id generator under this sampler: root trace ids that the ratio keeps
    /// ([`RatioTraceIds`]).
    #[must_use]
    pub fn id_generator(&self) -> RatioTraceIds {
        RatioTraceIds::new(self.ratio)
    }

    /// The SDK sampler behind head sampling: keep every span that reaches it (a parent-based one
    /// still honours a remote parent's flag).
    #[must_use]
    pub fn sdk_sampler(&self) -> Sampler {
        if self.parent_based {
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
        } else {
            Sampler::AlwaysOn
        }
    }

    /// The ratio of traced root requests.
    #[must_use]
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
}

/// The queue size `var` names (`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_QUEUE_SIZE`), else the
/// default.
pub(crate) fn queue_size(vars: &dyn Fn(&str) -> Option<String>, var: &str) -> usize {
    vars(var)
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_QUEUE_SIZE)
}

fn otel_severity(severity: Severity) -> OtelSeverity {
    match severity {
        Severity::Low => OtelSeverity::Info,
        Severity::Medium => OtelSeverity::Warn,
        Severity::High => OtelSeverity::Error,
        Severity::Critical => OtelSeverity::Fatal,
    }
}

/// Emits security events as OpenTelemetry log records: `event.name` =
/// `sealcache.security.<type>`, the severity, the detail as body (never a value, key or secret),
/// the type, count, source and outcome as attributes, and the trace context of the request span
/// that caused it when there is one.
#[derive(Debug, Clone)]
pub(crate) struct SecurityLogger {
    pub(crate) logger: SdkLogger,
}

impl SecurityLogger {
    pub(crate) fn emit(&self, event: &SecurityEvent) {
        let severity = otel_severity(event.severity);
        let mut record = self.logger.create_log_record();
        let name = event.kind.event_name();
        record.set_event_name(name);
        record.add_attribute("event.name", name);
        record.set_timestamp(event.timestamp);
        record.set_observed_timestamp(std::time::SystemTime::now());
        record.set_severity_number(severity);
        record.set_severity_text(severity.name());
        record.set_body(AnyValue::from(event.detail.clone()));
        record.add_attribute("sealcache.security.type", event.kind.as_str());
        record.add_attribute(
            "sealcache.security.count",
            i64::try_from(event.occurrences()).unwrap_or(i64::MAX),
        );
        record.add_attribute("sealcache.security.source", event.source.as_str());
        record.add_attribute("sealcache.security.outcome", event.outcome.as_str());
        {
            use opentelemetry::trace::TraceContextExt as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            let cx = tracing::Span::current().context();
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
            }
        }
        self.logger.emit(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_admits_up_to_capacity_and_counts_the_rest() {
        let gate = QueueGate::new(2);
        assert!(gate.try_acquire());
        assert!(gate.try_acquire());
        assert!(!gate.try_acquire());
        assert_eq!(gate.dropped(), 1);
        gate.release(2);
        assert!(gate.try_acquire());
        gate.release(10);
        assert!(gate.try_acquire() && gate.try_acquire());
        assert_eq!(gate.dropped(), 1);
    }

    #[test]
    fn head_sampling_follows_the_standard_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let tenth = HeadSampler::from_vars(&vars(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ]));
        // The caller's flag decides when there is one.
        assert!(tenth.sample(Some(true)));
        assert!(!tenth.sample(Some(false)));
        let kept = (0..20_000).filter(|_| tenth.sample(None)).count();
        assert!((1_600..2_400).contains(&kept), "{kept} of 20000 at 0.1");
        assert_eq!(
            format!("{:?}", tenth.sdk_sampler()),
            format!("{:?}", Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        );
        let off = HeadSampler::from_vars(&vars(&[("OTEL_TRACES_SAMPLER", "always_off")]));
        assert!(!off.sample(Some(true)) && !off.sample(None));
        let ratio = HeadSampler::from_vars(&vars(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "7"),
        ]));
        assert_eq!(ratio.ratio(), 1.0, "an invalid ratio is 1");
        assert!(
            ratio.sample(Some(false)),
            "not parent-based: the flag is ignored"
        );
        let default = HeadSampler::from_vars(&vars(&[]));
        assert!(default.sample(None) && !default.sample(Some(false)));
    }
}
