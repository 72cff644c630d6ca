//! Server-side instruments: HTTP request durations, the observed security level, and periodic Redis
//! availability (so dashboards have data even when nothing changes).

use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, Histogram, Meter};

/// `http.server.request.duration` (s), semantic-convention attributes (`http.request.method`,
/// `http.route` from the matched route template, never the raw path, `http.response.status_code`).
#[derive(Clone, Debug)]
pub struct HttpMetrics(Histogram<f64>);

impl HttpMetrics {
    /// Creates the histogram on `meter`.
    #[must_use]
    pub fn new(meter: &Meter) -> Self {
        Self(
            meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP requests to the sealcache API")
                .with_boundaries(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .build(),
        )
    }
}

/// `sealcache.http.server.panics` ({panic}): handler panics turned into a 500 by the catch-panic
/// layer. Any non-zero value is a bug to report.
#[derive(Clone, Debug)]
pub struct PanicCounter(opentelemetry::metrics::Counter<u64>);

impl PanicCounter {
    /// Creates the counter on `meter` (exported from 0).
    #[must_use]
    pub fn new(meter: &Meter) -> Self {
        let counter = meter
            .u64_counter("sealcache.http.server.panics")
            .with_unit("{panic}")
            .with_description("Request handler panics answered with a 500 (a bug: please report)")
            .build();
        counter.add(0, &[]);
        Self(counter)
    }

    /// The response for a panicked handler: the documented 500 JSON error. The panic's message is
    /// not logged (it may quote request data); the request id on the response ties it to the
    /// access record.
    pub fn respond(&self) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        self.0.add(1, &[]);
        tracing::error!(target: "sealcache::server", "a request handler panicked; answered 500");
        crate::ApiError::Internal.into_response()
    }
}

impl HttpMetrics {
    /// Records one request: `route` is the matched route template (never the raw path), or
    /// `unmatched`.
    pub fn observe(
        &self,
        method: &axum::http::Method,
        route: Option<&str>,
        status: axum::http::StatusCode,
        elapsed: Duration,
    ) {
        self.0.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("http.route", route.unwrap_or("unmatched").to_owned()),
                KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
            ],
        );
    }
}

/// Every `every`, records Redis availability, the breaker state and L1's entries and bytes (which
/// L1 also reports on every change); every `level_every`, the
/// observed security level as `sealcache.security.level{level, environment} = 1` (the other levels 0).
pub fn spawn_status_gauges(
    state: crate::AppState,
    meter: &Meter,
    every: Duration,
    level_every: Duration,
) {
    let level_gauge: Gauge<u64> = meter
        .u64_gauge("sealcache.security.level")
        .with_unit("{level}")
        .with_description("1 for the observed security level (labels: level, environment)")
        .build();
    let observer = state.cache.observer().clone();
    tokio::spawn(async move {
        let cache = &state.cache;
        let mut last_level = Instant::now() - level_every;
        loop {
            let up = cache.redis_available().await;
            observer.redis_available(up);
            observer.breaker_state(cache.breaker_state());
            observer.l1_entries(cache.l1_entries());
            observer.l1_bytes(cache.l1_bytes());
            if last_level.elapsed() >= level_every {
                last_level = Instant::now();
                // The same assessment as the status endpoint (ACL, isolation included).
                let status = state.observed_status().await;
                for candidate in sealcache::SecurityLevel::ALL {
                    let attrs = [
                        KeyValue::new("level", candidate.as_str()),
                        KeyValue::new("environment", status.environment.clone()),
                    ];
                    level_gauge.record(u64::from(candidate == status.security_level), &attrs);
                }
            }
            tokio::time::sleep(every).await;
        }
    });
}
