//! Cost of recording one lookup on the hit path, in ns: OpenTelemetry instruments, the in-process
//! monitor, and both (what the server runs). `cargo xtask bench monitor`.

// A benchmark program reports what it measured.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sealcache_monitor::{
    CacheObserver, LookupResult, SecurityAwareCacheMonitor, Tee, Telemetry, Tier,
};

fn record(c: &mut Criterion) {
    // With a reader, as the server runs it: without one the SDK hands out no-op instruments.
    let telemetry = Telemetry::builder("bench", "testing")
        .with_prometheus()
        .unwrap()
        .build();
    let otel = telemetry.observer();
    let monitor = SecurityAwareCacheMonitor::new();
    let both = Tee(SecurityAwareCacheMonitor::new(), telemetry.observer());
    // Warm the attribute sets and the SDK's maps.
    for o in [&otel as &dyn CacheObserver, &monitor, &both] {
        o.lookup("summarize", Tier::L1, LookupResult::Hit);
    }
    let mut group = c.benchmark_group("monitor/lookup_hit");
    group.bench_function("otel", |b| {
        b.iter(|| otel.lookup(black_box("summarize"), Tier::L1, LookupResult::Hit));
    });
    group.bench_function("in_process", |b| {
        b.iter(|| monitor.lookup(black_box("summarize"), Tier::L1, LookupResult::Hit));
    });
    group.bench_function("both", |b| {
        b.iter(|| both.lookup(black_box("summarize"), Tier::L1, LookupResult::Hit));
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = record }
criterion_main!(benches);
