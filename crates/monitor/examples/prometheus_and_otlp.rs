//! A monitor wired to Prometheus text and (when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) to OTLP/HTTP.
//!
//! Run: `cargo run -p sealcache-monitor --features otlp,prometheus --example prometheus_and_otlp`
//! (add `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318` to push to a collector).

// An example program prints what it shows.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use sealcache_monitor::{
    CacheObserver, LookupResult, OperationKind, SecurityAwareCacheMonitor, SecurityEvent,
    SecurityEventType, Tee, Telemetry, Tier,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = Telemetry::builder("sealcache-example", "development")
        .with_prometheus()?
        .with_otlp_if_configured(|name| std::env::var(name).ok())?
        .build();
    let monitor = Arc::new(SecurityAwareCacheMonitor::new());
    // What the cache is given: the in-process monitor and the OpenTelemetry instruments.
    let observer = Tee(monitor.clone(), telemetry.observer());

    for i in 0..10 {
        let result = if i % 5 == 0 {
            LookupResult::Miss
        } else {
            LookupResult::Hit
        };
        observer.lookup("summarize", Tier::Redis, result);
        observer.operation(OperationKind::Get, Duration::from_micros(150));
    }
    observer.security_event(
        SecurityEvent::new(SecurityEventType::DecryptFailed).detail("key #9f86d081884c"),
    );

    println!("hit rate: {}", monitor.performance_summary().hit_rate);
    println!(
        "security: {}",
        serde_json::to_string(&monitor.security_summary())?
    );
    if let Some(text) = telemetry.render_prometheus()? {
        for line in text
            .lines()
            .filter(|l| l.starts_with("sealcache_lookups") || l.starts_with("sealcache_security"))
        {
            println!("{line}");
        }
    }
    telemetry.shutdown()?;
    Ok(())
}
