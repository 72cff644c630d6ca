//! `cargo xtask bench cache`: one redis-server on loopback, the corpus' medium and large documents.
//!
//! Rows: raw redis-rs GET/SET of the same stored (sealed) bytes; raw GET/SET of the unsealed JSON
//! (sealcache cannot turn encryption off, by design: this row is the "no sealing" bound); sealcache
//! `get`/`set` through Redis (L1 off); sealcache L1 hits. Sequential p50/p99 latency, throughput at
//! 64 requests in flight, and resident memory per 10 000 L1 entries.

// A benchmark program reports what it measured.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcache::{AiRequest, AiResponseCache, CacheBuilder, CacheOptions, RedisConfig};
use sealcache_codec::Keyring;
use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};
use sealcache_testkit::{RedisOptions, RedisServer};

const SEQUENTIAL: usize = 3000;
const IN_FLIGHT: usize = 64;
const THROUGHPUT_FOR: Duration = Duration::from_secs(3);

fn corpus(class: &str) -> Vec<serde_json::Value> {
    let path = std::env::var_os("SEALCACHE_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/corpus.jsonl"),
        PathBuf::from,
    );
    std::fs::read_to_string(path)
        .expect("corpus")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["size_class"] == class)
        .collect()
}

fn cache(server: &RedisServer, l1: usize, keyring: &Keyring) -> AiResponseCache {
    let env = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "development"))
        .detect(FeatureContext::SecurityEnforcement);
    CacheBuilder::new(env)
        .options(
            CacheOptions::default()
                .with_l1_capacity(l1)
                .with_l1_max_ttl(Duration::from_secs(3600)),
        )
        .keyring(keyring.clone())
        .redis(RedisConfig::new(format!(
            "redis://127.0.0.1:{}/0",
            server.port()
        )))
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

struct Row {
    name: String,
    p50: Duration,
    p99: Duration,
    ops_per_sec: f64,
}

async fn measure<F, Fut>(name: String, op: F) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    for i in 0..200 {
        op(i).await;
    }
    let mut lat = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let t = Instant::now();
        op(i).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Instant::now() + THROUGHPUT_FOR;
    let started = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|w| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < stop {
                    op(i).await;
                    i += IN_FLIGHT;
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let ops =
        done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    Row {
        name,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        ops_per_sec: ops,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let server = RedisServer::start(RedisOptions::default());
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", server.port())).unwrap();
    let raw = redis::aio::ConnectionManager::new(client).await.unwrap();
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    let mut paired = Vec::new();
    // One keyring for every cache: they read each other's values (as replicas of a service do).
    let keyring = Keyring::generate().unwrap();
    for class in ["medium", "large"] {
        let docs = Arc::new(corpus(class));
        let n = docs.len();
        let remote = Arc::new(cache(&server, 0, &keyring));
        let requests: Arc<Vec<AiRequest>> = Arc::new(
            (0..n)
                .map(|i| AiRequest::new("summarize", format!("{class} {i}")))
                .collect(),
        );
        for (req, doc) in requests.iter().zip(docs.iter()) {
            remote.set(req, doc, None).await.unwrap();
        }
        let keys: Arc<Vec<String>> =
            Arc::new(requests.iter().map(|r| remote.key(r).unwrap()).collect());
        // The same stored bytes under raw keys, and the unsealed JSON.
        let mut conn = raw.clone();
        for (i, key) in keys.iter().enumerate() {
            let sealed: Vec<u8> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("SET")
                .arg(format!("raw:sealed:{class}:{i}"))
                .arg(sealed)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("SET")
                .arg(format!("raw:plain:{class}:{i}"))
                .arg(serde_json::to_vec(&docs[i]).unwrap())
                .query_async(&mut conn)
                .await
                .unwrap();
        }

        for (label, prefix) in [
            ("raw redis-rs GET (same sealed bytes)", "sealed"),
            ("raw redis-rs GET (unsealed JSON)", "plain"),
        ] {
            let raw = raw.clone();
            let class = class.to_owned();
            rows.push(
                measure(format!("{label}, {class}"), move |i| {
                    let mut c = raw.clone();
                    let key = format!("raw:{prefix}:{class}:{}", i % n);
                    async move {
                        let _: Vec<u8> = redis::cmd("GET")
                            .arg(key)
                            .query_async(&mut c)
                            .await
                            .unwrap();
                    }
                })
                .await,
            );
        }
        // Paired: raw GET of the same sealed bytes and sealcache get, alternating every iteration,
        // so machine drift hits both alike (separate rows on this shared VM moved by ±30 %).
        {
            let (mut raw_lat, mut sc_lat) = (
                Vec::with_capacity(SEQUENTIAL),
                Vec::with_capacity(SEQUENTIAL),
            );
            let mut conn = raw.clone();
            for i in 0..SEQUENTIAL {
                let t = Instant::now();
                let _: Vec<u8> = redis::cmd("GET")
                    .arg(format!("raw:sealed:{class}:{}", i % n))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                raw_lat.push(t.elapsed());
                let t = Instant::now();
                assert!(remote.get(&requests[i % n]).await.unwrap().is_some());
                sc_lat.push(t.elapsed());
            }
            raw_lat.sort();
            sc_lat.sort();
            paired.push((
                class,
                percentile(&raw_lat, 0.5),
                percentile(&sc_lat, 0.5),
                percentile(&raw_lat, 0.99),
                percentile(&sc_lat, 0.99),
            ));
        }
        {
            let (remote, requests) = (remote.clone(), requests.clone());
            rows.push(
                measure(
                    format!("sealcache get via Redis (L1 off), {class}"),
                    move |i| {
                        let (remote, requests) = (remote.clone(), requests.clone());
                        async move {
                            assert!(remote.get(&requests[i % n]).await.unwrap().is_some());
                        }
                    },
                )
                .await,
            );
        }
        {
            let raw = raw.clone();
            let class = class.to_owned();
            let docs = docs.clone();
            rows.push(
                measure(
                    format!("raw redis-rs SET (unsealed JSON), {class}"),
                    move |i| {
                        let mut c = raw.clone();
                        let bytes = serde_json::to_vec(&docs[i % n]).unwrap();
                        let key = format!("raw:w:{class}:{}", i % n);
                        async move {
                            let _: () = redis::cmd("SET")
                                .arg(key)
                                .arg(bytes)
                                .arg("PX")
                                .arg(3_600_000)
                                .query_async(&mut c)
                                .await
                                .unwrap();
                        }
                    },
                )
                .await,
            );
        }
        {
            let (remote, requests, docs) = (remote.clone(), requests.clone(), docs.clone());
            rows.push(
                measure(format!("sealcache set (sealed), {class}"), move |i| {
                    let (remote, requests, docs) = (remote.clone(), requests.clone(), docs.clone());
                    async move {
                        remote
                            .set(&requests[i % n], &docs[i % n], None)
                            .await
                            .unwrap();
                    }
                })
                .await,
            );
        }
        {
            let local = Arc::new(cache(&server, 100_000, &keyring));
            for r in requests.iter() {
                local.get(r).await.unwrap().unwrap();
            }
            let requests = requests.clone();
            rows.push(
                measure(format!("sealcache get, L1 hit, {class}"), move |i| {
                    let (local, requests) = (local.clone(), requests.clone());
                    async move {
                        assert!(local.get(&requests[i % n]).await.unwrap().is_some());
                    }
                })
                .await,
            );
        }
        // Resident memory per 10 000 L1 entries of this class.
        let l1 = cache(&server, 20_000, &keyring);
        let before = rss_kib();
        for i in 0..10_000 {
            let req = AiRequest::new("qa", format!("mem {class} {i}"));
            l1.set(&req, &docs[i % n], None).await.unwrap();
        }
        let after = rss_kib();
        memory.push((
            class,
            (after.saturating_sub(before)) as f64 / 1024.0,
            serde_json::to_vec(&docs[0]).unwrap().len(),
        ));
        let _ = l1.clear("invalidate-all").await;
    }

    println!("\n| path | p50 µs | p99 µs | ops/s at {IN_FLIGHT} in flight |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.0} |",
            r.name,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.ops_per_sec
        );
    }
    println!(
        "\n| class | paired p50 raw GET µs | paired p50 sealcache get µs | ratio | paired p99 raw / sealcache µs |"
    );
    println!("|---|---|---|---|---|");
    for (class, r50, s50, r99, s99) in paired {
        println!(
            "| {class} | {:.1} | {:.1} | {:.2}x | {:.1} / {:.1} |",
            r50.as_secs_f64() * 1e6,
            s50.as_secs_f64() * 1e6,
            s50.as_secs_f64() / r50.as_secs_f64(),
            r99.as_secs_f64() * 1e6,
            s99.as_secs_f64() * 1e6
        );
    }
    println!("\n| class | resident memory per 10 000 L1 entries | plaintext per entry |");
    println!("|---|---|---|");
    for (class, mib, size) in memory {
        println!("| {class} | {mib:.1} MiB | {size} B |");
    }
}
