//! `cargo xtask bench cache`: one redis-server on loopback, the corpus' medium and large documents.
//!
//! Rows: raw redis-rs GET/SET of the same stored (sealed) bytes; raw GET/SET of the unsealed JSON
//! (sealcache cannot turn encryption off, by design: this row is the "no sealing" bound); sealcache
//! `get`/`set` through Redis (L1 off); sealcache L1 hits. Sequential p50/p99 latency, throughput at
//! 64 requests in flight, and resident memory per 10 000 L1 entries.
//!
//! Then the fair baseline, over plain TCP and over TLS (client certificates, ACL users), for every
//! size class: sealcache `get` (L1 off) against (ii) = `GET` of the same compressed payload + zstd
//! decompress (what any cache that compresses must do), and raw `GET` of the sealed bytes for
//! reference. Latency is paired per request (the three alternate, in rotating order); throughput at
//! 64 in flight alternates (ii) and sealcache runs and takes the median of each.
//!
//! Then what a lease (single-flight across processes) costs on a miss: `get_or_compute` of new
//! requests with leases on and off, and a lookup miss with and without taking a lease
//! (`SEALCACHE_BENCH_LEASE_ONLY=1` runs only this table).
//!
//! `SEALCACHE_BENCH_DATA_KEY_ONLY=1` runs only what a tenant's or subject's data key adds to an
//! L1-miss `get` (paired against a shared entry, which has none).
//!
//! Then stream replay (`SEALCACHE_BENCH_STREAM_ONLY=1` runs only this table): a streamed answer
//! built from each large corpus document as OpenAI chat-completion chunks (a delta of about 16
//! bytes per event, as models stream), stored once, then replayed as SSE bytes from Redis (L1 off)
//! and from L1, and as an event stream; MB/s of SSE output.
//!
//! `SEALCACHE_BENCH_FAIR_MANAGER=1` adds to the fair baseline (TCP) the throughput of (ii) through
//! redis-rs's `ConnectionManager`, the connection type sealcache uses for one Redis.
//! `SEALCACHE_BENCH_L1_CHURN_ONLY=1` runs only L1's memory under churn at a binding byte bound.
//! `SEALCACHE_BENCH_L1_SCALE_ONLY=1` runs only how memory grows with L1 (issue 26): this
//! process's resident memory with 10^5 and then 10^6 small documents in L1, each within a
//! configured byte bound, and what each entry costs beyond its plaintext (it is not part of the
//! full run: filling 10^6 entries through Redis takes about a minute and 2 GiB).

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

use futures_util::StreamExt as _;
use sealcache::{AiRequest, AiResponseCache, CacheBuilder, CacheOptions, RedisConfig, SseEvent};
use sealcache_codec::Keyring;
use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};
use sealcache_testkit::{RedisOptions, RedisServer};

#[path = "../tests/common/cache.rs"]
mod common;

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
    cache_with(
        server,
        CacheOptions::default().with_l1_capacity(l1),
        keyring,
    )
}

/// A cache with `options` (L1 entries kept up to an hour).
fn cache_with(server: &RedisServer, options: CacheOptions, keyring: &Keyring) -> AiResponseCache {
    let env = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "development"))
        .detect(FeatureContext::SecurityEnforcement);
    CacheBuilder::new(env)
        .options(options.with_l1_max_ttl(Duration::from_secs(3600)))
        .keyring(keyring.clone())
        .redis(RedisConfig::new(format!(
            "redis://127.0.0.1:{}/0",
            server.port()
        )))
        .build()
        .unwrap()
}

/// A cache with L1 off, and cross-process leases on or off.
fn lease_cache(server: &RedisServer, keyring: &Keyring, leases: bool) -> AiResponseCache {
    let env = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "development"))
        .detect(FeatureContext::SecurityEnforcement);
    CacheBuilder::new(env)
        .options(
            CacheOptions::default()
                .with_l1_capacity(0)
                .with_leases(leases),
        )
        .keyring(keyring.clone())
        .redis(RedisConfig::new(format!(
            "redis://127.0.0.1:{}/0",
            server.port()
        )))
        .build()
        .unwrap()
}

/// What a lease costs on a miss (issue 25), paired per iteration so drift hits both alike:
/// `get_or_compute` of a new request with leases on and off (L1 off, the computation answers at
/// once), and the HTTP path's lookup miss with and without `lease` (then the lease's release).
/// Returns (path, p50, p99) rows.
async fn lease_overhead(
    server: &RedisServer,
    keyring: &Keyring,
    doc: &serde_json::Value,
) -> Vec<(String, Duration, Duration)> {
    let with = lease_cache(server, keyring, true);
    let without = lease_cache(server, keyring, false);
    let mut lat: [Vec<Duration>; 5] = Default::default();
    for i in 0..SEQUENTIAL {
        for (slot, cache) in [(0, &with), (1, &without)] {
            let request = AiRequest::new("summarize", format!("lease bench {slot} {i}"));
            let t = Instant::now();
            let answer = cache
                .get_or_compute(&request, None, || async {
                    Ok::<_, std::io::Error>(doc.clone())
                })
                .await
                .unwrap();
            lat[slot].push(t.elapsed());
            assert_eq!(answer.origin, sealcache::Origin::Computed);
        }
        let request = AiRequest::new("summarize", format!("lease lookup bench {i}"));
        let t = Instant::now();
        assert!(with.get(&request).await.unwrap().is_none());
        lat[2].push(t.elapsed());
        let t = Instant::now();
        let outcome = with
            .lookup_or_lease(
                &request,
                sealcache::LookupOptions::default().lease(Duration::from_secs(30)),
            )
            .await
            .unwrap();
        lat[3].push(t.elapsed());
        let sealcache::LookupOutcome::Lease(lease) = outcome else {
            panic!("a miss takes the lease");
        };
        let t = Instant::now();
        assert!(with.release_lease(lease.token()).await.unwrap());
        lat[4].push(t.elapsed());
    }
    for l in &mut lat {
        l.sort();
    }
    [
        "get_or_compute miss, leases on",
        "get_or_compute miss, leases off",
        "lookup miss, no lease (`get`)",
        "lookup miss taking a lease (`lookup_or_lease`)",
        "lease release (GET+PTTL, UNLINK)",
    ]
    .into_iter()
    .zip(lat)
    .map(|(name, l)| (name.to_owned(), percentile(&l, 0.5), percentile(&l, 0.99)))
    .collect()
}

/// What a tenant's or subject's data key costs on an L1-miss `get` (issue 23), paired per
/// iteration: the same medium document read (L1 off) as a shared entry (sealed under the keyring,
/// no data key), as a subject's entry (its data key held in process), and as a subject's entry
/// through a view scoped per request (`cache.tenant(t).subject(s)`, as the server does: two keyed
/// tags computed per request). Prints p50/p99 and the p50 differences.
async fn print_data_key_overhead(server: &RedisServer, keyring: &Keyring) {
    let doc = corpus("medium").into_iter().next().unwrap();
    let base = cache(server, 0, keyring);
    let shared = base.shared();
    let subject = base
        .tenant("bench-tenant")
        .unwrap()
        .subject("bench-subject")
        .unwrap();
    let request = AiRequest::new("summarize", "data key bench");
    shared.set(&request, &doc, None).await.unwrap();
    subject.set(&request, &doc, None).await.unwrap();
    let mut lat: [Vec<Duration>; 3] = Default::default();
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        assert!(shared.get(&request).await.unwrap().is_some());
        lat[0].push(t.elapsed());
        let t = Instant::now();
        assert!(subject.get(&request).await.unwrap().is_some());
        lat[1].push(t.elapsed());
        let t = Instant::now();
        let view = base
            .tenant("bench-tenant")
            .unwrap()
            .subject("bench-subject")
            .unwrap();
        assert!(view.get(&request).await.unwrap().is_some());
        lat[2].push(t.elapsed());
    }
    for l in &mut lat {
        l.sort();
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\n| L1-miss get of a medium document (paired) | p50 µs | p99 µs |");
    println!("|---|---|---|");
    for (name, l) in [
        "shared entry (keyring, no data key)",
        "subject's entry (data key held in process)",
        "subject's entry, view scoped per request",
    ]
    .into_iter()
    .zip(&lat)
    {
        println!(
            "| {name} | {:.1} | {:.1} |",
            us(percentile(l, 0.5)),
            us(percentile(l, 0.99))
        );
    }
    println!(
        "\ndata-key overhead on an L1-miss get, p50: +{:.1} µs (view per request: +{:.1} µs)",
        us(percentile(&lat[1], 0.5)) - us(percentile(&lat[0], 0.5)),
        us(percentile(&lat[2], 0.5)) - us(percentile(&lat[0], 0.5))
    );
}

/// Measures and prints [`lease_overhead`].
async fn print_lease_overhead(server: &RedisServer, keyring: &Keyring) {
    // Lease overhead on a miss (a medium document as the computed value).
    let doc = corpus("medium").into_iter().next().unwrap();
    let leases = lease_overhead(server, keyring, &doc).await;
    println!("\n| lease overhead on a miss (L1 off, paired) | p50 µs | p99 µs |");
    println!("|---|---|---|");
    for (name, p50, p99) in &leases {
        println!(
            "| {name} | {:.1} | {:.1} |",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "\nlease overhead on a miss, p50: get_or_compute +{:.1} µs, lookup +{:.1} µs",
        us(leases[0].1) - us(leases[1].1),
        us(leases[3].1) - us(leases[2].1)
    );
}

/// The events OpenAI's chat completions would stream for `doc`'s text: one chunk per ~16 bytes
/// of content (cut on character boundaries), then the final chunk with usage and `[DONE]`.
fn openai_chunks(doc: &serde_json::Value) -> Vec<SseEvent> {
    let text = serde_json::to_string(doc).unwrap();
    let mut events = Vec::new();
    let mut piece = String::new();
    for c in text.chars() {
        piece.push(c);
        if piece.len() >= 16 {
            events.push(chunk(&piece));
            piece.clear();
        }
    }
    if !piece.is_empty() {
        events.push(chunk(&piece));
    }
    events.push(SseEvent::new(
        serde_json::json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 512, "completion_tokens": events.len(), "total_tokens": 512 + events.len()}
        })
        .to_string(),
    ));
    events.push(SseEvent::new("[DONE]"));
    events
}

fn chunk(content: &str) -> SseEvent {
    SseEvent::new(
        serde_json::json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
        })
        .to_string(),
    )
}

/// Stream replay throughput (issue 26): MB/s of SSE output, from Redis and from L1.
async fn print_stream_replay(server: &RedisServer, keyring: &Keyring) {
    let streams: Vec<Vec<SseEvent>> = corpus("large").iter().map(openai_chunks).collect();
    let writer = cache(server, 0, keyring);
    let from_l1 = cache(server, 100_000, keyring);
    let requests: Vec<AiRequest> = (0..streams.len())
        .map(|i| AiRequest::new("chat", format!("stream {i}")).model("gpt-4o"))
        .collect();
    let mut sse_bytes = 0usize;
    let mut events = 0usize;
    for (request, stream) in requests.iter().zip(&streams) {
        writer.set_events(request, stream, None).await.unwrap();
        sse_bytes += sealcache::render_sse(stream).len();
        events += stream.len();
    }
    // Fill L1.
    for request in &requests {
        assert!(from_l1.get(request).await.unwrap().is_some());
    }
    println!(
        "\n| stream replay ({} streams, {} events, {:.0} KiB of SSE each on average) | MB/s | streams/s |",
        streams.len(),
        events,
        sse_bytes as f64 / streams.len() as f64 / 1024.0
    );
    println!("|---|---|---|");
    let rounds = 20;
    for (name, reader, as_events) in [
        ("SSE bytes from Redis (L1 off)", &writer, false),
        ("SSE bytes from L1", &from_l1, false),
        ("event stream from Redis (L1 off)", &writer, true),
    ] {
        let started = Instant::now();
        let mut out = 0usize;
        for _ in 0..rounds {
            for request in &requests {
                if as_events {
                    let replayed: Vec<SseEvent> = reader
                        .get_stream(request)
                        .await
                        .unwrap()
                        .unwrap()
                        .collect()
                        .await;
                    out += replayed.len();
                } else {
                    let hit = reader.get(request).await.unwrap().unwrap();
                    out += hit.sse_bytes().unwrap().len();
                }
            }
        }
        let took = started.elapsed().as_secs_f64();
        let expected = if as_events { events } else { sse_bytes } * rounds;
        assert_eq!(out, expected, "{name}: everything replayed");
        println!(
            "| {name} | {:.0} | {:.0} |",
            (sse_bytes * rounds) as f64 / took / 1e6,
            (requests.len() * rounds) as f64 / took
        );
    }
}

/// Which L1 memory figures to take.
#[derive(Clone, Copy, PartialEq)]
enum L1Scale {
    /// 10^5, then 10^6 entries under a byte bound they do not reach (the second cache reuses the
    /// first's memory, so the absolute figure is the one to read).
    Fill,
    /// A byte bound that binds: 128 MiB, 10^6 writes (about ten times what fits), so that entries
    /// are replaced until the allocator's fragmentation settles.
    Churn,
}

/// How memory grows with L1: the process's resident memory with small entries in L1 (written
/// through Redis one after the other), against the resident memory before any cache.
async fn print_l1_scale(server: &RedisServer, keyring: &Keyring, scale: L1Scale) {
    let docs = Arc::new(corpus("small"));
    let mean_plaintext = docs
        .iter()
        .map(|d| serde_json::to_vec(d).unwrap().len())
        .sum::<usize>()
        / docs.len();
    let baseline = rss_kib();
    println!(
        "\n| L1 entries (small class, {mean_plaintext} B of plaintext on average) | L1 byte bound | L1 bytes held | resident memory | beyond the baseline | beyond the baseline / byte bound | per entry, beyond its plaintext |"
    );
    println!("|---|---|---|---|---|---|---|");
    // (writes, entry bound, byte bound)
    let cases: Vec<(usize, usize, usize)> = match scale {
        L1Scale::Fill => vec![
            (100_000, 100_000, 100_000 * 2 * mean_plaintext),
            (1_000_000, 1_000_000, 1_000_000 * 2 * mean_plaintext),
        ],
        L1Scale::Churn => vec![(1_000_000, 1_000_000, 128 << 20)],
    };
    for (writes, n, bound) in cases {
        let l1 = Arc::new(cache_with(
            server,
            CacheOptions::default()
                .with_l1_capacity(n)
                .with_l1_max_bytes(bound),
            keyring,
        ));
        // One writer: a write that overlaps another on its L1 shard keeps no L1 copy (so that a
        // stale copy can never win), so concurrent writers would leave L1 part empty.
        for i in 0..writes {
            let req = AiRequest::new("scale", format!("l1 scale {bound} {i}"));
            l1.set(&req, &docs[i % docs.len()], None).await.unwrap();
        }
        let resident = rss_kib();
        let (entries, held) = (l1.l1_entries(), l1.l1_bytes());
        let added = resident.saturating_sub(baseline) as f64 * 1024.0;
        println!(
            "| {entries} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.2} | {:.0} B |",
            bound as f64 / 1_048_576.0,
            held as f64 / 1_048_576.0,
            resident as f64 / 1024.0,
            added / 1_048_576.0,
            added / bound as f64,
            added / entries.max(1) as f64 - mean_plaintext as f64
        );
        let _ = l1.clear("invalidate-all").await;
    }
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
    let ops = ops_per_sec(op, THROUGHPUT_FOR).await;
    Row {
        name,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        ops_per_sec: ops,
    }
}

/// The fair-baseline comparison of one transport: per class, p50 of raw GET, (ii) and sealcache
/// get (paired), and throughput of (ii), sealcache and raw at 64 in flight.
struct Fair {
    transport: &'static str,
    class: &'static str,
    raw_p50: Duration,
    ii_p50: Duration,
    sc_p50: Duration,
    ii_ops: f64,
    sc_ops: f64,
    raw_ops: f64,
}

async fn ops_per_sec<F, Fut>(op: Arc<F>, run_for: Duration) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Instant::now() + run_for;
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
    done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The fair baseline's (ii): `GET` the compressed payload and decompress it.
async fn get_and_decompress(
    c: &mut impl redis::aio::ConnectionLike,
    key: String,
    zstd: &sealcache_codec::Zstd,
) {
    use sealcache_codec::Compressor as _;
    let v: Vec<u8> = redis::cmd("GET").arg(key).query_async(c).await.unwrap();
    // zstd frames start with their magic number; small values are stored plain.
    if v.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        std::hint::black_box(zstd.decompress(&v, 16 << 20).unwrap());
    } else {
        std::hint::black_box(v);
    }
}

async fn fair_baseline(
    transport: &'static str,
    sealcache: Arc<AiResponseCache>,
    raw: redis::aio::MultiplexedConnection,
    manager: Option<redis::aio::ConnectionManager>,
) -> Vec<Fair> {
    use sealcache_codec::{Compressor as _, Zstd};
    let mut out = Vec::new();
    for class in ["small", "medium", "large"] {
        let docs = corpus(class);
        let n = docs.len();
        let requests: Arc<Vec<AiRequest>> = Arc::new(
            (0..n)
                .map(|i| AiRequest::new("summarize", format!("fair {transport} {class} {i}")))
                .collect(),
        );
        let zstd = Arc::new(Zstd::default());
        let mut conn = raw.clone();
        for (i, (req, doc)) in requests.iter().zip(&docs).enumerate() {
            sealcache.set(req, doc, None).await.unwrap();
            let json = serde_json::to_vec(doc).unwrap();
            let mut z = Vec::new();
            // The same payload sealcache compresses (same level and threshold), unencrypted.
            let payload = if zstd.compress(&json, &mut z).unwrap() {
                z
            } else {
                json
            };
            let _: () = redis::cmd("SET")
                .arg(format!("fair:z:{transport}:{class}:{i}"))
                .arg(payload)
                .query_async(&mut conn)
                .await
                .unwrap();
            let sealed: Vec<u8> = redis::cmd("GET")
                .arg(sealcache.key(req).unwrap())
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = redis::cmd("SET")
                .arg(format!("fair:sealed:{transport}:{class}:{i}"))
                .arg(sealed)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let ii = {
            let (raw, zstd) = (raw.clone(), zstd.clone());
            Arc::new(move |i: usize| {
                let (mut c, zstd) = (raw.clone(), zstd.clone());
                let key = format!("fair:z:{transport}:{class}:{}", i % n);
                async move { get_and_decompress(&mut c, key, &zstd).await }
            })
        };
        let sc = {
            let (sealcache, requests) = (sealcache.clone(), requests.clone());
            Arc::new(move |i: usize| {
                let (sealcache, requests) = (sealcache.clone(), requests.clone());
                async move {
                    assert!(sealcache.get(&requests[i % n]).await.unwrap().is_some());
                }
            })
        };
        let rawget = {
            let raw = raw.clone();
            Arc::new(move |i: usize| {
                let mut c = raw.clone();
                let key = format!("fair:sealed:{transport}:{class}:{}", i % n);
                async move {
                    let _: Vec<u8> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                }
            })
        };
        for i in 0..300 {
            ii(i).await;
            sc(i).await;
            rawget(i).await;
        }
        // `SEALCACHE_BENCH_FAIR_SOLO=ii|sealcache` (with `SEALCACHE_BENCH_FAIR_ONLY=1`): only that
        // path's throughput for small values over TCP, for 10 s, for a profiler attached to it.
        if let Ok(solo) = std::env::var("SEALCACHE_BENCH_FAIR_SOLO") {
            if transport != "tcp" || class != "small" {
                continue;
            }
            println!("solo {solo}: started");
            let started = Instant::now();
            let ops = match solo.as_str() {
                "ii" => ops_per_sec(ii.clone(), Duration::from_secs(10)).await,
                "sealcache" => ops_per_sec(sc.clone(), Duration::from_secs(10)).await,
                other => panic!("SEALCACHE_BENCH_FAIR_SOLO={other}: ii or sealcache"),
            };
            println!(
                "solo {solo}: {ops:.0} gets/s over {:.1} s",
                started.elapsed().as_secs_f64()
            );
            continue;
        }
        let (mut l_ii, mut l_sc, mut l_raw) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..SEQUENTIAL {
            for k in 0..3 {
                let t = Instant::now();
                match (i + k) % 3 {
                    0 => {
                        ii(i).await;
                        l_ii.push(t.elapsed());
                    }
                    1 => {
                        sc(i).await;
                        l_sc.push(t.elapsed());
                    }
                    _ => {
                        rawget(i).await;
                        l_raw.push(t.elapsed());
                    }
                }
            }
        }
        for v in [&mut l_ii, &mut l_sc, &mut l_raw] {
            v.sort();
        }
        let run_for = Duration::from_millis(1500);
        let (mut t_ii, mut t_sc) = (Vec::new(), Vec::new());
        let (mut io_ii, mut io_sc) = (RedisIo::default(), RedisIo::default());
        for _ in 0..3 {
            let before = RedisIo::read(&raw).await;
            t_ii.push(ops_per_sec(ii.clone(), run_for).await);
            let between = RedisIo::read(&raw).await;
            t_sc.push(ops_per_sec(sc.clone(), run_for).await);
            let after = RedisIo::read(&raw).await;
            io_ii.add(before, between);
            io_sc.add(between, after);
        }
        println!(
            "{transport} {class}: Redis commands per read (batching), (ii) {:.2}, sealcache {:.2}",
            io_ii.commands_per_read(),
            io_sc.commands_per_read()
        );
        let raw_ops = ops_per_sec(rawget.clone(), run_for).await;
        // (ii) through redis-rs's `ConnectionManager`, the connection sealcache uses for one
        // Redis: how much of sealcache's gap is the connection type, not sealcache's own work.
        if let Some(manager) = &manager {
            let ii_manager = {
                let (manager, zstd) = (manager.clone(), zstd.clone());
                Arc::new(move |i: usize| {
                    let (mut c, zstd) = (manager.clone(), zstd.clone());
                    let key = format!("fair:z:{transport}:{class}:{}", i % n);
                    async move { get_and_decompress(&mut c, key, &zstd).await }
                })
            };
            let mut t_manager = Vec::new();
            let mut t_again = Vec::new();
            for _ in 0..3 {
                t_again.push(ops_per_sec(ii.clone(), run_for).await);
                t_manager.push(ops_per_sec(ii_manager.clone(), run_for).await);
            }
            println!(
                "{transport} {class}: (ii) over a multiplexed connection {:.0} ops/s, over a ConnectionManager {:.0} ops/s",
                median(t_again),
                median(t_manager)
            );
        }
        out.push(Fair {
            transport,
            class,
            raw_p50: percentile(&l_raw, 0.5),
            ii_p50: percentile(&l_ii, 0.5),
            sc_p50: percentile(&l_sc, 0.5),
            ii_ops: median(t_ii),
            sc_ops: median(t_sc),
            raw_ops,
        });
    }
    out
}

/// Redis's own counts of commands and of reads from clients (`INFO stats`): commands per read is
/// how many commands a client's connection sent in each batch.
#[derive(Clone, Copy, Default)]
struct RedisIo {
    commands: u64,
    reads: u64,
}

impl RedisIo {
    async fn read(conn: &redis::aio::MultiplexedConnection) -> Self {
        let mut conn = conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        Self {
            commands: field("total_commands_processed"),
            reads: field("total_reads_processed"),
        }
    }

    fn add(&mut self, from: Self, to: Self) {
        self.commands += to.commands.saturating_sub(from.commands);
        self.reads += to.reads.saturating_sub(from.reads);
    }

    fn commands_per_read(&self) -> f64 {
        self.commands as f64 / self.reads.max(1) as f64
    }
}

fn print_fair(rows: &[Fair]) {
    println!(
        "\n| transport | class | raw GET p50 µs | (ii) GET+zstd p50 µs | sealcache get p50 µs | added p50 vs (ii) µs | (ii) ops/s | sealcache ops/s | sealcache / (ii) | raw GET ops/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for f in rows {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:+.1} | {:.0} | {:.0} | {:.0} % | {:.0} |",
            f.transport,
            f.class,
            us(f.raw_p50),
            us(f.ii_p50),
            us(f.sc_p50),
            us(f.sc_p50) - us(f.ii_p50),
            f.ii_ops,
            f.sc_ops,
            f.sc_ops / f.ii_ops * 100.0,
            f.raw_ops
        );
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
    let raw = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    let mut paired = Vec::new();
    // One keyring for every cache: they read each other's values (as replicas of a service do).
    let keyring = Keyring::generate().unwrap();
    // `SEALCACHE_BENCH_LEASE_ONLY=1`: only the lease-overhead table.
    if std::env::var_os("SEALCACHE_BENCH_LEASE_ONLY").is_some() {
        print_lease_overhead(&server, &keyring).await;
        return;
    }
    // `SEALCACHE_BENCH_STREAM_ONLY=1`: only the stream replay table.
    if std::env::var_os("SEALCACHE_BENCH_STREAM_ONLY").is_some() {
        print_stream_replay(&server, &keyring).await;
        return;
    }
    // `SEALCACHE_BENCH_L1_SCALE_ONLY=1`: only how memory grows with L1.
    if std::env::var_os("SEALCACHE_BENCH_L1_SCALE_ONLY").is_some() {
        print_l1_scale(&server, &keyring, L1Scale::Fill).await;
        return;
    }
    // `SEALCACHE_BENCH_L1_CHURN_ONLY=1`: only L1's memory under churn at a binding byte bound (a
    // process of its own, so that no earlier fill's memory hides it).
    if std::env::var_os("SEALCACHE_BENCH_L1_CHURN_ONLY").is_some() {
        print_l1_scale(&server, &keyring, L1Scale::Churn).await;
        return;
    }
    // `SEALCACHE_BENCH_DATA_KEY_ONLY=1`: only the data-key overhead table.
    if std::env::var_os("SEALCACHE_BENCH_DATA_KEY_ONLY").is_some() {
        print_data_key_overhead(&server, &keyring).await;
        return;
    }
    // `SEALCACHE_BENCH_FAIR_ONLY=1`: only the fair-baseline tables (for profiling them).
    let classes: &[&str] = if std::env::var_os("SEALCACHE_BENCH_FAIR_ONLY").is_some() {
        &[]
    } else {
        &["medium", "large"]
    };
    for &class in classes {
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

    print_lease_overhead(&server, &keyring).await;
    print_stream_replay(&server, &keyring).await;

    // The fair baseline, over plain TCP and over TLS.
    let plain = client.get_multiplexed_async_connection().await.unwrap();
    // `SEALCACHE_BENCH_FAIR_MANAGER=1`: also (ii) through a `ConnectionManager` (TCP).
    let manager = if std::env::var_os("SEALCACHE_BENCH_FAIR_MANAGER").is_some() {
        Some(
            redis::aio::ConnectionManager::new(client.clone())
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let mut fair =
        fair_baseline("tcp", Arc::new(cache(&server, 0, &keyring)), plain, manager).await;
    if std::env::var_os("SEALCACHE_BENCH_FAIR_SOLO").is_some() {
        return;
    }
    // The production transport: the tests' TLS + client-certificate + ACL stack (`cache_app` for
    // sealcache, `cache_admin` for the raw reads).
    let tls = common::Stack::start();
    let tls_cache = Arc::new(tls.cache_with(CacheOptions::default().with_l1_capacity(0)));
    fair.extend(fair_baseline("tls", tls_cache, tls.admin().await, None).await);
    print_fair(&fair);
}
