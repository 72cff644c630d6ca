//! The cache against a real redis-server with the generated ACL file, TLS and client certificates.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Stack, corpus, env};
use sealcache::{AiRequest, CacheBuilder, CacheOptions, Error, Requirement, SecurityLevel};
use sealcache_codec::{FIRST_KEY_ID, Keyring, SecretKey};
use sealcache_config_gen::layout;
use sealcache_monitor::Tier;

fn request(op: &str, i: usize) -> AiRequest {
    AiRequest::new(
        op,
        format!("user text number {i}: please summarise the attached report"),
    )
    .model("gpt-4o-mini")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_document_round_trips_from_redis_and_from_l1() {
    let stack = Stack::start();
    let cache = stack.cache();
    let docs = corpus();
    for (i, (op, doc)) in docs.iter().enumerate() {
        cache.set(&request(op, i), doc, None).await.unwrap();
    }
    // A second cache (fresh L1) reads from Redis; the first reads from its L1.
    let cold = stack.cache();
    for (i, (op, doc)) in docs.iter().enumerate() {
        let from_redis = cold
            .get(&request(op, i))
            .await
            .unwrap()
            .expect("hit from Redis");
        assert_eq!(from_redis.tier(), Tier::Redis);
        assert_eq!(&from_redis.parse::<serde_json::Value>().unwrap(), doc);
        let from_l1 = cold
            .get(&request(op, i))
            .await
            .unwrap()
            .expect("hit from L1");
        assert_eq!(from_l1.tier(), Tier::L1);
        assert_eq!(from_l1.json_bytes(), from_redis.json_bytes());
    }
    let stats = cold.stats();
    assert_eq!(stats.redis.hits, 220);
    assert_eq!(stats.l1.hits, 220);
    assert_eq!(
        stats.lookups.misses, 0,
        "one request, one lookup: an L1 miss is not a miss"
    );
    assert!((stats.hit_rate - 1.0).abs() < 1e-12, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_only_sealed_bytes_under_keys_without_text() {
    let stack = Stack::start();
    let cache = stack.cache();
    let mut admin = stack.admin().await;
    let (op, doc) = corpus()
        .into_iter()
        .find(|(_, d)| d["size_class"] == "medium")
        .unwrap();
    let req = AiRequest::new(&op, "the-secret-user-question-text");
    cache.set(&req, &doc, None).await.unwrap();
    let key = cache.key(&req).unwrap();
    assert!(!key.contains("secret") && key.starts_with(&format!("ai_cache:v3:{op}:")));
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut admin)
        .await
        .unwrap();
    // The default tenant's values are sealed under its data key: the data-key class byte, the
    // 49-byte header (tenant tag, subject tag, data-key id), then an envelope v1.
    assert_eq!(raw[0], 0x10, "data-key class byte first");
    assert_eq!(
        raw[49], 0x01,
        "envelope version byte after the data-key header"
    );
    let plain = serde_json::to_vec(&doc).unwrap();
    for window in plain.windows(32) {
        assert!(
            !raw.windows(32).any(|w| w == window),
            "a 32-byte window of plaintext is in Redis"
        );
    }
    let keys: Vec<String> = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(1000)
        .query_async::<(u64, Vec<String>)>(&mut admin)
        .await
        .unwrap()
        .1;
    assert!(keys.iter().all(|k| !k.contains("secret")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_flipped_and_legacy_values_are_misses_with_events() {
    let stack = Stack::start();
    let cache = stack.cache_with(CacheOptions::default().with_l1_capacity(0));
    let mut admin = stack.admin().await;
    let (a, b) = (
        AiRequest::new("qa", "question A"),
        AiRequest::new("qa", "question B"),
    );
    cache
        .set(&a, &serde_json::json!({"answer": "A"}), None)
        .await
        .unwrap();
    cache
        .set(&b, &serde_json::json!({"answer": "B"}), None)
        .await
        .unwrap();
    let (ka, kb) = (cache.key(&a).unwrap(), cache.key(&b).unwrap());

    // COPY A's value onto B's key: B is a miss and a decrypt_failed event, never A's answer.
    let _: i64 = redis::cmd("COPY")
        .arg(&ka)
        .arg(&kb)
        .arg("REPLACE")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(cache.get(&b).await.unwrap().is_none());
    let security = cache.monitor().security_summary();
    assert_eq!(security.events_by_type["decrypt_failed"], 1);

    // A flipped byte: likewise.
    let mut raw: Vec<u8> = redis::cmd("GET")
        .arg(&ka)
        .query_async(&mut admin)
        .await
        .unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(&ka)
        .arg(&raw)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(cache.get(&a).await.unwrap().is_none());
    assert_eq!(
        cache.monitor().security_summary().events_by_type["decrypt_failed"],
        2
    );

    // Plain JSON written by hand: a miss (legacy rejected)...
    let legacy = AiRequest::new("qa", "legacy");
    let kl = cache.key(&legacy).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&kl)
        .arg(r#"{"answer":"stored in the clear"}"#)
        .arg("EX")
        .arg(60)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(cache.get(&legacy).await.unwrap().is_none());
    assert_eq!(
        cache.monitor().security_summary().events_by_type["legacy_rejected"],
        1
    );
    // ...unless the migration window is open.
    let migrating = CacheBuilder::new(env("production"))
        .options(CacheOptions::default().with_l1_capacity(0))
        .dangerous()
        .accept_legacy_plaintext_until(std::time::SystemTime::now() + Duration::from_secs(3600))
        .done()
        .keyring(stack.keyring())
        .redis(stack.redis_config("cache_app", layout::APP_PASSWORD))
        .build()
        .unwrap();
    let got = migrating
        .get(&legacy)
        .await
        .unwrap()
        .expect("legacy read inside the window");
    assert_eq!(
        got.parse::<serde_json::Value>().unwrap()["answer"],
        "stored in the clear"
    );
    assert!(migrating.monitor().security_summary().events_by_type["override_used"] >= 1);
    // Never an error to the caller, never the wrong answer.
    assert_eq!(cache.stats().lookups.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_or_foreign_key_is_a_miss_with_its_own_event() {
    let stack = Stack::start();
    let ring = stack.keyring();
    let with_ring = |keyring: Keyring| {
        CacheBuilder::new(env("production"))
            .options(CacheOptions::default().with_l1_capacity(0))
            .keyring(keyring)
            .redis(stack.redis_config("cache_app", layout::APP_PASSWORD))
            .build()
            .unwrap()
    };
    let request = AiRequest::new("qa", "sealed under key 1");
    let writer = with_ring(ring.clone());
    writer
        .set(&request, &serde_json::json!({"answer": "one"}), None)
        .await
        .unwrap();

    // Mid-rotation the old key still opens the value.
    let rotated = ring.rotate(SecretKey::from_bytes([7; 32]));
    assert!(
        with_ring(rotated.clone())
            .get(&request)
            .await
            .unwrap()
            .is_some()
    );

    // Key 1 retired: a miss counted as unknown_key_id.
    let retired = with_ring(rotated.without_key(FIRST_KEY_ID).unwrap());
    assert!(retired.get(&request).await.unwrap().is_none());
    let events = retired.monitor().security_summary().events_by_type;
    assert_eq!(events["unknown_key_id"], 1);
    assert_eq!(events["decrypt_failed"], 0);

    // Same id and key names, different key bytes: a miss counted as decrypt_failed.
    let foreign = with_ring(
        Keyring::from_parts(
            (FIRST_KEY_ID, SecretKey::from_bytes([9; 32])),
            Vec::new(),
            ring.name_secret().clone(),
        )
        .unwrap(),
    );
    assert!(foreign.get(&request).await.unwrap().is_none());
    let events = foreign.monitor().security_summary().events_by_type;
    assert_eq!(events["decrypt_failed"], 1);
    assert_eq!(events["unknown_key_id"], 0);
    assert_eq!(
        retired.stats().lookups.errors + foreign.stats().lookups.errors,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pttl_follows_the_operation_and_l1_never_outlives_redis() {
    let stack = Stack::start();
    let cache = stack.cache();
    let mut admin = stack.admin().await;
    for (op, secs) in [
        ("summarize", 7200u64),
        ("sentiment", 3600),
        ("key_points", 5400),
        ("questions", 4800),
        ("qa", 3600),
        ("translate", 3600),
    ] {
        let req = AiRequest::new(op, "text");
        let used = cache
            .set(&req, &serde_json::json!({"r": 1}), None)
            .await
            .unwrap();
        assert_eq!(used, Duration::from_secs(secs));
        let pttl: i64 = redis::cmd("PTTL")
            .arg(cache.key(&req).unwrap())
            .query_async(&mut admin)
            .await
            .unwrap();
        let expected = i64::try_from(secs * 1000).unwrap();
        assert!(
            pttl <= expected && pttl > expected - 5000,
            "{op}: PTTL {pttl}"
        );
    }
    // A short-lived entry: read into L1 from Redis, then both expire together.
    let short = AiRequest::new("qa", "short-lived");
    cache
        .set(
            &short,
            &serde_json::json!({"r": 2}),
            Some(Duration::from_millis(800)),
        )
        .await
        .unwrap();
    let other = stack.cache();
    let first = other.get(&short).await.unwrap().unwrap();
    assert_eq!(first.tier(), Tier::Redis);
    assert!(first.ttl_remaining().unwrap() <= Duration::from_millis(800));
    assert_eq!(other.get(&short).await.unwrap().unwrap().tier(), Tier::L1);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        other.get(&short).await.unwrap().is_none(),
        "the L1 copy outlived the Redis entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_operation_removes_exactly_one_operation_with_scan() {
    let stack = Stack::start();
    let cache = Arc::new(stack.cache());
    let mut tasks = Vec::new();
    for chunk in 0..20 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1000 {
                let n = chunk * 1000 + i;
                let op = ["summarize", "qa", "sentiment"][n % 3];
                cache
                    .set(
                        &AiRequest::new(op, format!("doc {n}")),
                        &serde_json::json!({"n": n}),
                        None,
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let removed = cache.invalidate_operation("qa").await.unwrap();
    assert_eq!(removed, 6667);
    let mut admin = stack.admin().await;
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(&mut admin).await.unwrap();
    // What is left: the other operations' entries and the default tenant's data-key record.
    assert_eq!(dbsize, 20_000 - 6667 + 1);
    assert!(
        cache
            .get(&AiRequest::new("qa", "doc 1"))
            .await
            .unwrap()
            .is_none(),
        "L1 was cleared too"
    );
    assert!(
        cache
            .get(&AiRequest::new("summarize", "doc 0"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        cache.invalidate_operation("qa*").await,
        Err(Error::InvalidOperation)
    ));
    assert!(matches!(
        cache.clear("yes").await,
        Err(Error::ClearNotConfirmed)
    ));
    // The entries left and the data-key record (the tombstones, none here, would stay).
    assert_eq!(
        cache.clear("invalidate-all").await.unwrap(),
        20_000 - 6667 + 1
    );
    let log: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        log.is_empty(),
        "the cache ran a command its ACL user may not run: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_get_or_compute_runs_the_computation_once() {
    let stack = Stack::start();
    let cache = Arc::new(stack.cache());
    let runs = Arc::new(AtomicUsize::new(0));
    let req = AiRequest::new("summarize", "expensive");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (cache, runs, req) = (cache.clone(), runs.clone(), req.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_compute(&req, None, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, std::io::Error>(serde_json::json!({"summary": "computed once"}))
                })
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.value["summary"], "computed once");
        assert_eq!(got.origin, sealcache::Origin::Computed);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(cache.stats().singleflight_coalesced >= 1);
    // A failing computation is reported and not stored.
    let failing = AiRequest::new("qa", "fails");
    let err = cache
        .get_or_compute(&failing, None, || async {
            Err::<serde_json::Value, _>("model timeout")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, sealcache::ComputeError::Compute(e) if *e == "model timeout"));
    assert!(cache.get(&failing).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_status_is_observed_production_ready() {
    let stack = Stack::start();
    let cache = stack.cache();
    let status = cache.security_status().await;
    assert_eq!(status.authenticated_user.as_deref(), Some("cache_app"));
    assert!(status.tls_enabled, "{status:?}");
    assert_eq!(status.default_user_disabled, Some(true), "{status:?}");
    assert!(status.certificate_expires_in_days.unwrap() > 390);
    assert_eq!(status.primary_key_id, 1);
    assert_eq!(
        status.security_level,
        SecurityLevel::ProductionReady,
        "{:#?}",
        status.checks
    );
    assert!(status.checks.iter().all(|c| c.passed));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["security_level"], "production_ready");
    let shown = format!("{json} {status:?} {cache:?}");
    for secret in [
        stack.secret(layout::APP_PASSWORD),
        stack.secret(layout::ADMIN_PASSWORD),
    ] {
        assert!(
            !shown.contains(&secret),
            "a password appears in the status or Debug output"
        );
    }
}

#[test]
fn the_strict_policy_names_every_gap() {
    let stack_free = sealcache::RedisConfig::new("redis://127.0.0.1:6379/0");
    let err = CacheBuilder::new(env("production"))
        .no_keyring()
        .redis(stack_free.clone())
        .build()
        .unwrap_err();
    let Error::Policy(violation) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        violation.unmet,
        vec![
            Requirement::Tls,
            Requirement::AclUser,
            Requirement::Password,
            Requirement::EncryptionKey
        ]
    );
    let text = err.to_string();
    for word in ["TLS", "ACL user", "password", "encryption key"] {
        assert!(text.contains(word), "{text}");
    }
    for environment in ["staging", "banana-unknown"] {
        assert!(
            CacheBuilder::new(env(environment))
                .no_keyring()
                .redis(stack_free.clone())
                .build()
                .is_err()
        );
    }
    // `default` is not an ACL user.
    let default_user =
        sealcache::RedisConfig::new("rediss://127.0.0.1:6379/0").acl_user("default", "x");
    let err = CacheBuilder::new(env("production"))
        .keyring(sealcache_codec::Keyring::generate().unwrap())
        .redis(default_user)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Policy(v) if v.unmet == vec![Requirement::AclUser]));
    // The explicit override builds, and counts it.
    let dev = sealcache_env_detect::EnvironmentDetector::new(
        sealcache_env_detect::MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("REDIS_SECURITY_MODE", "development"),
    )
    .detect(sealcache_env_detect::FeatureContext::SecurityEnforcement);
    let cache = CacheBuilder::new(dev)
        .no_keyring()
        .redis(stack_free)
        .build()
        .unwrap();
    assert_eq!(
        cache.monitor().security_summary().events_by_type["override_used"],
        1
    );
    // Credentials in the URL are refused outright.
    let url_creds = sealcache::RedisConfig::new("rediss://cache_app:hunter2@127.0.0.1:6379/0")
        .acl_user("cache_app", "x");
    let err = CacheBuilder::new(env("production"))
        .keyring(sealcache_codec::Keyring::generate().unwrap())
        .redis(url_creds)
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
}

/// A keyring with a trained dictionary: small answers are stored smaller in Redis and read back
/// byte for byte; a cache whose keyring lacks that dictionary misses them with an
/// `unknown_key_id` event, never a wrong answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyring_dictionary_shrinks_stored_values_and_is_needed_to_read_them() {
    let stack = Stack::start();
    let docs: Vec<serde_json::Value> = corpus()
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| v["size_class"] == "small")
        .collect();
    let samples: Vec<Vec<u8>> = docs
        .iter()
        .step_by(2)
        .map(|d| d.to_string().into_bytes())
        .collect();
    let dictionary = sealcache_codec::Dictionary::from_bytes(
        zstd::dict::from_samples(&samples, 16 * 1024).unwrap(),
    )
    .unwrap();
    let ring = stack.keyring();
    let with_dictionary = ring.with_dictionary(dictionary, true).unwrap();
    let build = |keyring: Keyring| {
        CacheBuilder::new(env("production"))
            .options(CacheOptions::default().with_l1_capacity(0))
            .keyring(keyring)
            .redis(stack.redis_config("cache_app", layout::APP_PASSWORD))
            .build()
            .unwrap()
    };
    let (plain, dict) = (build(ring.clone()), build(with_dictionary));
    let mut admin = stack.admin().await;
    let (mut size_plain, mut size_dict) = (0usize, 0usize);
    for (i, doc) in docs.iter().skip(1).step_by(2).enumerate() {
        let (a, b) = (
            AiRequest::new("qa", format!("plain {i}")),
            AiRequest::new("qa", format!("dict {i}")),
        );
        plain.set(&a, doc, None).await.unwrap();
        dict.set(&b, doc, None).await.unwrap();
        for (req, total) in [(&a, &mut size_plain), (&b, &mut size_dict)] {
            let stored: Vec<u8> = redis::cmd("GET")
                .arg(plain.key(req).unwrap())
                .query_async(&mut admin)
                .await
                .unwrap();
            *total += stored.len();
        }
        let back: serde_json::Value = dict.get(&b).await.unwrap().unwrap().parse().unwrap();
        assert_eq!(&back, doc);
        // The dictionary codec still reads values sealed without a dictionary.
        assert!(dict.get(&a).await.unwrap().is_some());
        // Without the dictionary: a miss and an event.
        assert!(plain.get(&b).await.unwrap().is_none());
    }
    assert!(
        size_dict < size_plain,
        "stored with a dictionary {size_dict} B, without {size_plain} B"
    );
    assert!(plain.monitor().security_summary().events_by_type["unknown_key_id"] >= 1);
}
