//! Right answers at the edges, on a real TLS + mTLS + ACL redis-server: writes Redis refuses are
//! cached nowhere and typed; single-flight survives cancelled leaders and never caches errors;
//! stored JSON comes back byte for byte; equal requests share one key.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Stack, env};
use sealcache::{AiRequest, CacheBuilder, CacheOptions, ComputeError, Error, Origin, WriteRefusal};
use sealcache_config_gen::layout;

fn json(text: &str) -> sealcache::Bytes {
    sealcache::Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_refuses_for_memory_is_typed_counted_and_cached_nowhere() {
    let stack = Stack::start();
    let cache = stack.cache();
    let kept = AiRequest::new("qa", "stored before the limit");
    cache
        .set_json(&kept, json(r#"{"v":"old"}"#), None)
        .await
        .unwrap();
    let mut admin = stack.admin().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut admin)
        .await
        .unwrap();

    let refused = AiRequest::new("qa", "written at the limit");
    let err = cache
        .set_json(&refused, json(r#"{"v":1}"#), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WriteRefused {
                reason: WriteRefusal::OutOfMemory
            }
        ),
        "{err:?}"
    );
    // Nothing anywhere: not a hit from L1, not in Redis.
    assert!(cache.get(&refused).await.unwrap().is_none());
    let key = cache.key(&refused).unwrap();
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(raw.is_none());
    // An overwrite Redis refuses leaves Redis's value, and L1 never stands in for another one.
    let err = cache
        .set_json(&kept, json(r#"{"v":"new"}"#), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WriteRefused { .. }));
    let hit = cache.get(&kept).await.unwrap().unwrap();
    assert_eq!(hit.json_bytes(), br#"{"v":"old"}"#);
    assert_eq!(cache.stats().write_failures["oom"], 2);
    // A refusal is an answer, not an outage: the breaker stays closed.
    assert_eq!(
        cache.breaker_state(),
        sealcache_monitor::BreakerState::Closed
    );
    // get_or_compute still answers (the value is right, only not cached).
    let answer = cache
        .get_or_compute(&refused, None, || async {
            Ok::<_, std::io::Error>(serde_json::json!({"v": 2}))
        })
        .await
        .unwrap();
    assert_eq!(answer.origin, Origin::Computed);
    assert_eq!(answer.ttl_remaining, None, "not stored");
    assert!(cache.get(&refused).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_acl_refuses_is_typed_and_cached_nowhere() {
    let stack = Stack::start();
    // `cache_app` may only touch `ai_cache:*`: another namespace is refused with NOPERM.
    let cache = CacheBuilder::new(env("production"))
        .options(CacheOptions::default().with_namespace("elsewhere"))
        .keyring(stack.keyring())
        .redis(stack.redis_config("cache_app", layout::APP_PASSWORD))
        .build()
        .unwrap();
    let request = AiRequest::new("qa", "outside the ACL");
    let err = cache
        .set(&request, &serde_json::json!({"a": 1}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WriteRefused {
                reason: WriteRefusal::NoPermission
            }
        ),
        "{err:?}"
    );
    assert_eq!(cache.l1_entries(), 0);
    assert!(cache.get(&request).await.unwrap().is_none());
    assert_eq!(cache.stats().write_failures["noperm"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_json_comes_back_byte_for_byte_and_unreadable_json_is_refused() {
    let stack = Stack::start();
    let cache = stack.cache();
    for (i, text) in [
        r#"{"n": 12345678901234567890123, "f": 1.000000000000000000001, "e": -0.0E+00}"#,
        r#"[ "\u00e9\ud83d\ude00\n\t\"\\\/" ,  1e400 ]"#,
        "\"caf\u{e9} \u{1f600}\"",
    ]
    .into_iter()
    .enumerate()
    {
        let request = AiRequest::new("qa", format!("exact {i}"));
        cache.set_json(&request, json(text), None).await.unwrap();
        // From L1, then from Redis through a fresh cache.
        assert_eq!(
            cache.get(&request).await.unwrap().unwrap().json_bytes(),
            text.as_bytes()
        );
        assert_eq!(
            stack
                .cache()
                .get(&request)
                .await
                .unwrap()
                .unwrap()
                .json_bytes(),
            text.as_bytes()
        );
    }
    for bad in [
        r#""\ud800""#,
        r#"{"a":"\udc00"}"#,
        "{\"a\":1} x",
        "\u{feff}{}",
    ] {
        let request = AiRequest::new("qa", bad);
        let err = cache.set_json(&request, json(bad), None).await.unwrap_err();
        assert!(matches!(err, Error::InvalidJson(_)), "{bad}: {err:?}");
        assert!(cache.get(&request).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_leader_leaves_nothing_behind() {
    let stack = Stack::start();
    let cache = stack.cache();
    let request = AiRequest::new("summarize", "the leader is cancelled");
    // The leader is cancelled by its caller's timeout while computing.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        cache.get_or_compute(&request, None, || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(serde_json::json!("never"))
        }),
    )
    .await;
    assert!(cancelled.is_err());
    assert_eq!(cache.sealed().flights_in_progress(), 0);
    // The next call computes itself; its error is its own and is not cached.
    let err = cache
        .get_or_compute(&request, None, || async {
            Err::<serde_json::Value, _>(std::io::Error::other("model down"))
        })
        .await
        .unwrap_err();
    match err {
        ComputeError::Compute(e) => assert_eq!(e.to_string(), "model down"),
        other => panic!("{other:?}"),
    }
    assert!(cache.get(&request).await.unwrap().is_none());
    // Then a success is computed, stored and served.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Summary {
        text: String,
        tokens: u32,
    }
    let answer = cache
        .get_or_compute(&request, None, || async {
            Ok::<_, std::io::Error>(Summary {
                text: "short".into(),
                tokens: 3,
            })
        })
        .await
        .unwrap();
    assert_eq!(answer.origin, Origin::Computed);
    assert_eq!(answer.value.tokens, 3);
    let again = cache
        .get_or_compute(&request, None, || async {
            Err::<Summary, _>(std::io::Error::other("must not run"))
        })
        .await
        .unwrap();
    assert_eq!(again.origin, Origin::L1);
    assert_eq!(again.value, answer.value);
    let from_redis = stack
        .cache()
        .get_or_compute(&request, None, || async {
            Err::<Summary, _>(std::io::Error::other("must not run"))
        })
        .await
        .unwrap();
    assert_eq!(from_redis.origin, Origin::Redis);
    assert_eq!(cache.sealed().flights_in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_waiters_survive_their_leader_being_cancelled() {
    let stack = Stack::start();
    let cache = Arc::new(stack.cache());
    let runs = Arc::new(AtomicUsize::new(0));
    let request = AiRequest::new("qa", "fifty waiters");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let leader = {
        let (cache, runs, request) = (cache.clone(), runs.clone(), request.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&request, None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = started_tx.send(());
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<_, std::io::Error>(serde_json::json!("from the cancelled leader"))
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..50 {
        let (cache, runs, request) = (cache.clone(), runs.clone(), request.clone());
        waiters.push(tokio::spawn(async move {
            cache
                .get_or_compute(&request, None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(serde_json::json!("from a waiter"))
                })
                .await
        }));
    }
    // Let the waiters join the flight, then cancel its leader midway.
    tokio::time::sleep(Duration::from_millis(200)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for w in waiters {
        let answer = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a waiter hung after its leader was cancelled")
            .unwrap()
            .unwrap();
        assert_eq!(answer.value, serde_json::json!("from a waiter"));
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the cancelled leader and exactly one new leader computed"
    );
    assert_eq!(cache.sealed().flights_in_progress(), 0);
    assert!(cache.stats().singleflight_coalesced >= 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_reach_every_waiter_and_are_never_cached() {
    let stack = Stack::start();
    let cache = Arc::new(stack.cache());
    let runs = Arc::new(AtomicUsize::new(0));
    let request = AiRequest::new("qa", "failing model");
    #[derive(Debug)]
    struct ModelError {
        code: u16,
    }
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (cache, runs, request) = (cache.clone(), runs.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_compute(&request, None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Err::<serde_json::Value, _>(ModelError { code: 429 })
                })
                .await
        }));
    }
    let mut shared = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Err(ComputeError::Compute(e)) => {
                assert_eq!(e.code, 429, "the caller's own error type");
                shared.push(e);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(shared.iter().all(|e| Arc::ptr_eq(e, &shared[0])));
    // The next separate call computes again: the error was not kept.
    let answer = cache
        .get_or_compute(&request, None, || async {
            Ok::<_, ModelError>(serde_json::json!("recovered"))
        })
        .await
        .unwrap();
    assert_eq!(answer.value, serde_json::json!("recovered"));
    assert_eq!(answer.origin, Origin::Computed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_option_values_share_one_entry() {
    let stack = Stack::start();
    let cache = stack.cache();
    let base = |v: serde_json::Value| {
        AiRequest::new("summarize", "same text")
            .option("temperature", v)
            .option("nested", serde_json::json!({"b": [1.0, -0.0], "a": 2}))
    };
    let stored = base(serde_json::json!(1));
    cache
        .set(&stored, &serde_json::json!({"s": 1}), None)
        .await
        .unwrap();
    // A client that writes `1.0` (Python, JavaScript floats) gets the same answer, from Redis too.
    let float = base(serde_json::json!(1.0));
    assert_eq!(cache.key(&float).unwrap(), cache.key(&stored).unwrap());
    assert!(stack.cache().get(&float).await.unwrap().is_some());
    let reordered = AiRequest::new("summarize", "same text")
        .option("nested", serde_json::json!({"a": 2.0, "b": [1, 0]}))
        .option("temperature", serde_json::json!(1.0));
    assert_eq!(cache.key(&reordered).unwrap(), cache.key(&stored).unwrap());
    // Different values stay different.
    assert_ne!(
        cache.key(&base(serde_json::json!(1.5))).unwrap(),
        cache.key(&stored).unwrap()
    );
    assert!(
        cache
            .key(&stored)
            .unwrap()
            .starts_with("ai_cache:v3:summarize:")
    );
}

/// `PTTL` calls Redis has served so far (`INFO commandstats`).
async fn pttl_calls(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .unwrap();
    info.lines()
        .find(|l| l.starts_with("cmdstat_pttl:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remaining_ttl_comes_from_the_value_without_pttl_when_l1_is_off() {
    let stack = Stack::start();
    let cache = stack.cache_with(CacheOptions::default().with_l1_capacity(0));
    let mut admin = stack.admin().await;
    let request = AiRequest::new("qa", "ttl from the value");
    cache
        .set_json(&request, json(r#"{"a":1}"#), Some(Duration::from_secs(600)))
        .await
        .unwrap();
    let before = pttl_calls(&mut admin).await;
    let hit = cache.get(&request).await.unwrap().unwrap();
    assert_eq!(
        hit.json_bytes(),
        br#"{"a":1}"#,
        "the expiry prefix never reaches a caller"
    );
    let left = hit.ttl_remaining().unwrap();
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    assert_eq!(pttl_calls(&mut admin).await, before, "no PTTL with L1 off");

    // A value sealed by an older writer (plain JSON, no embedded expiry) still reports its TTL:
    // then the cache asks Redis. Sealed under the keyring, as older writers and shared entries
    // are (an owner's entry is sealed under its data key), so read through the shared view.
    let cache = cache.shared();
    let older = AiRequest::new("qa", "written before the embedded expiry");
    let key = cache.key(&older).unwrap();
    let codec = sealcache_codec::ValueCodec::new(&stack.keyring());
    let sealed = codec
        .seal(
            &sealcache_codec::SealContext::new("ai_cache", &key),
            br#"{"old":true}"#,
        )
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(sealed.as_bytes())
        .arg("PX")
        .arg(300_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let hit = cache.get(&older).await.unwrap().unwrap();
    assert_eq!(hit.json_bytes(), br#"{"old":true}"#);
    let left = hit.ttl_remaining().unwrap();
    assert!(
        left > Duration::from_secs(290) && left <= Duration::from_secs(300),
        "{left:?}"
    );

    // With L1 on, fills still ask Redis (an L1 copy never outlives the Redis entry, whatever
    // the clocks).
    let with_l1 = stack.cache();
    let before = pttl_calls(&mut admin).await;
    assert!(with_l1.get(&request).await.unwrap().is_some());
    assert_eq!(pttl_calls(&mut admin).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_read_only_replica_is_typed_counted_and_cached_nowhere() {
    let stack = Stack::start();
    let cache = stack.cache();
    let kept = AiRequest::new("qa", "written while primary");
    cache
        .set_json(&kept, json(r#"{"v":"old"}"#), None)
        .await
        .unwrap();
    // Demote the node to a replica of an address nobody serves: it keeps its data, refuses writes.
    let mut admin = stack.admin().await;
    let unused = sealcache_testkit::free_port();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(unused)
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = cache
        .set_json(&kept, json(r#"{"v":"new"}"#), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WriteRefused {
                reason: WriteRefusal::ReadOnly
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        cache.get(&kept).await.unwrap().unwrap().json_bytes(),
        br#"{"v":"old"}"#
    );
    assert_eq!(cache.stats().write_failures["readonly"], 1);
    assert_eq!(
        cache.breaker_state(),
        sealcache_monitor::BreakerState::Closed
    );
}

/// The metrics report what L1 holds, in entries and in the bytes weighed against its bound, and
/// follow it down when entries go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_report_l1s_entries_and_bytes() {
    let stack = Stack::start();
    let cache = stack.cache();
    for i in 0..3 {
        let request = AiRequest::new("qa", format!("weighed {i}"));
        cache
            .set(&request, &serde_json::json!({"i": i}), None)
            .await
            .unwrap();
    }
    let stats = cache.stats();
    assert_eq!(stats.l1_entries, 3);
    assert_eq!(stats.l1_bytes, cache.l1_bytes());
    // Each entry costs its key's and value's heap blocks and its bookkeeping: 375 B at the least.
    assert!(
        stats.l1_bytes >= 3 * 375,
        "{} B for 3 entries",
        stats.l1_bytes
    );
    assert_eq!(cache.invalidate_operation("qa").await.unwrap(), 3);
    let stats = cache.stats();
    assert_eq!((stats.l1_entries, stats.l1_bytes), (0, 0));
}
