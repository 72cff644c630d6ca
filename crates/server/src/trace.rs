//! The server span of each request (OpenTelemetry HTTP semantic conventions) and W3C trace-context
//! propagation.
//!
//! Sampling is decided here, before any span exists ([`HeadSampler`]): an unsampled request (or
//! any request when traces are not exported) gets a disabled span, and the cache and Redis spans
//! are enabled for the exporter only under a sampled request span (see the server's logging
//! setup), so tracing costs almost nothing on the requests it does not keep.
//!
//! [`HeadSampler`]: sealcache_monitor::export::HeadSampler Attributes: `http.request.method`,
//! `http.route` (the matched route, never the path with its values or query), `url.scheme`,
//! `http.response.status_code`, `error.type` for 5xx, and `http.request.header.x-request-id`. No
//! query string, header value other than the request id, or body is ever recorded.

use std::fmt;

use axum::http::{HeaderMap, Method, StatusCode};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use sealcache_monitor::export::RemoteParent;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The span name: `{method} {route}` (or just the method when no route matched).
struct SpanName<'a>(&'a Method, Option<&'a str>);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// The trace id and sampled flag of a valid W3C `traceparent`, if any: version two lower-case hex
/// digits (not `ff`), then exactly 32 and 16 lower-case hex digits (not all zero) and two of
/// flags; version `00` has exactly these four fields, later versions may append more. Anything
/// else is no parent: the request is a root, and the configured sampler alone decides (a caller
/// cannot force a trace with a malformed header).
fn remote_parent(headers: &HeaderMap) -> Option<RemoteParent> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let extra = parts.next();
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || extra.is_none())
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(span_id, 16)
        && span_id.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    if !valid {
        return None;
    }
    Some(RemoteParent {
        trace_id: u128::from_str_radix(trace_id, 16).ok()?,
        sampled: u8::from_str_radix(flags, 16).ok()? & 1 == 1,
    })
}

/// The server span of one request, child of the caller's `traceparent` when it sent one, or a
/// disabled span (and no cache or Redis span under it) when the head sampler says no or traces
/// are not exported.
pub(crate) fn request_span(
    sampler: Option<&sealcache_monitor::export::HeadSampler>,
    method: &Method,
    route: Option<&str>,
    request_id: &str,
    headers: &HeaderMap,
) -> tracing::Span {
    let Some(sampler) = sampler else {
        return tracing::Span::none();
    };
    // A ratio decides from the trace id (the caller's, or one drawn for a root), so every
    // service of the trace agrees.
    let remote = remote_parent(headers);
    if !sampler.sample_trace(remote) {
        return tracing::Span::none();
    }
    let span = tracing::debug_span!(
        target: "sealcache::http",
        "http.server.request",
        otel.name = %SpanName(method, route),
        otel.kind = "server",
        "http.request.method" = %method,
        "http.route" = route,
        "url.scheme" = "http",
        "http.request.header.x-request-id" = request_id,
        "http.response.status_code" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if remote.is_some() && !span.is_disabled() {
        // W3C trace context (`traceparent`, `tracestate`), only from a header that passed the
        // strict check above; set before the span is entered, as tracing-opentelemetry requires.
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
    span
}

/// The filter in front of the span exporter: sealcache's spans only, the request span (created
/// only for sampled requests) and cache and Redis spans only under one of ours, so an unsampled
/// request, or background work such as the status gauges, makes none.
///
/// This filter's own answer per callsite is `never` for every event and foreign span, but once
/// another layer makes a callsite `sometimes` this filter is asked per call too, so the per-call
/// check refuses them as well. Its level hint is `DEBUG`, and nothing finer is ever enabled.
pub fn export_filter<S>() -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    fn ours(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span() && meta.target().starts_with("sealcache::")
    }
    // The callsite filter alone does not keep foreign spans out: when another layer (the log
    // layer at `debug`) wants a callsite, this one is asked per call too.
    tracing_subscriber::filter::DynFilterFn::new(|meta, cx| {
        ours(meta)
            && *meta.level() <= tracing::Level::DEBUG
            && (meta.target() == "sealcache::http" || in_a_span_of_ours(cx))
    })
    .with_callsite_filter(|meta| {
        if ours(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    })
    .with_max_level_hint(tracing::level_filters::LevelFilter::DEBUG)
}

/// A global filter for the cache and Redis spans while traces are exported: each is made only
/// under one of sealcache's spans (that is, in a sampled request), or when the log filter itself
/// may want it (`log_level` at `DEBUG` or finer).
///
/// `tracing-subscriber`'s per-layer filters cannot do this alone: the registry makes a span that
/// every per-layer filter disabled (each layer then skips it), so behind [`export_filter`] alone
/// every unsampled lookup and Redis command still paid for a span's slot, its enters, exits and
/// records, and its close. A global filter refuses the span before it exists.
///
/// Its place in the stack does not change any callsite's interest (a layer without a per-layer
/// filter over per-layer-filtered ones turns their `never` into `sometimes` wherever it stands);
/// the server puts it first, on the registry. Its level hint is `OFF`: it only refuses, so it
/// must not raise the process's maximum level (without a hint, the stack's would be `TRACE`).
#[derive(Debug, Clone, Copy)]
pub struct SpanGate {
    log_level: tracing::level_filters::LevelFilter,
}

impl SpanGate {
    /// A gate beside a log filter whose finest level is `log_level` (`None`: any level).
    #[must_use]
    pub fn new(log_level: Option<tracing::level_filters::LevelFilter>) -> Self {
        Self {
            log_level: log_level.unwrap_or(tracing::level_filters::LevelFilter::TRACE),
        }
    }

    /// Whether this callsite is one the gate decides on: a span of ours other than the request
    /// span, which the log filter cannot want.
    fn gates(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span()
            && meta.target().starts_with("sealcache::")
            && meta.target() != "sealcache::http"
            && *meta.level() > self.log_level
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanGate
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.gates(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::OFF)
    }

    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        !self.gates(meta) || in_a_span_of_ours(&cx)
    }
}

/// Whether the current span (as `cx` sees it) is one of sealcache's: in a sampled request.
fn in_a_span_of_ours<S>(cx: &tracing_subscriber::layer::Context<'_, S>) -> bool
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    cx.lookup_current()
        .is_some_and(|s| s.metadata().target().starts_with("sealcache::"))
}

/// Records the response status on the request span.
pub(crate) fn record_status(span: &tracing::Span, status: StatusCode) {
    if span.is_disabled() {
        return;
    }
    // As i64: tracing-opentelemetry exports unsigned fields as strings.
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "error");
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn flag(value: &str) -> Option<bool> {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value.parse().unwrap());
        remote_parent(&headers).map(|p| {
            assert_eq!(p.trace_id, 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
            p.sampled
        })
    }

    /// Counts the spans the registry creates, per name.
    #[derive(Clone, Default)]
    struct Created(std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Created {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.lock().unwrap().push(attrs.metadata().name());
        }
    }

    /// The server's subscriber as `main` builds it with export on: the gate, a log layer at
    /// `warn` and the exporter (here: a layer that records what it is given) behind
    /// [`export_filter`]. `made` counts every span the registry makes, whoever wants it.
    #[test]
    fn only_spans_under_a_sampled_request_are_made_or_exported() {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let (exported, made) = (Created::default(), Created::default());
        let subscriber = tracing_subscriber::registry()
            .with(SpanGate::new(Some(
                tracing::level_filters::LevelFilter::WARN,
            )))
            .with(made.clone())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .with_filter(tracing_subscriber::EnvFilter::new("warn")),
            )
            .with(exported.clone().with_filter(export_filter()));
        tracing::subscriber::with_default(subscriber, || {
            // An unsampled request: no request span, so no cache or Redis span is made.
            let cache = tracing::debug_span!(target: "sealcache::cache", "sealcache.lookup");
            let redis =
                cache.in_scope(|| tracing::debug_span!(target: "sealcache::redis", "db.command"));
            assert!(cache.is_disabled() && redis.is_disabled());
            assert!(made.0.lock().unwrap().is_empty());
            // A sampled one: all three.
            let request = tracing::debug_span!(target: "sealcache::http", "http.server.request");
            request.in_scope(|| {
                let cache = tracing::debug_span!(target: "sealcache::cache", "sealcache.lookup");
                cache.in_scope(|| tracing::debug_span!(target: "sealcache::redis", "db.command"));
            });
            // Foreign spans never.
            request.in_scope(|| tracing::debug_span!(target: "hyper::proto", "parse"));
        });
        assert_eq!(
            *exported.0.lock().unwrap(),
            ["http.server.request", "sealcache.lookup", "db.command"]
        );
        // The foreign span was made only because `made` (unfiltered) wants every span; nothing
        // else was made.
        assert_eq!(
            *made.0.lock().unwrap(),
            [
                "http.server.request",
                "sealcache.lookup",
                "db.command",
                "parse"
            ]
        );
    }

    /// The gate only refuses, so it must not raise the stack's maximum level: with a log layer at
    /// `info` (and the JSON layer absent, as `main` builds it) the stack's hint stays `DEBUG`, the
    /// export filter's, instead of `TRACE` (which would let every `trace!` callsite in the process
    /// past its level check).
    #[test]
    fn the_gate_keeps_the_stacks_maximum_level() {
        use tracing::Subscriber as _;
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let absent: Option<
            tracing_subscriber::filter::Filtered<Created, tracing_subscriber::EnvFilter, _>,
        > = None;
        let subscriber = tracing_subscriber::registry()
            .with(SpanGate::new(Some(
                tracing::level_filters::LevelFilter::INFO,
            )))
            .with(Some(
                Created::default().with_filter(tracing_subscriber::EnvFilter::new("info")),
            ))
            .with(absent)
            .with(Some(Created::default().with_filter(export_filter())));
        assert_eq!(
            subscriber.max_level_hint(),
            Some(tracing::level_filters::LevelFilter::DEBUG)
        );
    }

    /// With the log filter at `debug`, the log layer may want every cache span, so the gate lets
    /// them be made; the exporter still gets only those under a request span.
    #[test]
    fn a_debug_log_filter_still_gets_the_cache_spans() {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let (exported, logged) = (Created::default(), Created::default());
        let subscriber = tracing_subscriber::registry()
            .with(SpanGate::new(Some(
                tracing::level_filters::LevelFilter::DEBUG,
            )))
            .with(
                logged
                    .clone()
                    .with_filter(tracing_subscriber::EnvFilter::new("debug")),
            )
            .with(exported.clone().with_filter(export_filter()));
        tracing::subscriber::with_default(subscriber, || {
            let cache = tracing::debug_span!(target: "sealcache::cache", "sealcache.lookup");
            assert!(!cache.is_disabled());
        });
        assert_eq!(*logged.0.lock().unwrap(), ["sealcache.lookup"]);
        assert!(exported.0.lock().unwrap().is_empty());
    }

    #[test]
    fn only_a_well_formed_traceparent_is_a_parent() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        assert_eq!(flag(&format!("00-{id}-{span}-01")), Some(true));
        assert_eq!(flag(&format!("00-{id}-{span}-00")), Some(false));
        // A later version may carry more fields.
        assert_eq!(flag(&format!("01-{id}-{span}-01-what-ever")), Some(true));
        for bad in [
            format!("00-{id}-{span}-01-extra"),
            format!("00-{}-{span}-01", id.to_uppercase()),
            format!("00-{}-{span}-01", &id[2..]),
            format!("00-{id}-{span}-01-"),
            format!("ff-{id}-{span}-01"),
            format!("00-{}-{span}-01", "0".repeat(32)),
            format!("00-{id}-{}-01", "0".repeat(16)),
            format!("00-{id}-{span}-zz"),
            format!("00-{id}-{span}"),
            " 00-x".to_owned(),
        ] {
            assert_eq!(flag(&bad), None, "{bad}");
        }
    }
}
