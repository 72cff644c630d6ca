//! The cache on a real Redis Cluster (3 primaries + 3 replicas of `redis-server` on loopback,
//! TLS everywhere: clients, cluster bus and replication; mutual TLS; the generated ACL): the corpus
//! stored and read back with keys on every primary, invalidation and clear across nodes, L1
//! coherence between two caches, the posture per node, and a primary killed mid-load.
//!
//! One cluster for the whole file (starting one costs seconds): the phases run in order.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{corpus, env};
use sealcache::{
    AiRequest, AiResponseCache, CacheBuilder, CacheOptions, CheckName, Keyring, NodeRole,
    RedisConfig, Tier,
};
use sealcache_testkit::cluster::{ClusterOptions, NodeRole as KitRole, RedisCluster};

const TIMEOUT: Duration = Duration::from_millis(800);
/// What a call may take beyond its timeout (scheduling on a 2-core machine, one reconnect).
const MARGIN: Duration = Duration::from_millis(1500);

fn config(cluster: &RedisCluster) -> RedisConfig {
    RedisConfig::cluster(cluster.seed_urls())
        .acl_user("cache_app", cluster.app_password())
        .tls_files(
            cluster.ca_cert(),
            cluster.client_cert(),
            cluster.client_key(),
        )
        .timeouts(TIMEOUT, TIMEOUT)
}

fn cache(cluster: &RedisCluster, keyring: &Keyring, options: CacheOptions) -> AiResponseCache {
    CacheBuilder::new(env("production"))
        .options(options.with_namespace(cluster.namespace()))
        .keyring(keyring.clone())
        .redis(config(cluster))
        .build()
        .unwrap()
}

fn no_l1() -> CacheOptions {
    CacheOptions::default().with_l1_capacity(0)
}

fn dbsize(cluster: &RedisCluster, index: usize) -> u64 {
    let out = cluster.cli(index, &cluster.admin_auth(), &["DBSIZE"]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("DBSIZE on node {index}: {out:?}"))
}

/// Polls `read` until it returns true, for at most `limit`; returns how long it took.
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_on_a_tls_cluster() {
    let mut cluster = RedisCluster::start(ClusterOptions::default());
    let keyring = Keyring::generate().unwrap();

    // 1. The corpus, stored through one cache and read back through another (no L1), with keys
    //    on every primary.
    let writer = cache(&cluster, &keyring, no_l1());
    let docs = corpus();
    for (i, (operation, doc)) in docs.iter().enumerate() {
        writer
            .set(&AiRequest::new(operation, format!("doc {i}")), doc, None)
            .await
            .unwrap();
    }
    let reader = cache(&cluster, &keyring, no_l1());
    for (i, (operation, doc)) in docs.iter().enumerate() {
        let got = reader
            .get(&AiRequest::new(operation, format!("doc {i}")))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("document {i} read back"));
        assert_eq!(&got.parse::<serde_json::Value>().unwrap(), doc);
    }
    let primaries: Vec<usize> = cluster
        .nodes()
        .into_iter()
        .filter(|n| n.role == KitRole::Primary)
        .map(|n| n.index)
        .collect();
    assert_eq!(primaries.len(), 3);
    for &p in &primaries {
        assert!(dbsize(&cluster, p) > 0, "node {p} holds some of the corpus");
    }

    // 2. Invalidation by operation removes exactly that operation's entries, on every node.
    let operation = docs[0].0.clone();
    let expected = docs.iter().filter(|(op, _)| *op == operation).count() as u64;
    let removed = writer.invalidate_operation(&operation).await.unwrap();
    assert_eq!(
        removed, expected,
        "every {operation} entry, on every primary"
    );
    for (i, (op, _)) in docs.iter().enumerate() {
        let got = reader
            .get(&AiRequest::new(op, format!("doc {i}")))
            .await
            .unwrap();
        assert_eq!(got.is_some(), *op != operation, "document {i} ({op})");
    }

    // 3. The posture, per node.
    // A replica still loading its first sync is left out of `CLUSTER SLOTS` for a moment.
    let mut status = reader.security_status().await;
    for _ in 0..50 {
        if status.cluster.as_ref().is_some_and(|c| c.nodes.len() == 6) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = reader.security_status().await;
    }
    let cluster_status = status.cluster.as_ref().expect("cluster status");
    assert_eq!(cluster_status.cluster_state.as_deref(), Some("ok"));
    assert_eq!(cluster_status.nodes.len(), 6, "{cluster_status:?}");
    assert_eq!(
        cluster_status
            .nodes
            .iter()
            .filter(|n| n.role == NodeRole::Primary)
            .count(),
        3
    );
    for node in &cluster_status.nodes {
        assert!(node.tls_version.is_some(), "verified TLS on {node:?}");
        assert_eq!(node.default_user_disabled, Some(true), "{node:?}");
    }
    for name in [CheckName::ClusterState, CheckName::ClusterNodes] {
        assert!(status.check(name).unwrap().passed, "{:?}", status.checks);
    }
    assert_eq!(status.authenticated_user.as_deref(), Some("cache_app"));

    // A wrong password on a cluster is a refusal, named as such (not an outage).
    let wrong = CacheBuilder::new(env("production"))
        .options(no_l1().with_namespace(cluster.namespace()))
        .keyring(keyring.clone())
        .redis(
            RedisConfig::cluster(cluster.seed_urls())
                .acl_user("cache_app", "not-the-password-of-cache-app")
                .tls_files(
                    cluster.ca_cert(),
                    cluster.client_cert(),
                    cluster.client_key(),
                )
                .timeouts(TIMEOUT, TIMEOUT),
        )
        .build()
        .unwrap();
    let err = wrong
        .set(
            &AiRequest::new("qa", "refused"),
            &serde_json::json!(1),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, sealcache::Error::AuthenticationRefused { .. }),
        "{err:?}"
    );
    let refused = wrong.security_status().await;
    let acl = refused.check(CheckName::AclUser).unwrap();
    assert!(acl.detail.contains("authentication refused"), "{acl:?}");

    // 4. L1 coherence: two caches, each with L1; a change through one reaches the other's L1
    //    within a second.
    let a = cache(&cluster, &keyring, CacheOptions::default());
    let b = cache(&cluster, &keyring, CacheOptions::default());
    let req = AiRequest::new("qa", "coherent");
    a.set(&req, &serde_json::json!({"v": 1}), None)
        .await
        .unwrap();
    let first = b.get(&req).await.unwrap().unwrap();
    assert_eq!(first.parse::<serde_json::Value>().unwrap()["v"], 1);
    let again = b.get(&req).await.unwrap().unwrap();
    assert_eq!(again.tier(), Tier::L1, "b serves its L1 copy");
    a.set(&req, &serde_json::json!({"v": 2}), None)
        .await
        .unwrap();
    let took = within(Duration::from_secs(1), || async {
        b.get(&req)
            .await
            .unwrap()
            .is_some_and(|c| c.parse::<serde_json::Value>().unwrap()["v"] == 2)
    })
    .await;
    assert!(took.is_some(), "b saw the overwrite within 1 s");
    a.delete(&req).await.unwrap();
    assert!(
        within(Duration::from_secs(1), || async {
            b.get(&req).await.unwrap().is_none()
        })
        .await
        .is_some(),
        "b dropped the deleted entry within 1 s"
    );
    a.set(&req, &serde_json::json!({"v": 3}), None)
        .await
        .unwrap();
    assert!(b.get(&req).await.unwrap().is_some());
    a.clear("invalidate-all").await.unwrap();
    assert!(
        within(Duration::from_secs(1), || async {
            b.get(&req).await.unwrap().is_none()
        })
        .await
        .is_some(),
        "b dropped its copies after a clear within 1 s"
    );
    assert_eq!(b.sealed().l1_coherence(), Some((true, 0)));

    // 4b. A lost subscription re-subscribes through one node and keeps its heartbeat connections
    //     to every node: on a compose cluster (nodes limited to half a CPU) a re-subscription
    //     that reconnected to all six nodes one after the other overran the heartbeat's second,
    //     lost the subscription again, and kept every backend reconnecting every ~2 s.
    let accepted = || -> Vec<u64> {
        (0..6)
            .map(|i| {
                let out = cluster.cli(i, &cluster.admin_auth(), &["INFO", "stats"]);
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .find_map(|l| l.strip_prefix("total_connections_received:"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or_else(|| panic!("INFO stats on node {i}: {out:?}"))
            })
            .collect()
    };
    let before = accepted();
    // All six at once: killed one after the other, a re-subscription on the next node could be
    // killed again.
    std::thread::scope(|threads| {
        for i in 0..6 {
            let cluster = &cluster;
            threads.spawn(move || {
                let killed = cluster.cli(
                    i,
                    &cluster.admin_auth(),
                    &["CLIENT", "KILL", "TYPE", "pubsub"],
                );
                assert!(
                    killed.status.success(),
                    "CLIENT KILL on node {i}: {killed:?}"
                );
            });
        }
    });
    let resubscribed = within(Duration::from_secs(10), || async {
        [&a, &b].iter().all(|c| {
            c.sealed()
                .l1_coherence()
                .is_some_and(|(subscribed, losses)| subscribed && (1..=2).contains(&losses))
        })
    })
    .await;
    assert!(
        resubscribed.is_some(),
        "both caches lost their subscription and confirmed it again: a {:?}, b {:?}",
        a.sealed().l1_coherence(),
        b.sealed().l1_coherence()
    );
    let after = accepted();
    // Each node accepted this test's own two `redis-cli` connections (the kill, the second read).
    // Two re-subscriptions open four (a subscription and its publisher each); one more, should a
    // kill catch a re-subscription, two more, and a slow node's heartbeat connection made again,
    // one or two. Reconnecting the heartbeat's six node connections each time made 16 (and one
    // backend reconnecting them all, 10).
    let new: u64 = after.iter().zip(&before).map(|(a, b)| a - b - 2).sum();
    assert!(
        (4..=8).contains(&new),
        "the re-subscriptions opened {new} connections (the six heartbeat connections are \
         kept): before {before:?}, after {after:?}, a {:?}, b {:?}",
        a.sealed().l1_coherence(),
        b.sealed().l1_coherence()
    );

    // 5. A cluster connection the application already owns, handed to the builder.
    let owned = cluster
        .app_cluster_client()
        .get_async_connection()
        .await
        .unwrap();
    let handed = CacheBuilder::new(env("production"))
        .options(no_l1().with_namespace(cluster.namespace()))
        .keyring(keyring.clone())
        .redis(config(&cluster).with_cluster_connection(owned))
        .build()
        .unwrap();
    let owned_req = AiRequest::new("qa", "owned connection");
    handed
        .set(&owned_req, &serde_json::json!({"owned": true}), None)
        .await
        .unwrap();
    assert!(reader.get(&owned_req).await.unwrap().is_some());
    assert!(
        handed
            .sealed()
            .set_redis_password("not-the-cache's-to-change")
            .is_err(),
        "the password of an application-owned connection stays the application's"
    );

    // 6. A primary killed mid-load: every call returns within its timeout, nothing wrong is
    //    served, and the promoted replica serves writes and reads again, nothing restarted.
    let load = Arc::new(cache(&cluster, &keyring, no_l1()));
    let keys = 64_u64;
    let versions: Arc<Vec<AtomicU64>> = Arc::new((0..keys).map(|_| AtomicU64::new(0)).collect());
    for k in 0..keys {
        load.set(
            &AiRequest::new("load", format!("k{k}")),
            &serde_json::json!({"k": k, "v": 0}),
            None,
        )
        .await
        .unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..4_u64 {
        let (load, versions, stop, slowest) = (
            Arc::clone(&load),
            Arc::clone(&versions),
            Arc::clone(&stop),
            Arc::clone(&slowest),
        );
        workers.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                // A client does I/O between requests; a loop without an await point would starve
                // the runtime whenever the open breaker answers without one.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let k = (n * 4 + w) % keys;
                n += 1;
                let req = AiRequest::new("load", format!("k{k}"));
                let started = Instant::now();
                let got = load.get(&req).await.unwrap();
                let took = started.elapsed();
                slowest.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
                if let Some(c) = got {
                    let v: serde_json::Value = c.parse().unwrap();
                    assert_eq!(v["k"], k, "a value served for another key");
                    assert!(
                        v["v"].as_u64().unwrap() <= versions[k as usize].load(Ordering::SeqCst),
                        "a version never written"
                    );
                }
                let next = versions[k as usize].load(Ordering::SeqCst) + 1;
                versions[k as usize].fetch_max(next, Ordering::SeqCst);
                let started = Instant::now();
                let _ = load
                    .set(&req, &serde_json::json!({"k": k, "v": next}), None)
                    .await;
                slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probe = AiRequest::new("load", "k0");
    let probe_key = load.key(&probe).unwrap();
    let slot = sealcache_testkit::cluster::key_slot(probe_key.as_bytes());
    let killed = cluster.kill_primary_of_slot(slot);
    let killed_at = Instant::now();
    // The promoted replica takes writes on the killed primary's slots, through the same cache.
    let recovered = within(Duration::from_secs(30), || async {
        load.set(&probe, &serde_json::json!({"k": 0, "v": 1_000_000}), None)
            .await
            .is_ok()
    })
    .await;
    versions[0].fetch_max(1_000_000, Ordering::SeqCst);
    assert!(
        recovered.is_some(),
        "writes on the failed primary's slots resume"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("no worker panicked (no wrong answer)");
    }
    let slowest = Duration::from_millis(slowest.load(Ordering::Relaxed));
    assert!(
        slowest <= TIMEOUT * 2 + MARGIN,
        "a call blocked for {slowest:?} during the failover"
    );
    // Only now the test blocks (redis-cli): the load ran on an unblocked runtime throughout.
    cluster.wait_for_failover();
    assert_ne!(cluster.role(killed), KitRole::Primary);
    let back = load
        .get(&probe)
        .await
        .unwrap()
        .expect("read back after failover");
    assert_eq!(back.parse::<serde_json::Value>().unwrap()["k"], 0);
    eprintln!(
        "failover: primary {killed} killed; writes on its slots resumed after {:?}",
        killed_at.elapsed()
    );
}
