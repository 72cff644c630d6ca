//! Single-flight across processes: two caches on one Redis (two "replicas", each with its own
//! in-process flights) compute once; a cancelled or dead holder is taken over; nobody waits past
//! the wait; Redis down computes locally; `max_age` and `no_cache`.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sealcache::{
    AiRequest, AiResponseCache, CacheBuilder, CacheOptions, LookupOptions, LookupOutcome, Origin,
    RedisConfig,
};
use serde_json::{Value, json};

#[path = "common/cache.rs"]
mod common;
use common::{Stack, env};

fn lease_key(cache: &AiResponseCache, request: &AiRequest) -> String {
    format!("ai_cache:lease:{{{}}}", cache.key(request).unwrap())
}

/// A computation that counts its runs, takes `for_`, and answers its run number.
fn counted(
    runs: &Arc<AtomicUsize>,
    for_: Duration,
) -> impl Future<Output = Result<Value, std::io::Error>> + use<> {
    let runs = runs.clone();
    async move {
        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(for_).await;
        Ok(json!({"run": n}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_compute_once_under_concurrency() {
    let stack = Stack::start();
    let replicas = [Arc::new(stack.cache()), Arc::new(stack.cache())];
    let runs = Arc::new(AtomicUsize::new(0));
    let request = AiRequest::new("qa", "one computation across replicas");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (cache, runs, request) = (replicas[i % 2].clone(), runs.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_compute(&request, None, || {
                    counted(&runs, Duration::from_millis(400))
                })
                .await
                .unwrap()
        }));
    }
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap().value);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "computed once in all");
    assert!(values.iter().all(|v| *v == json!({"run": 1})), "{values:?}");
    // The lease is gone once the holder stored (released in the background).
    let mut admin = stack.admin().await;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(lease_key(&replicas[0], &request))
            .query_async(&mut admin)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the lease was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A holder whose task is cancelled releases its lease at once: a waiter in the other replica
/// takes over long before the lease would expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_holder_releases_and_another_replica_takes_over() {
    let stack = Stack::start();
    let a = Arc::new(stack.cache());
    let b = Arc::new(stack.cache());
    let runs = Arc::new(AtomicUsize::new(0));
    let request = AiRequest::new("qa", "cancelled holder");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let (a, request) = (a.clone(), request.clone());
        tokio::spawn(async move {
            a.get_or_compute(&request, None, || async move {
                let _ = started_tx.send(());
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, std::io::Error>(json!("never"))
            })
            .await
        })
    };
    started_rx.await.unwrap();
    let waiter_started = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let waiter = {
        let (b, request, runs, at) = (
            b.clone(),
            request.clone(),
            runs.clone(),
            waiter_started.clone(),
        );
        tokio::spawn(async move {
            b.get_or_compute(&request, None, || {
                *at.lock().unwrap() = Some(Instant::now());
                counted(&runs, Duration::ZERO)
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "B waits for A's lease");
    let cancelled_at = Instant::now();
    holder.abort();
    let answer = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("B hung")
        .unwrap()
        .unwrap();
    assert_eq!(answer.value, json!({"run": 1}));
    assert_eq!(answer.origin, Origin::Computed);
    let took_over = waiter_started.lock().unwrap().unwrap() - cancelled_at;
    assert!(
        took_over < Duration::from_secs(2),
        "B took over {took_over:?} after the cancellation, not after the 10 s lease TTL"
    );
}

/// A holder that died without releasing (its lease left in Redis, as after `kill -9`): a waiter
/// takes over once the lease expires, within its TTL; a holder that stays alive renews its lease
/// past the TTL and is not taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_holder_is_taken_over_within_the_lease_ttl_and_a_live_one_renews() {
    let stack = Stack::start();
    let mut admin = stack.admin().await;
    let b = stack.cache();
    let runs = Arc::new(AtomicUsize::new(0));

    let request = AiRequest::new("qa", "dead holder");
    let _: () = redis::cmd("SET")
        .arg(lease_key(&b, &request))
        .arg("0123456789abcdef0123456789abcdef")
        .arg("PX")
        .arg(1500)
        .query_async(&mut admin)
        .await
        .unwrap();
    let started = Instant::now();
    let answer = b
        .get_or_compute(&request, None, || counted(&runs, Duration::ZERO))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.origin, Origin::Computed);
    assert!(
        took >= Duration::from_millis(1300) && took < Duration::from_millis(2500),
        "took over after {took:?} (the dead holder's lease had 1.5 s left)"
    );

    // A live holder with a 300 ms lease computing for 1.2 s renews it: the other replica waits
    // for its answer instead of computing again.
    let short = CacheOptions::default().with_lease_ttl(Duration::from_millis(300));
    let a = Arc::new(stack.cache_with(short.clone()));
    let b = Arc::new(stack.cache_with(short));
    let request = AiRequest::new("qa", "long computation");
    let runs = Arc::new(AtomicUsize::new(0));
    let first = {
        let (a, request, runs) = (a.clone(), request.clone(), runs.clone());
        tokio::spawn(async move {
            a.get_or_compute(&request, None, || {
                counted(&runs, Duration::from_millis(1200))
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = b
        .get_or_compute(&request, None, || counted(&runs, Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(first.await.unwrap().unwrap().value, json!({"run": 1}));
    assert_eq!(second.value, json!({"run": 1}));
    assert_eq!(second.origin, Origin::Redis);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Nobody waits past the wait: a lease held (by a process that is alive but slow, or dead with a
/// long TTL) makes a waiter compute itself after `lease_wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_waits_past_the_wait() {
    let stack = Stack::start();
    let mut admin = stack.admin().await;
    let cache =
        stack.cache_with(CacheOptions::default().with_lease_wait(Duration::from_millis(500)));
    let request = AiRequest::new("qa", "a stuck holder");
    let _: () = redis::cmd("SET")
        .arg(lease_key(&cache, &request))
        .arg("0123456789abcdef0123456789abcdef")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let answer = cache
        .get_or_compute(&request, None, || counted(&runs, Duration::ZERO))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.origin, Origin::Computed);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // The foreign lease is untouched (only its holder may release it).
    let held: Option<String> = redis::cmd("GET")
        .arg(lease_key(&cache, &request))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(held.as_deref(), Some("0123456789abcdef0123456789abcdef"));
}

/// Fail safe: with Redis down nobody waits for a lease; the computation runs locally. A waiter
/// whose Redis dies while it waits computes at once instead of waiting out `lease_wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_computes_locally() {
    let stack = Stack::start();
    let development = || {
        CacheBuilder::new(env("development"))
            .options(
                CacheOptions::default()
                    .with_lease_wait(Duration::from_secs(30))
                    .with_lease_ttl(Duration::from_secs(30)),
            )
            .keyring(stack.keyring())
    };
    let dead = development()
        .redis(
            RedisConfig::new(format!(
                "redis://127.0.0.1:{}/0",
                sealcache_testkit::free_port()
            ))
            .timeouts(Duration::from_millis(200), Duration::from_millis(200)),
        )
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let answer = dead
        .get_or_compute(&AiRequest::new("qa", "no redis"), None, || {
            counted(&runs, Duration::ZERO)
        })
        .await
        .unwrap();
    assert_eq!(answer.origin, Origin::Computed);
    assert_eq!(answer.ttl_remaining, None, "not stored");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A waiter whose Redis dies mid-wait.
    let mut stack = stack;
    let cache = CacheBuilder::new(env("production"))
        .options(
            CacheOptions::default()
                .with_lease_wait(Duration::from_secs(30))
                .with_l1_capacity(0),
        )
        .keyring(stack.keyring())
        .redis(
            stack
                .redis_config("cache_app", sealcache_config_gen::layout::APP_PASSWORD)
                .timeouts(Duration::from_millis(300), Duration::from_millis(300)),
        )
        .build()
        .unwrap();
    let request = AiRequest::new("qa", "redis dies while waiting");
    let mut admin = stack.admin().await;
    let _: () = redis::cmd("SET")
        .arg(lease_key(&cache, &request))
        .arg("0123456789abcdef0123456789abcdef")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let (cache, request, runs) = (cache.clone(), request.clone(), runs.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&request, None, || counted(&runs, Duration::ZERO))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "it waits while Redis is up");
    stack.server.kill();
    let killed = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter hung on a dead Redis")
        .unwrap()
        .unwrap();
    assert_eq!(answer.origin, Origin::Computed);
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "computed {:?} after Redis died",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_and_no_cache() {
    let stack = Stack::start();
    // With L1 (the default) and without: the age is known in both tiers.
    for options in [
        CacheOptions::default(),
        CacheOptions::default().with_l1_capacity(0),
    ] {
        let cache = stack.cache_with(options);
        let request = AiRequest::new("qa", format!("aging {}", cache.l1_entries()));
        cache.set(&request, &json!({"v": 1}), None).await.unwrap();
        let young = LookupOptions::default().max_age(Duration::from_secs(1));
        for _ in 0..2 {
            // The second read is an L1 hit when L1 is on.
            match cache.lookup_or_lease(&request, young).await.unwrap() {
                LookupOutcome::Hit(hit) => {
                    assert_eq!(hit.json_bytes(), br#"{"v":1}"#);
                    assert!(hit.age().unwrap() < Duration::from_secs(1));
                }
                other => panic!("{other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            cache.lookup_or_lease(&request, young).await.unwrap(),
            LookupOutcome::Miss,
            "older than max_age"
        );
        let older = LookupOptions::default().max_age(Duration::from_secs(60));
        assert!(matches!(
            cache.lookup_or_lease(&request, older).await.unwrap(),
            LookupOutcome::Hit(_)
        ));
        assert!(cache.get(&request).await.unwrap().is_some());
        // A miss under max_age takes the lease when asked.
        let leased = young.lease(Duration::from_secs(5));
        let LookupOutcome::Lease(lease) = cache.lookup_or_lease(&request, leased).await.unwrap()
        else {
            panic!("a too-old entry is a miss, and the miss takes the lease");
        };
        assert!(cache.release_lease(lease.token()).await.unwrap());

        // no_cache: the entry is there, yet the caller gets the lease to compute afresh.
        let fresh = LookupOptions::default()
            .no_cache(true)
            .lease(Duration::from_secs(5));
        let LookupOutcome::Lease(lease) = cache.lookup_or_lease(&request, fresh).await.unwrap()
        else {
            panic!("no_cache skips the lookup");
        };
        // A second no_cache caller waits for an entry stored after it arrived: the old one is
        // not it; the holder's new one is.
        let waiter = {
            let (cache, request) = (cache.clone(), request.clone());
            tokio::spawn(async move {
                cache
                    .lookup_or_lease(&request, fresh.wait(Duration::from_secs(5)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        cache.check_lease(&request, lease.token()).unwrap();
        cache.set(&request, &json!({"v": 2}), None).await.unwrap();
        assert!(cache.release_lease(lease.token()).await.unwrap());
        match waiter.await.unwrap().unwrap() {
            LookupOutcome::Hit(hit) => assert_eq!(hit.json_bytes(), br#"{"v":2}"#),
            other => panic!("{other:?}"),
        }
        // An entry stored in the very millisecond a no_cache caller arrives is not fresh to it:
        // right after each store the caller still gets the lease (the old code served the entry
        // stored in its own millisecond, most of the time).
        for i in 0..50 {
            cache.set(&request, &json!({"v": i}), None).await.unwrap();
            match cache.lookup_or_lease(&request, fresh).await.unwrap() {
                LookupOutcome::Lease(lease) => {
                    assert!(cache.release_lease(lease.token()).await.unwrap());
                }
                other => panic!("round {i}: {other:?}"),
            }
        }
    }

    // An entry of unknown age (written before the store time was recorded) is a miss under
    // max_age, and a hit without. Sealed under the keyring as older writers and shared entries
    // are: read through the shared view (an owner's entry is sealed under its data key).
    let cache = stack.cache().shared();
    let request = AiRequest::new("qa", "written by an older replica");
    let key = cache.key(&request).unwrap();
    let mut v1 = vec![0u8];
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 60_000;
    v1.extend_from_slice(&expires.to_be_bytes());
    v1.extend_from_slice(br#"{"old":true}"#);
    let sealed = sealcache_codec::ValueCodec::new(&stack.keyring())
        .seal(&sealcache_codec::SealContext::new("ai_cache", &key), &v1)
        .unwrap();
    let mut admin = stack.admin().await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(sealed.as_bytes())
        .arg("PX")
        .arg(60_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let hit = cache.get(&request).await.unwrap().unwrap();
    assert_eq!(hit.json_bytes(), br#"{"old":true}"#);
    assert_eq!(hit.age(), None);
    assert_eq!(
        cache
            .lookup_or_lease(
                &request,
                LookupOptions::default().max_age(Duration::from_secs(3600))
            )
            .await
            .unwrap(),
        LookupOutcome::Miss
    );
}

/// Lease tokens name leases strictly: another request's token is refused, a forged secret
/// releases nothing, and a released lease is taken by the next caller at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_tokens_release_only_their_own_lease() {
    let stack = Stack::start();
    let cache = stack.cache();
    let request = AiRequest::new("qa", "tokens");
    let leased = LookupOptions::default().lease(Duration::from_secs(30));
    let LookupOutcome::Lease(lease) = cache.lookup_or_lease(&request, leased).await.unwrap() else {
        panic!("the first caller gets the lease");
    };
    assert_eq!(lease.expires_in(), Duration::from_secs(30));
    // Held: the next caller does not get it (and does not wait without wait).
    assert_eq!(
        cache.lookup_or_lease(&request, leased).await.unwrap(),
        LookupOutcome::Miss
    );
    let other = AiRequest::new("qa", "another request");
    assert!(matches!(
        cache.check_lease(&other, lease.token()),
        Err(sealcache::Error::LeaseNotForRequest)
    ));
    // A forged secret for the same entry releases nothing.
    let text = lease.token().as_str();
    let forged = format!("{}{}", &text[..text.len() - 32], "f".repeat(32));
    let forged = sealcache::LeaseToken::parse(&forged).unwrap();
    assert!(!cache.release_lease(&forged).await.unwrap());
    assert_eq!(
        cache.lookup_or_lease(&request, leased).await.unwrap(),
        LookupOutcome::Miss
    );
    // Another tenant's view (or the shared view) holding the token releases nothing, cannot
    // store with it and cannot publish on it: a token acts only for the tenant that took it.
    let globex = cache.tenant("globex").unwrap();
    for other in [&globex, &cache.shared()] {
        assert!(!other.release_lease(lease.token()).await.unwrap());
        assert!(matches!(
            other.check_lease(&request, lease.token()),
            Err(sealcache::Error::LeaseNotForRequest)
        ));
        assert!(matches!(
            other
                .append_live_events(lease.token(), 0, &[sealcache::SseEvent::new("x")])
                .await,
            Err(sealcache::Error::LeaseLost)
        ));
    }
    assert_eq!(
        cache.lookup_or_lease(&request, leased).await.unwrap(),
        LookupOutcome::Miss,
        "still held"
    );
    assert!(cache.release_lease(lease.token()).await.unwrap());
    assert!(!cache.release_lease(lease.token()).await.unwrap(), "once");
    assert!(matches!(
        cache.lookup_or_lease(&request, leased).await.unwrap(),
        LookupOutcome::Lease(_)
    ));
}

/// Wait latency: from the holder's store returning to a waiter in the other replica answering,
/// `rounds` times; the sorted latencies (printed: the figures in docs/benchmarks.md).
#[allow(clippy::print_stderr)] // the measurement is the output
async fn wait_latencies(
    holder: &AiResponseCache,
    waiter: &AiResponseCache,
    label: &str,
    rounds: usize,
) -> Vec<Duration> {
    let mut took = Vec::new();
    for i in 0..rounds {
        let request = AiRequest::new("qa", format!("wake {label} {i}"));
        let leased = LookupOptions::default().lease(Duration::from_secs(10));
        let LookupOutcome::Lease(lease) = holder.lookup_or_lease(&request, leased).await.unwrap()
        else {
            panic!("the holder gets the lease");
        };
        let waiting = {
            let (waiter, request) = (waiter.clone(), request.clone());
            tokio::spawn(async move {
                let outcome = waiter
                    .lookup_or_lease(
                        &request,
                        LookupOptions::default().wait(Duration::from_secs(5)),
                    )
                    .await
                    .unwrap();
                (outcome, Instant::now())
            })
        };
        // The waiter is past its first look (and asleep) when the entry arrives; a varying
        // offset so that the poll phase is not always the same.
        tokio::time::sleep(Duration::from_millis(60 + (i as u64 * 7) % 25)).await;
        holder.set(&request, &json!({"i": i}), None).await.unwrap();
        let stored = Instant::now();
        let (outcome, answered) = waiting.await.unwrap();
        assert!(matches!(outcome, LookupOutcome::Hit(_)), "{outcome:?}");
        holder.release_lease(lease.token()).await.unwrap();
        took.push(answered.saturating_duration_since(stored));
    }
    took.sort();
    eprintln!(
        "wait latency ({label}, {rounds} rounds): p50 {:?}, max {:?}",
        took[rounds / 2],
        took[rounds - 1]
    );
    took
}

/// A waiter is woken by the coherence channel when the holder in another replica stores (or
/// releases), not by its next poll: with a 1 s poll it still answers within a few milliseconds,
/// while a cache without the channel (L1 off) waits for its poll. Prints the measured latencies
/// at the default 25 ms poll (docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_are_woken_by_the_coherence_channel() {
    let stack = Stack::start();
    let slow_poll = CacheOptions::default().with_lease_poll(Duration::from_secs(1));
    let (a, b) = (
        stack.cache_with(slow_poll.clone()),
        stack.cache_with(slow_poll),
    );
    // The subscriptions are confirmed (a first lookup starts them).
    for cache in [&a, &b] {
        let _ = cache.get(&AiRequest::new("qa", "warm")).await.unwrap();
    }
    let woken = wait_latencies(&a, &b, "woken, 1 s poll", 5).await;
    assert!(
        woken[4] < Duration::from_millis(300),
        "a store wakes the waiter: {woken:?}"
    );
    // A released lease wakes the waiter too: it takes the lease over at once.
    let request = AiRequest::new("qa", "wake on release");
    let leased = LookupOptions::default().lease(Duration::from_secs(10));
    let LookupOutcome::Lease(lease) = a.lookup_or_lease(&request, leased).await.unwrap() else {
        panic!("A gets the lease");
    };
    let waiting = {
        let (b, request) = (b.clone(), request.clone());
        tokio::spawn(async move {
            let outcome = b
                .lookup_or_lease(&request, leased.wait(Duration::from_secs(5)))
                .await
                .unwrap();
            (outcome, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(a.release_lease(lease.token()).await.unwrap());
    let released = Instant::now();
    let (outcome, answered) = waiting.await.unwrap();
    assert!(matches!(outcome, LookupOutcome::Lease(_)), "{outcome:?}");
    assert!(
        answered - released < Duration::from_millis(300),
        "taken over {:?} after the release",
        answered - released
    );

    // The figures at the default poll: with the channel, and without it (L1 off: no channel).
    let (a, b) = (stack.cache(), stack.cache());
    for cache in [&a, &b] {
        let _ = cache.get(&AiRequest::new("qa", "warm")).await.unwrap();
    }
    let woken = wait_latencies(&a, &b, "woken, 25 ms poll", 21).await;
    let off = CacheOptions::default().with_l1_capacity(0);
    let (a, b) = (stack.cache_with(off.clone()), stack.cache_with(off));
    let polled = wait_latencies(&a, &b, "polled only, 25 ms poll", 21).await;
    assert!(woken[10] < polled[10], "{woken:?} vs {polled:?}");
}

/// A `no_cache` lookup makes no counted lookup first, so its first look counts a value that fails
/// to open (once, not on every poll); before, that read used a quiet observer and the tampering
/// went uncounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_cache_lookup_counts_a_tampered_entry_once() {
    let stack = Stack::start();
    let cache = stack.cache_with(CacheOptions::default().with_l1_capacity(0));
    let request = AiRequest::new("qa", "tampered under no_cache");
    cache.set(&request, &json!({"v": 1}), None).await.unwrap();
    let key = cache.key(&request).unwrap();
    let mut admin = stack.admin().await;
    let mut stored: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    let last = stored.len() - 1;
    stored[last] ^= 0x01;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&stored)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let failed = || {
        cache
            .monitor()
            .security_summary()
            .events_by_type
            .get("decrypt_failed")
            .copied()
            .unwrap_or(0)
    };
    let before = failed();
    let outcome = cache
        .lookup_or_lease(
            &request,
            LookupOptions::default()
                .no_cache(true)
                .lease(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let LookupOutcome::Lease(lease) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(failed(), before + 1, "counted once");
    assert!(cache.release_lease(lease.token()).await.unwrap());
}
