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
