//! Tenants, subjects and erasure on a real TLS + mTLS + ACL redis-server (and a TLS cluster): two
//! owners never share an entry; no tenant or subject id reaches Redis; erasing a subject makes its
//! entries miss in every process within a second while another subject's stay; copies written back
//! (`DUMP`/`RESTORE`) open nothing and are counted; after a rotation and retirement a restored
//! pre-erasure data-key record opens nothing either.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Stack, env};
use sealcache::{
    AiRequest, AiResponseCache, CacheBuilder, CacheOptions, Keyring, KeyringReload, RedisConfig,
    SecretKey,
};
use sealcache_testkit::cluster::{ClusterOptions, RedisCluster};

const TENANT_A: &str = "tenant-acme-7f3a";
const TENANT_B: &str = "tenant-globex-91c2";
const ANN: &str = "ann.subject@example.com";
const BOB: &str = "bob.subject@example.com";

fn json(text: &str) -> sealcache::Bytes {
    sealcache::Bytes::copy_from_slice(text.as_bytes())
}

fn events(cache: &AiResponseCache, kind: &str) -> u64 {
    cache
        .monitor()
        .security_summary()
        .events_by_type
        .get(kind)
        .copied()
        .unwrap_or(0)
}

/// Polls `read` until it is true, for at most `limit`; how long it took.
async fn within<F, Fut>(limit: Duration, mut read: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if read().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every key and (string) value in the database, as bytes.
async fn dump_all(admin: &mut redis::aio::MultiplexedConnection) -> Vec<(String, Vec<u8>)> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(admin)
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(admin)
            .await
            .unwrap();
        let value: Vec<u8> = if kind == "string" {
            redis::cmd("GET")
                .arg(&key)
                .query_async(admin)
                .await
                .unwrap()
        } else {
            Vec::new()
        };
        out.push((key, value));
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

async fn two_owners_never_share(cache: &AiResponseCache) {
    let request = AiRequest::new("qa", "the same question from two customers");
    let a = cache.tenant(TENANT_A).unwrap();
    let b = cache.tenant(TENANT_B).unwrap();
    a.set_json(&request, json(r#"{"answer":"acme's"}"#), None)
        .await
        .unwrap();
    assert!(b.get(&request).await.unwrap().is_none(), "tenant B saw A's");
    assert!(
        cache.get(&request).await.unwrap().is_none(),
        "default saw A's"
    );
    b.set_json(&request, json(r#"{"answer":"globex's"}"#), None)
        .await
        .unwrap();
    let got_a = a.get(&request).await.unwrap().unwrap();
    let got_b = b.get(&request).await.unwrap().unwrap();
    assert_eq!(got_a.json_bytes(), br#"{"answer":"acme's"}"#);
    assert_eq!(got_b.json_bytes(), br#"{"answer":"globex's"}"#);
    assert_ne!(a.key(&request).unwrap(), b.key(&request).unwrap());

    // Two subjects of one tenant, and the tenant without a subject.
    let ann = a.subject(ANN).unwrap();
    let bob = a.subject(BOB).unwrap();
    ann.set_json(&request, json(r#"{"answer":"ann's"}"#), None)
        .await
        .unwrap();
    assert!(bob.get(&request).await.unwrap().is_none());
    assert_eq!(
        a.get(&request).await.unwrap().unwrap().json_bytes(),
        br#"{"answer":"acme's"}"#
    );
    assert_eq!(
        ann.get(&request).await.unwrap().unwrap().json_bytes(),
        br#"{"answer":"ann's"}"#
    );
    // The same tenant, scoped again, reads the same entries.
    let again = cache.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    assert_eq!(
        again.get(&request).await.unwrap().unwrap().json_bytes(),
        br#"{"answer":"ann's"}"#
    );
    // Shared entries: one across tenants, never with a subject.
    let shared = a.shared();
    shared
        .set_json(&request, json(r#"{"answer":"public"}"#), None)
        .await
        .unwrap();
    assert_eq!(
        b.shared()
            .get(&request)
            .await
            .unwrap()
            .unwrap()
            .json_bytes(),
        br#"{"answer":"public"}"#
    );
    assert!(matches!(
        shared.subject(ANN),
        Err(sealcache::Error::SharedWithSubject)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_and_two_subjects_never_share_an_entry_and_no_id_reaches_redis() {
    let stack = Stack::start();
    let cache = stack.cache();
    two_owners_never_share(&cache).await;
    // Streams too.
    let request = AiRequest::new("chat", "hello");
    let ann = cache.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    ann.set_events(&request, &[sealcache::SseEvent::new("hi ann")], None)
        .await
        .unwrap();
    assert!(
        cache
            .tenant(TENANT_A)
            .unwrap()
            .subject(BOB)
            .unwrap()
            .get_stream(&request)
            .await
            .unwrap()
            .is_none()
    );

    let mut admin = stack.admin().await;
    let all = dump_all(&mut admin).await;
    assert!(
        all.iter().any(|(k, _)| k.contains(":dk:")),
        "data-key records"
    );
    let mut sealed_under_data_keys = 0;
    for (key, value) in &all {
        for id in [TENANT_A, TENANT_B, ANN, BOB, "acme", "globex", "ann", "bob"] {
            assert!(!contains(key.as_bytes(), id), "{id} in key {key}");
        }
        // (Short ids are left out of the sealed bytes: random bytes hold them by chance.)
        for id in [TENANT_A, TENANT_B, ANN, BOB] {
            assert!(!contains(value, id), "{id} in the value of {key}");
        }
        if key.contains(":v3:") && value.first() == Some(&0x10) {
            sealed_under_data_keys += 1;
        }
    }
    // Every tenant's entry (not the shared one) is sealed under a data key.
    assert_eq!(sealed_under_data_keys, 4, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_erasure_misses_in_every_process_within_a_second_and_restored_copies_open_nothing()
{
    let stack = Stack::start();
    let one = stack.cache();
    let two = stack.cache();
    let request = AiRequest::new("qa", "what did I tell you about my health?");
    let ann1 = one.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let bob1 = one.tenant(TENANT_A).unwrap().subject(BOB).unwrap();
    ann1.set_json(&request, json(r#"{"answer":"ann's secret"}"#), None)
        .await
        .unwrap();
    bob1.set_json(&request, json(r#"{"answer":"bob's"}"#), None)
        .await
        .unwrap();
    let ann2 = two.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let bob2 = two.tenant(TENANT_A).unwrap().subject(BOB).unwrap();
    // Both processes hold both entries in L1 (the second read of each is an L1 hit).
    for cache in [&ann1, &ann2, &bob1, &bob2] {
        assert!(cache.get(&request).await.unwrap().is_some());
        let hit = cache.get(&request).await.unwrap().unwrap();
        assert_eq!(hit.tier(), sealcache::Tier::L1);
    }
    let mut admin = stack.admin().await;
    let entry_key = ann1.key(&request).unwrap();
    let dumped_entry: Vec<u8> = redis::cmd("DUMP")
        .arg(&entry_key)
        .query_async(&mut admin)
        .await
        .unwrap();
    let records: Vec<String> = redis::cmd("KEYS")
        .arg("*:dk:*")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    let mut dumped_records = Vec::new();
    for record in &records {
        let bytes: Vec<u8> = redis::cmd("DUMP")
            .arg(record)
            .query_async(&mut admin)
            .await
            .unwrap();
        dumped_records.push((record.clone(), bytes));
    }
    assert_eq!(one.pending_erasures().await, Some(0));

    let erased = one
        .tenant(TENANT_A)
        .unwrap()
        .erase_subject(ANN)
        .await
        .unwrap();
    let id = erased.data_key_id.clone().expect("ann had a data key");
    assert_eq!(id.len(), 32);
    assert_eq!(erased.data_keys_destroyed, 1);
    assert_eq!(events(&one, "data_erased"), 1);
    // Here at once; in the other process within a second (the invalidation channel).
    assert!(ann1.get(&request).await.unwrap().is_none());
    let took = within(Duration::from_secs(1), || async {
        ann2.get(&request).await.unwrap().is_none()
    })
    .await;
    assert!(took.is_some(), "the other process still served ann's entry");
    for cache in [&bob1, &bob2] {
        assert_eq!(
            cache.get(&request).await.unwrap().unwrap().json_bytes(),
            br#"{"answer":"bob's"}"#
        );
    }
    assert_eq!(one.pending_erasures().await, Some(1));
    assert_eq!(one.security_status().await.pending_erasures, Some(1));
    let status = serde_json::to_value(two.security_status().await).unwrap();
    assert_eq!(status["pending_erasures"], 1, "{status:#}");

    // The sealed value written back: a miss, counted.
    let before = events(&two, "unknown_key_id");
    let _: () = redis::cmd("RESTORE")
        .arg(&entry_key)
        .arg(0)
        .arg(&dumped_entry)
        .arg("REPLACE")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(ann2.get(&request).await.unwrap().is_none());
    assert!(
        events(&two, "unknown_key_id") > before,
        "the restored copy was not counted"
    );
    // The data-key record written back as well (a snapshot taken before the erasure): its
    // tombstone refuses it, counted.
    for (record, bytes) in &dumped_records {
        let _: () = redis::cmd("RESTORE")
            .arg(record)
            .arg(0)
            .arg(bytes)
            .arg("REPLACE")
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let before = events(&two, "unknown_key_id");
    assert!(ann2.get(&request).await.unwrap().is_none());
    assert!(events(&two, "unknown_key_id") > before);
    // Bob is untouched by all of it; Ann can be cached again, under a new data key.
    assert!(bob2.get(&request).await.unwrap().is_some());
    ann2.set_json(&request, json(r#"{"answer":"new"}"#), None)
        .await
        .unwrap();
    assert_eq!(
        ann1.get(&request).await.unwrap().unwrap().json_bytes(),
        br#"{"answer":"new"}"#
    );
    let again = one
        .tenant(TENANT_A)
        .unwrap()
        .erase_subject(ANN)
        .await
        .unwrap();
    assert_ne!(again.data_key_id, Some(id));

    // The tenant's erasure destroys every data key of the tenant and no other tenant's.
    let other = one.tenant(TENANT_B).unwrap();
    other
        .set_json(&request, json(r#"{"answer":"globex"}"#), None)
        .await
        .unwrap();
    let tenant = one.tenant(TENANT_A).unwrap();
    tenant
        .set_json(&request, json(r#"{"answer":"acme"}"#), None)
        .await
        .unwrap();
    let erased = tenant.erase_tenant().await.unwrap();
    assert!(erased.data_key_id.is_some());
    assert!(erased.data_keys_destroyed >= 2, "{erased:?}");
    assert!(tenant.get(&request).await.unwrap().is_none());
    assert!(bob1.get(&request).await.unwrap().is_none());
    assert!(
        within(Duration::from_secs(1), || async {
            bob2.get(&request).await.unwrap().is_none()
        })
        .await
        .is_some()
    );
    assert!(other.get(&request).await.unwrap().is_some());
    // A clear keeps the tombstones.
    one.clear("invalidate-all").await.unwrap();
    let tombstones: Vec<String> = redis::cmd("KEYS")
        .arg("*:erased:*")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(tombstones.len() >= 3, "{tombstones:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_promote_and_retire_a_restored_pre_erasure_record_opens_nothing() {
    let stack = Stack::start();
    let first = stack.keyring();
    let cache = CacheBuilder::new(env("production"))
        .keyring(first.clone())
        .redis(stack.redis_config("cache_app", sealcache_config_gen::layout::APP_PASSWORD))
        .build()
        .unwrap();
    let request = AiRequest::new("qa", "rotate me");
    let ann = cache.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let bob = cache.tenant(TENANT_A).unwrap().subject(BOB).unwrap();
    ann.set_json(&request, json(r#"{"v":"ann"}"#), None)
        .await
        .unwrap();
    bob.set_json(&request, json(r#"{"v":"bob"}"#), None)
        .await
        .unwrap();
    let mut admin = stack.admin().await;
    let entry_key = ann.key(&request).unwrap();
    let dumper = admin.clone();
    let dump = |key: String| {
        let mut admin = dumper.clone();
        async move {
            let bytes: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut admin)
                .await
                .unwrap();
            (key, bytes)
        }
    };
    let entry = dump(entry_key).await;
    let records: Vec<String> = redis::cmd("KEYS")
        .arg("*:dk:*")
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut snapshot = vec![entry];
    for record in records {
        snapshot.push(dump(record).await);
    }
    cache
        .tenant(TENANT_A)
        .unwrap()
        .erase_subject(ANN)
        .await
        .unwrap();

    // rotate add + promote: the records are re-wrapped under the new primary.
    let promoted = first.rotate(SecretKey::generate().unwrap());
    cache
        .reload_keyring(&promoted, KeyringReload::Checked)
        .unwrap();
    let rewrapped = cache.sealed().rewrap_data_keys().await.unwrap();
    assert!(rewrapped <= 1, "only bob's record is left to re-wrap");
    assert_eq!(cache.sealed().rewrap_data_keys().await.unwrap(), 0);
    // retire: the old key is gone for good.
    let retired = promoted.without_key(first.primary_id()).unwrap();
    cache
        .reload_keyring(&retired, KeyringReload::Forced)
        .unwrap();
    assert_eq!(cache.pending_erasures().await, Some(0));
    assert_eq!(
        bob.get(&request).await.unwrap().unwrap().json_bytes(),
        br#"{"v":"bob"}"#,
        "bob's re-wrapped key still opens"
    );
    // The snapshot taken before the erasure comes back, and the tombstones are lost with it:
    // the record is wrapped under a retired key and opens nothing.
    let tombstones: Vec<String> = redis::cmd("KEYS")
        .arg("*:erased:*")
        .query_async(&mut admin)
        .await
        .unwrap();
    for t in &tombstones {
        let _: () = redis::cmd("DEL")
            .arg(t)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    for (key, bytes) in &snapshot {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(bytes)
            .arg("REPLACE")
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let before = events(&cache, "unknown_key_id");
    assert!(ann.get(&request).await.unwrap().is_none());
    assert!(events(&cache, "unknown_key_id") > before);
}

async fn record_keys(admin: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:dk:*")
        .query_async(admin)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// A pre-erasure record restored while its tombstone is still there is deleted by the re-wrap
/// after a promotion, never re-wrapped under the new primary (which would outlive the retirement
/// of the key the erasure relied on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rewrap_deletes_a_restored_erased_record_instead_of_rewrapping_it() {
    let stack = Stack::start();
    let first = stack.keyring();
    let cache = CacheBuilder::new(env("production"))
        .keyring(first.clone())
        .redis(stack.redis_config("cache_app", sealcache_config_gen::layout::APP_PASSWORD))
        .build()
        .unwrap();
    let request = AiRequest::new("qa", "restored record");
    let ann = cache.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let bob = cache.tenant(TENANT_A).unwrap().subject(BOB).unwrap();
    ann.set_json(&request, json(r#"{"v":"ann"}"#), None)
        .await
        .unwrap();
    let mut admin = stack.admin().await;
    let ann_record = record_keys(&mut admin).await;
    assert_eq!(ann_record.len(), 1, "{ann_record:?}");
    let ann_record = ann_record[0].clone();
    let dumped: Vec<u8> = redis::cmd("DUMP")
        .arg(&ann_record)
        .query_async(&mut admin)
        .await
        .unwrap();
    bob.set_json(&request, json(r#"{"v":"bob"}"#), None)
        .await
        .unwrap();
    cache
        .tenant(TENANT_A)
        .unwrap()
        .erase_subject(ANN)
        .await
        .unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg(&ann_record)
        .arg(0)
        .arg(&dumped)
        .arg("REPLACE")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(record_keys(&mut admin).await.len(), 2);

    let promoted = first.rotate(SecretKey::generate().unwrap());
    cache
        .reload_keyring(&promoted, KeyringReload::Checked)
        .unwrap();
    // The reload starts a re-wrap pass of its own: either may re-wrap bob's record.
    let rewrapped = cache.sealed().rewrap_data_keys().await.unwrap();
    assert!(
        rewrapped <= 1,
        "only bob's record may be re-wrapped: {rewrapped}"
    );
    let left = record_keys(&mut admin).await;
    assert!(
        !left.contains(&ann_record),
        "the restored erased record is still there: {left:?}"
    );
    assert_eq!(left.len(), 1, "{left:?}");
    let retired = promoted.without_key(first.primary_id()).unwrap();
    cache
        .reload_keyring(&retired, KeyringReload::Forced)
        .unwrap();
    assert_eq!(
        bob.get(&request).await.unwrap().unwrap().json_bytes(),
        br#"{"v":"bob"}"#,
        "bob's record was re-wrapped before the retirement"
    );
}

/// A replica whose keyring lags (it does not hold the key a record is wrapped under) refuses to
/// seal for that owner instead of deleting the record and making a new key, which would destroy
/// a valid data key for every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_an_older_keyring_never_replaces_a_record_it_cannot_open() {
    let stack = Stack::start();
    let first = stack.keyring();
    let promoted = first.rotate(SecretKey::generate().unwrap());
    let build = |keyring: &Keyring| {
        CacheBuilder::new(env("production"))
            .keyring(keyring.clone())
            .redis(stack.redis_config("cache_app", sealcache_config_gen::layout::APP_PASSWORD))
            .build()
            .unwrap()
    };
    let current = build(&promoted);
    let lagging = build(&first);
    let request = AiRequest::new("qa", "older keyring");
    let ann = current.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    ann.set_json(&request, json(r#"{"v":"ann"}"#), None)
        .await
        .unwrap();
    let mut admin = stack.admin().await;
    let before = record_keys(&mut admin).await;
    let record_before: Vec<u8> = redis::cmd("GET")
        .arg(&before[0])
        .query_async(&mut admin)
        .await
        .unwrap();

    let refused = lagging
        .tenant(TENANT_A)
        .unwrap()
        .subject(ANN)
        .unwrap()
        .set_json(&AiRequest::new("qa", "other"), json(r#"{"v":"x"}"#), None)
        .await;
    assert!(
        matches!(refused, Err(sealcache::Error::DataKeyUnavailable)),
        "{refused:?}"
    );
    let record_after: Vec<u8> = redis::cmd("GET")
        .arg(&before[0])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(record_after, record_before, "the record was replaced");
    assert_eq!(
        ann.get(&request).await.unwrap().unwrap().json_bytes(),
        br#"{"v":"ann"}"#
    );
}

fn cluster_cache(cluster: &RedisCluster, keyring: &Keyring) -> AiResponseCache {
    CacheBuilder::new(env("production"))
        .options(CacheOptions::default().with_namespace(cluster.namespace()))
        .keyring(keyring.clone())
        .redis(
            RedisConfig::cluster(cluster.seed_urls())
                .acl_user("cache_app", cluster.app_password())
                .tls_files(
                    cluster.ca_cert(),
                    cluster.client_cert(),
                    cluster.client_key(),
                ),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_owners_stay_apart_and_erasure_reaches_every_process() {
    let cluster = RedisCluster::start(ClusterOptions::default());
    let keyring = Keyring::generate().unwrap();
    let one = cluster_cache(&cluster, &keyring);
    let two = cluster_cache(&cluster, &keyring);
    two_owners_never_share(&one).await;
    let request = AiRequest::new("qa", "the same question from two customers");
    let ann2 = two.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let bob2 = two.tenant(TENANT_A).unwrap().subject(BOB).unwrap();
    bob2.set_json(&request, json(r#"{"answer":"bob's"}"#), None)
        .await
        .unwrap();
    assert!(ann2.get(&request).await.unwrap().is_some());
    assert!(ann2.get(&request).await.unwrap().is_some());
    one.tenant(TENANT_A)
        .unwrap()
        .erase_subject(ANN)
        .await
        .unwrap();
    assert!(
        within(Duration::from_secs(1), || async {
            ann2.get(&request).await.unwrap().is_none()
        })
        .await
        .is_some()
    );
    assert!(bob2.get(&request).await.unwrap().is_some());
    assert_eq!(one.pending_erasures().await, Some(1));
}

/// An erasure that fails part-way (here: a key of the wrong type among the tenant's records, so
/// Redis answers the second record's `GET` with `WRONGTYPE`) still drops what it destroyed from
/// L1, here and in every process, and is audited (`data_erased`), before it returns the error.
/// The old code returned at the first error: the destroyed subject's answers stayed in L1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_that_fails_part_way_still_drops_what_it_destroyed() {
    let stack = Stack::start();
    let (one, two) = (stack.cache(), stack.cache());
    let request = AiRequest::new("qa", "part-way");
    let ann1 = one.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let ann2 = two.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    ann1.set_json(&request, json(r#"{"answer":"ann's"}"#), None)
        .await
        .unwrap();
    // Both processes hold ann's answer in L1.
    assert!(ann1.get(&request).await.unwrap().is_some());
    assert!(ann2.get(&request).await.unwrap().is_some());
    let mut admin = stack.admin().await;
    let records = record_keys(&mut admin).await;
    assert_eq!(records.len(), 1, "{records:?}");
    // A key that sorts after every record of the tenant and is no string.
    let (prefix, _) = records[0].rsplit_once(':').unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}:zz-not-a-record"))
        .arg("f")
        .arg("v")
        .query_async(&mut admin)
        .await
        .unwrap();
    let before = events(&one, "data_erased");
    let failed = one.tenant(TENANT_A).unwrap().erase_tenant().await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        record_keys(&mut admin).await.len(),
        1,
        "only the wrong-typed key is left"
    );
    assert_eq!(events(&one, "data_erased"), before + 1, "audited");
    assert!(ann1.get(&request).await.unwrap().is_none(), "dropped here");
    assert!(
        within(Duration::from_secs(1), || async {
            ann2.get(&request).await.unwrap().is_none()
        })
        .await
        .is_some(),
        "and in the other process"
    );
}

/// An owner's view serves only values sealed under its own data key: a value written at a
/// subject's key under the keyring (here by the shared view, through the explicit-key API) is a
/// miss for the subject, from L1 and from Redis, and counted; it would otherwise outlive the
/// subject's erasure. The old code served it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_never_serves_a_value_not_sealed_under_its_data_key() {
    let stack = Stack::start();
    let (one, two) = (stack.cache(), stack.cache());
    let request = AiRequest::new("qa", "whose key");
    let ann1 = one.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let ann2 = two.tenant(TENANT_A).unwrap().subject(ANN).unwrap();
    let key = ann1.key(&request).unwrap();
    one.shared()
        .sealed()
        .set_raw(
            &key,
            json(r#"{"answer":"under the keyring"}"#),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    // In the writer's process (its L1 holds the value) and in another (Redis).
    assert!(ann1.get(&request).await.unwrap().is_none(), "from L1");
    let before = events(&ann2, "decrypt_failed");
    assert!(ann2.get(&request).await.unwrap().is_none(), "from Redis");
    assert_eq!(events(&ann2, "decrypt_failed"), before + 1);
    // Ann's own answer is served as before.
    ann1.set_json(&request, json(r#"{"answer":"ann's"}"#), None)
        .await
        .unwrap();
    assert!(ann2.get(&request).await.unwrap().is_some());
}

/// A retire never destroys a data key: a replica that still ran the old keyring after the
/// promotion (a rolling promote) wrote a new tenant's data key under the old primary, after the
/// promotion's re-wrap. Before the keyring without that key is applied
/// (`prepare_key_removal`, which the server runs on every reload signal), the record is
/// re-wrapped under the running primary, so the tenant's entries still open after the retire.
/// The server's reload once applied the retire straight away: every entry of that tenant became a
/// miss for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retire_rewraps_data_keys_a_lagging_replica_wrote_under_the_old_key() {
    let stack = Stack::start();
    let first = stack.keyring();
    let promoted = first.rotate(SecretKey::generate().unwrap());
    let build = |keyring: &Keyring| {
        CacheBuilder::new(env("production"))
            .keyring(keyring.clone())
            .redis(stack.redis_config("cache_app", sealcache_config_gen::layout::APP_PASSWORD))
            .build()
            .unwrap()
    };
    let current = build(&promoted);
    let lagging = build(&first);
    let request = AiRequest::new("qa", "written by a lagging replica");
    lagging
        .tenant(TENANT_B)
        .unwrap()
        .set_json(&request, json(r#"{"v":"globex"}"#), None)
        .await
        .unwrap();
    // The record is wrapped under the old primary, which the retire drops.
    let retired = promoted.without_key(first.primary_id()).unwrap();
    current.prepare_key_removal(&retired).await.unwrap();
    current
        .reload_keyring(&retired, KeyringReload::Forced)
        .unwrap();
    let fresh = build(&retired);
    for cache in [&current, &fresh] {
        assert_eq!(
            cache
                .tenant(TENANT_B)
                .unwrap()
                .get(&request)
                .await
                .unwrap()
                .expect("the tenant's entry still opens after the retire")
                .json_bytes(),
            br#"{"v":"globex"}"#
        );
    }
    // Nothing left to do: a second check passes at once.
    current.prepare_key_removal(&retired).await.unwrap();
}
