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

/// The sampled flag of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if any.
fn remote_sampled(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(span_id, 16)
        && span_id.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    if !valid {
        return None;
    }
    u8::from_str_radix(flags, 16).ok().map(|f| f & 1 == 1)
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
    if !sampler.sample(remote_sampled(headers)) {
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
    if !span.is_disabled() {
        // W3C trace context (`traceparent`, `tracestate`); an absent or invalid header gives a
        // root span. Set before the span is entered, as tracing-opentelemetry requires.
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
    span
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
