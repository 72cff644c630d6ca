//! The server span of each request (OpenTelemetry HTTP semantic conventions) and W3C trace-context
//! propagation.
//!
//! The span is created at `DEBUG` level on target `sealcache::http`: when no layer wants it (no
//! OTLP traces endpoint, the log filter above debug) it is disabled at its callsite and costs
//! nothing, and the incoming `traceparent` is not even parsed. Attributes: `http.request.method`,
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

/// The server span of one request, child of the caller's `traceparent` when it sent one.
pub(crate) fn request_span(
    method: &Method,
    route: Option<&str>,
    request_id: &str,
    headers: &HeaderMap,
) -> tracing::Span {
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
