//! Redis killed during a run of gets and sets: no call blocks longer than the timeout plus a
//! margin, nothing panics, reads are misses, writes fail typed (and are cached nowhere, not even in
//! L1), the breaker opens, L1 is flushed and bypassed while its invalidation subscription is down
//! (another process may have changed what it holds), and after a restart the same cache recovers
//! without being rebuilt.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Stack, env};
use sealcache::{AiRequest, BreakerConfig, CacheBuilder, Error};
use sealcache_config_gen::layout;
use sealcache_monitor::BreakerState;

const TIMEOUT: Duration = Duration::from_millis(500);
const MARGIN: Duration = Duration::from_millis(750);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_costs_at_most_the_timeout_and_the_cache_recovers() {
    let mut stack = Stack::start();
    let cache = CacheBuilder::new(env("production"))
        .keyring(stack.keyring())
        .redis(
            stack
                .redis_config("cache_app", layout::APP_PASSWORD)
                .timeouts(TIMEOUT, TIMEOUT)
                .breaker(BreakerConfig {
                    failure_threshold: 3,
                    cool_down: Duration::from_millis(400),
                }),
        )
        .build()
        .unwrap();
    let warm = AiRequest::new("qa", "warm");
    cache
        .set(&warm, &serde_json::json!({"a": 1}), None)
        .await
        .unwrap();
    assert!(
        cache
            .get(&AiRequest::new("qa", "cold"))
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        cache.sealed().l1_coherence(),
        Some((true, 0)),
        "the invalidation subscription is confirmed"
    );
    assert_eq!(cache.l1_entries(), 1, "the warm entry is in L1");

    stack.server.kill();
    let mut slowest = Duration::ZERO;
    let mut write_errors = 0;
    for i in 0..40 {
        let req = AiRequest::new("qa", format!("during outage {i}"));
        let started = Instant::now();
        assert!(
            cache.get(&req).await.unwrap().is_none(),
            "a read during the outage is a miss"
        );
        slowest = slowest.max(started.elapsed());
        let started = Instant::now();
        match cache.set(&req, &serde_json::json!({"i": i}), None).await {
            Err(Error::Unavailable) => write_errors += 1,
            other => panic!("a write during the outage: {other:?}"),
        }
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest <= TIMEOUT + MARGIN,
        "a call blocked for {slowest:?}"
    );
    assert_eq!(write_errors, 40);
    assert_eq!(cache.breaker_state(), BreakerState::Open);
    let stats = cache.stats();
    assert!(
        stats.lookups.errors >= 1,
        "outage reads are counted as errors: {stats:?}"
    );
    assert!(!stats.redis_available);
    // Once open, the breaker costs nothing.
    let started = Instant::now();
    for _ in 0..100 {
        let _ = cache.get(&AiRequest::new("qa", "skipped")).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "open breaker still waited: {:?}",
        started.elapsed()
    );
    // Written during the outage: refused, so cached nowhere (L1 is filled only after Redis
    // accepted a write), and every refusal counted.
    assert!(
        cache
            .get(&AiRequest::new("qa", "during outage 3"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        cache.l1_entries(),
        0,
        "L1 is flushed while its invalidation subscription is down"
    );
    assert!(
        cache.get(&warm).await.unwrap().is_none(),
        "L1 is not served while its invalidation subscription is down"
    );
    let (subscribed, losses) = cache.sealed().l1_coherence().unwrap();
    assert!(!subscribed && losses >= 1, "the loss is counted");
    assert_eq!(cache.stats().write_failures["unavailable"], 40);

    stack.server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = AiRequest::new("qa", "after restart");
        if cache
            .set(&probe, &serde_json::json!({"back": true}), None)
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache.breaker_state(), BreakerState::Closed);
    assert!(cache.redis_available().await);
    // Redis restarted empty (no persistence): the warm entry is gone from Redis, the new one is there.
    let fresh = stack.cache();
    assert!(
        fresh
            .get(&AiRequest::new("qa", "after restart"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(fresh.get(&warm).await.unwrap().is_none());
}
