//! `cargo xtask bench cluster`: the cache on a 6-node TLS Redis Cluster against the cache on one
//! TLS redis-server (both mutual TLS, the generated ACL, production policy, L1 off so every call
//! reaches Redis): get and set p50/p99 and throughput at 64 calls in flight over the corpus'
//! medium documents, then the failover gap: the time from killing the primary of a key's slot to
//! the first successful write on that slot (the breaker's default 5 s cool-down included, as a
//! user would see it). Then how throughput grows with the primaries: clusters of 1, 3 and 6
//! primaries (no replicas, the slots split evenly), the same phases on each.
//!
//! `SEALCACHE_BENCH_SECS` (default 10) sets each phase's length;
//! `SEALCACHE_BENCH_CLUSTER_SCALING_ONLY=1` runs the scaling phases alone.

// A benchmark program reports what it measured.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "../tests/common/cache.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Stack, corpus, env};
use sealcache::{AiRequest, AiResponseCache, CacheBuilder, CacheOptions, Keyring, RedisConfig};
use sealcache_config_gen::layout;
use sealcache_testkit::cluster::{ClusterOptions, RedisCluster};

const IN_FLIGHT: usize = 64;

fn seconds() -> Duration {
    Duration::from_secs(
        std::env::var("SEALCACHE_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

fn build(config: RedisConfig, keyring: &Keyring, namespace: &str) -> AiResponseCache {
    CacheBuilder::new(env("production"))
        .options(
            CacheOptions::default()
                .with_namespace(namespace)
                .with_l1_capacity(0),
        )
        .keyring(keyring.clone())
        .redis(config)
        .build()
        .unwrap()
}

/// Latencies in microseconds, and calls per second, of `IN_FLIGHT` tasks running `op` for
/// `for_how_long`.
async fn run<F, Fut>(for_how_long: Duration, op: F) -> (Vec<u64>, f64, u64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..IN_FLIGHT {
        let (op, stop, errors) = (Arc::clone(&op), Arc::clone(&stop), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                if !op(t, n).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(began.elapsed().as_micros() as u64);
                n += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(for_how_long).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let rate = all.len() as f64 / elapsed;
    (all, rate, errors.load(Ordering::Relaxed))
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn measure(name: &str, cache: Arc<AiResponseCache>, docs: Arc<Vec<serde_json::Value>>) {
    // Warm: every document stored once.
    for (i, doc) in docs.iter().enumerate() {
        cache
            .set(&AiRequest::new("bench", format!("doc {i}")), doc, None)
            .await
            .unwrap();
    }
    let n = docs.len() as u64;
    let (c, d) = (Arc::clone(&cache), Arc::clone(&docs));
    let (sets, set_rate, set_errors) = run(seconds(), move |t, i| {
        let (c, d) = (Arc::clone(&c), Arc::clone(&d));
        async move {
            let k = (i * IN_FLIGHT as u64 + t as u64) % n;
            c.set(
                &AiRequest::new("bench", format!("doc {k}")),
                &d[k as usize],
                None,
            )
            .await
            .is_ok()
        }
    })
    .await;
    let c = Arc::clone(&cache);
    let (gets, get_rate, get_errors) = run(seconds(), move |t, i| {
        let c = Arc::clone(&c);
        async move {
            let k = (i * IN_FLIGHT as u64 + t as u64) % n;
            matches!(
                c.get(&AiRequest::new("bench", format!("doc {k}"))).await,
                Ok(Some(_))
            )
        }
    })
    .await;
    println!(
        "| {name} | {:.2} | {:.2} | {get_rate:.0} | {:.2} | {:.2} | {set_rate:.0} | {} |",
        pct(&gets, 0.5),
        pct(&gets, 0.99),
        pct(&sets, 0.5),
        pct(&sets, 0.99),
        get_errors + set_errors,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let docs: Arc<Vec<serde_json::Value>> = Arc::new(
        corpus()
            .into_iter()
            .filter(|(_, v)| v["size_class"] == "medium")
            .map(|(_, v)| v)
            .collect(),
    );
    assert!(!docs.is_empty(), "the corpus has medium documents");
    let keyring = Keyring::generate().unwrap();
    println!(
        "CPU: {}",
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| t.lines().find_map(|l| l
                .strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())))
            .unwrap_or_else(|| "unknown".to_owned())
    );
    println!(
        "{IN_FLIGHT} calls in flight, {} s per phase, medium documents, L1 off",
        seconds().as_secs()
    );
    if std::env::var_os("SEALCACHE_BENCH_CLUSTER_SCALING_ONLY").is_none() {
        one_node_cluster_and_failover(&keyring, &docs).await;
    }
    scaling(&keyring, &docs).await;
}

/// Throughput with 1, 3 and 6 primaries (no replicas): one row each.
async fn scaling(keyring: &Keyring, docs: &Arc<Vec<serde_json::Value>>) {
    println!();
    println!(
        "| primaries (no replicas) | get p50 ms | get p99 ms | gets/s | set p50 ms | set p99 ms | sets/s | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for primaries in [1, 3, 6] {
        let cluster = RedisCluster::start(ClusterOptions {
            primaries,
            replicas_per_primary: 0,
            ..ClusterOptions::default()
        });
        let cache = Arc::new(build(
            cluster_config(&cluster),
            keyring,
            cluster.namespace(),
        ));
        measure(&primaries.to_string(), cache, Arc::clone(docs)).await;
    }
}

/// The cache's configuration for `cluster`: its seeds, `cache_app`, mutual TLS.
fn cluster_config(cluster: &RedisCluster) -> RedisConfig {
    RedisConfig::cluster(cluster.seed_urls())
        .acl_user("cache_app", cluster.app_password())
        .tls_files(
            cluster.ca_cert(),
            cluster.client_cert(),
            cluster.client_key(),
        )
}

/// One node against the default cluster (3 primaries, 1 replica each), then the failover gap.
async fn one_node_cluster_and_failover(keyring: &Keyring, docs: &Arc<Vec<serde_json::Value>>) {
    println!();
    println!(
        "| deployment | get p50 ms | get p99 ms | gets/s | set p50 ms | set p99 ms | sets/s | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let single = Stack::start();
    let config = single.redis_config("cache_app", layout::APP_PASSWORD);
    let namespace = sealcache_config_gen::DEFAULT_NAMESPACE;
    measure(
        "one node",
        Arc::new(build(config, keyring, namespace)),
        Arc::clone(docs),
    )
    .await;
    drop(single);

    let mut cluster = RedisCluster::start(ClusterOptions::default());
    let cache = Arc::new(build(
        cluster_config(&cluster),
        keyring,
        cluster.namespace(),
    ));
    measure("cluster, 3 primaries", Arc::clone(&cache), Arc::clone(docs)).await;

    // The failover gap, three times (each on a fresh primary: the killed one stays down).
    println!();
    println!("| failover | primary killed → first successful write on its slots |");
    println!("|---|---|");
    for round in 0..2 {
        let probe = AiRequest::new("bench", format!("failover {round}"));
        cache
            .set(&probe, &serde_json::json!({"round": round}), None)
            .await
            .unwrap();
        let slot = sealcache_testkit::cluster::key_slot(cache.key(&probe).unwrap().as_bytes());
        let killed_at = Instant::now();
        let killed = cluster.kill_primary_of_slot(slot);
        loop {
            if cache
                .set(&probe, &serde_json::json!({"round": round}), None)
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(60),
                "no write after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "| round {} (node {killed}) | {:.2} s |",
            round + 1,
            killed_at.elapsed().as_secs_f64()
        );
        tokio::task::block_in_place(|| cluster.wait_for_failover());
        cluster.restart(killed);
        tokio::task::block_in_place(|| cluster.wait_until_healthy(Duration::from_secs(60)));
    }
}
