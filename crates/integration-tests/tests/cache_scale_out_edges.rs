//! Scale-out edge cases found by review, each a regression test: an idle invalidation subscription
//! stays confirmed, L1 is not served once its subscriber is gone, concurrent first calls on a stalled
//! Redis share one connect attempt, a failed write costs one deadline, keyring reloads keep keys and
//! dictionaries that live entries need, and Debug never shows any part of a password.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use std::time::Duration;

use common::Stack;
use sealcache::AiRequest;

/// An idle subscriber PINGs every second; in RESP2 subscribed mode Redis answers `["pong", ""]`,
/// which `ping::<String>()` cannot parse, so the subscription is declared lost and L1 flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscription_is_not_lost() {
    let stack = Stack::start();
    let cache = stack.cache();
    let req = AiRequest::new("qa", "idle");
    cache
        .set(&req, &serde_json::json!({"a": 1}), None)
        .await
        .unwrap();
    assert_eq!(cache.sealed().l1_coherence(), Some((true, 0)));
    assert_eq!(cache.l1_entries(), 1);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let state = cache.sealed().l1_coherence();
    let entries = cache.l1_entries();
    eprintln!("after 3.5 s idle: coherence={state:?} l1_entries={entries}");
    assert_eq!(
        state.map(|s| s.1),
        Some(0),
        "no subscription loss while idle"
    );
    assert_eq!(entries, 1, "L1 kept its entry while idle");
}

/// A Redis that accepts TCP but never completes the TLS handshake (a stalled or black-holed
/// node): concurrent first calls queue on the connect mutex and each makes its own full
/// connect attempt, so the last caller waits N × (connect timeout + 500 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_a_stalled_redis_return_within_the_timeout() {
    use sealcache::{CacheBuilder, CacheOptions, RedisConfig};
    use sealcache_config_gen::layout;
    let stack = Stack::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            held.push(s);
        }
    });
    let timeout = Duration::from_millis(300);
    let config = RedisConfig::new(format!("rediss://localhost:{port}/0"))
        .acl_user("cache_app", stack.secret(layout::APP_PASSWORD))
        .tls_files(
            stack.path(layout::CA_CERT),
            stack.path(layout::CLIENT_CERT),
            stack.path(layout::CLIENT_KEY),
        )
        .timeouts(timeout, timeout);
    let cache = CacheBuilder::new(common::env("production"))
        .options(CacheOptions::default().with_l1_capacity(0))
        .keyring(stack.keyring())
        .redis(config)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let _ = cache.get(&AiRequest::new("qa", format!("q{i}"))).await;
            started.elapsed()
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.unwrap());
    }
    eprintln!("slowest of 8 concurrent first calls: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(1500),
        "a call blocked for {slowest:?}"
    );
}

fn short_policy_cache(stack: &Stack, keyring: sealcache::Keyring) -> sealcache::AiResponseCache {
    use sealcache::{CacheBuilder, TtlPolicy};
    use sealcache_config_gen::layout;
    let one = Duration::from_secs(1);
    let mut policy = TtlPolicy::default().with_default(one);
    for op in ["summarize", "sentiment", "key_points", "questions", "qa"] {
        policy = policy.with(op, one);
    }
    CacheBuilder::new(common::env("production"))
        .ttl_policy(policy)
        .keyring(keyring)
        .redis(stack.redis_config("cache_app", layout::APP_PASSWORD))
        .build()
        .unwrap()
}

/// The retire guard uses the TTL policy's longest TTL, but a per-call TTL (the server accepts
/// `ttl_seconds` up to 30 days) can be far longer: a Checked reload drops the key sealing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_retire_keeps_entries_with_a_longer_per_call_ttl() {
    use sealcache::{KeyringReload, SecretKey};
    let stack = Stack::start();
    let k1 = stack.keyring();
    let cache = short_policy_cache(&stack, k1.clone());
    let req = AiRequest::new("qa", "long-lived");
    cache
        .set(
            &req,
            &serde_json::json!({"a": 1}),
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let (k2, id2) = k1.with_decrypt_only_key(SecretKey::generate().unwrap());
    cache.reload_keyring(&k2, KeyringReload::Checked).unwrap();
    let k3 = k2.with_primary(id2).unwrap();
    cache.reload_keyring(&k3, KeyringReload::Checked).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let k4 = k3.without_key(k1.primary_id()).unwrap();
    let retired = cache.reload_keyring(&k4, KeyringReload::Checked);
    let still = cache
        .sealed()
        .get_raw(&cache.key(&req).unwrap(), "qa")
        .await;
    eprintln!(
        "retire: {retired:?}; entry with 3600 s TTL readable afterwards: {}",
        still.is_some()
    );
    assert!(
        retired.is_err() || still.is_some(),
        "a Checked reload dropped the key of an entry that lives for another hour"
    );
}

/// The reload checks keys but not dictionaries: a Checked reload that drops the sealing
/// dictionary makes every live value compressed with it a miss (`unknown_key_id`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_reload_keeps_the_dictionary_of_live_entries() {
    use sealcache::{Dictionary, KeyringReload};
    let stack = Stack::start();
    let samples: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            format!(
                "{{\"answer\":\"the quick brown fox {i} jumps over the lazy dog number {}\",\"score\":{},\"tags\":[\"alpha\",\"beta{}\",\"gamma\"],\"explanation\":\"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor {i}\"}}",
                i * 7,
                i % 13,
                i % 5
            )
            .into_bytes()
        })
        .collect();
    let dict =
        Dictionary::from_bytes(zstd::dict::from_samples(&samples, 8 * 1024).unwrap()).unwrap();
    let k1 = stack.keyring().with_dictionary(dict.clone(), true).unwrap();
    let cache = stack.cache_with_keyring(k1.clone());
    let req = AiRequest::new("qa", "dictionary");
    let value: serde_json::Value = serde_json::from_slice(&samples[3].repeat(1)).unwrap();
    let value = serde_json::json!({"a": value, "b": value, "c": value});
    cache.set(&req, &value, None).await.unwrap();
    let k2 = k1.without_dictionary(dict.id());
    let reloaded = cache.reload_keyring(&k2, KeyringReload::Checked);
    let key = cache.key(&req).unwrap();
    // Read from Redis, not L1 (a fresh cache with the reloaded keyring behaves the same).
    let fresh = stack.cache_with_keyring(k2.clone());
    let still = fresh.sealed().get_raw(&key, "qa").await;
    eprintln!(
        "reload without dictionary: {reloaded:?}; live entry readable: {}",
        still.is_some()
    );
    assert!(
        reloaded.is_err() || still.is_some(),
        "a Checked reload dropped the dictionary of a live entry"
    );
}

trait WithKeyring {
    fn cache_with_keyring(&self, keyring: sealcache::Keyring) -> sealcache::AiResponseCache;
}
impl WithKeyring for Stack {
    fn cache_with_keyring(&self, keyring: sealcache::Keyring) -> sealcache::AiResponseCache {
        sealcache::CacheBuilder::new(common::env("production"))
            .keyring(keyring)
            .redis(self.redis_config("cache_app", sealcache_config_gen::layout::APP_PASSWORD))
            .build()
            .unwrap()
    }
}

/// The subscriber is spawned on the runtime of the first call. If that runtime ends (a
/// short-lived runtime, an actix worker restarted), the task is cancelled without clearing
/// `subscribed` or `started`: L1 stays "confirmed" and is served with nobody listening, so a
/// remote overwrite is never seen until `l1_max_ttl`.
#[test]
fn l1_is_not_served_after_the_subscriber_runtime_ended() {
    let stack = Stack::start();
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (reader, writer) = main.block_on(async { (stack.cache(), stack.cache()) });
    let req = AiRequest::new("qa", "runtime");
    // The data connection lives on the main runtime; only the subscriber starts on the short one.
    assert!(main.block_on(reader.sealed().redis_available()));
    {
        let short = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        short.block_on(async {
            assert!(reader.get(&req).await.unwrap().is_none());
        });
        drop(short);
    }
    main.block_on(async {
        writer
            .set(&req, &serde_json::json!({"v": 1}), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let first: Option<serde_json::Value> =
            reader.get(&req).await.unwrap().map(|c| c.parse().unwrap());
        assert_eq!(first, Some(serde_json::json!({"v": 1})));
        writer
            .set(&req, &serde_json::json!({"v": 2}), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later: Option<serde_json::Value> =
            reader.get(&req).await.unwrap().map(|c| c.parse().unwrap());
        eprintln!(
            "reader coherence={:?}, value 1.5 s after the overwrite: {later:?}",
            reader.sealed().l1_coherence()
        );
        assert_eq!(later, Some(serde_json::json!({"v": 2})), "stale L1 served");
    });
}

/// A Redis that stops answering (SIGSTOP: connected, silent): a write waits for its `SET`
/// deadline, then for the `PUBLISH` deadline too, so the first failing writes take twice the
/// documented bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_silent_redis_returns_within_one_deadline() {
    use sealcache::{BreakerConfig, CacheBuilder};
    use sealcache_config_gen::layout;
    let stack = Stack::start();
    let timeout = Duration::from_millis(400);
    let cache = CacheBuilder::new(common::env("production"))
        .keyring(stack.keyring())
        .redis(
            stack
                .redis_config("cache_app", layout::APP_PASSWORD)
                .timeouts(timeout, timeout)
                .breaker(BreakerConfig {
                    failure_threshold: 3,
                    cool_down: Duration::from_secs(5),
                }),
        )
        .build()
        .unwrap();
    let req = AiRequest::new("qa", "silent");
    cache
        .set(&req, &serde_json::json!({"a": 1}), None)
        .await
        .unwrap();
    let pid = stack.server.pid().unwrap();
    sealcache_testkit::send_signal(pid, sealcache_testkit::Signal::STOP).unwrap();
    let started = std::time::Instant::now();
    let out = cache.set(&req, &serde_json::json!({"a": 2}), None).await;
    let took = started.elapsed();
    sealcache_testkit::send_signal(pid, sealcache_testkit::Signal::CONT).unwrap();
    eprintln!("write to a silent Redis: {out:?} after {took:?}");
    assert!(
        took < timeout + Duration::from_millis(250),
        "took {took:?}: SET and then PUBLISH each waited"
    );
}

#[test]
fn redacted_debug_hides_the_whole_password() {
    let config = sealcache::RedisConfig::new("rediss://cache_app:s3cr@tPassw0rd@redis:6379/0");
    let shown = format!("{config:?}");
    eprintln!("{shown}");
    assert!(!shown.contains("tPassw0rd"), "{shown}");
}
