//! `cargo xtask bench server`: 64 concurrent HTTP clients on loopback for 30 s against the
//! `sealcache-server` binary (production configuration, TLS + mTLS + ACL redis-server), mixed 90 %
//! lookups / 10 % stores of the corpus' medium documents. Requests per second, p50/p99 latency,
//! errors (must be 0), and wrong answers (must be 0): every hit's `response` is compared byte for
//! byte with the JSON text stored for that request.
//!
//! Tracing cost: the run alternates (ABBA, twice: four runs each) a server without OTLP export and one exporting
//! traces and security log records to a local OTLP sink with `parentbased_traceidratio` 0.1, and
//! prints the throughput ratio (target ≥ 95 %). `SEALCACHE_BENCH_TRACES=0` runs the plain server
//! once.

// A benchmark program reports what it measured.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use serde_json::{Value, json};

const CLIENTS: usize = 64;
/// 30 s, or `SEALCACHE_BENCH_SECS`.
fn duration() -> Duration {
    Duration::from_secs(
        std::env::var("SEALCACHE_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    )
}

#[path = "../tests/common/server.rs"]
mod common;

/// An OTLP/HTTP sink on loopback: reads each request and answers 200 at once.
fn otlp_sink() -> u16 {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err()
                        || stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn main() {
    let stack = common::Stack::start();
    let key = stack.secret(layout::API_KEY);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let compare = std::env::var("SEALCACHE_BENCH_TRACES").map_or(true, |v| v != "0");
    let sink = otlp_sink();
    let run = |traced: bool| {
        let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
        vars.push(("SEALCACHE_LOG".to_owned(), "warn".to_owned()));
        if traced {
            for (k, v) in [
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    format!("http://127.0.0.1:{sink}/v1/traces"),
                ),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    format!("http://127.0.0.1:{sink}/v1/logs"),
                ),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1".to_owned()),
            ] {
                vars.push((k.to_owned(), v));
            }
        }
        let server = common::start_server(&vars, None);
        let label = if traced {
            "traces exported (parentbased_traceidratio 0.1)"
        } else {
            "no export"
        };
        let rps = runtime.block_on(load(server.base.clone(), key.clone(), label));
        drop(server);
        rps
    };
    if !compare {
        run(false);
        return;
    }
    // ABBA order, twice: a drift of the machine over the run (warm-up, Redis memory, thermal)
    // cancels out instead of favouring whichever configuration runs first.
    let (mut plain, mut traced) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        plain.push(run(false));
        traced.push(run(true));
        traced.push(run(true));
        plain.push(run(false));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "\n| tracing cost | no export req/s | traces exported req/s | ratio |\n|---|---|---|---|\n| 64 clients, ABBA x2 (4 runs each) | {:.0} | {:.0} | {:.1} % |",
        mean(&plain),
        mean(&traced),
        100.0 * mean(&traced) / mean(&plain)
    );
}

fn medium_docs() -> Vec<Value> {
    common::corpus()
        .into_iter()
        .filter(|v| v["size_class"] == "medium")
        .collect()
}

async fn load(base: String, key: String, label: &str) -> f64 {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let docs = Arc::new(medium_docs());
    // The exact JSON text stored for each request (spliced into the body as it is), and the store
    // bodies built once.
    let texts: Arc<Vec<String>> = Arc::new(docs.iter().map(|d| d.to_string()).collect());
    let stores: Arc<Vec<String>> = Arc::new(
        docs.iter()
            .zip(texts.iter())
            .enumerate()
            .map(|(i, (doc, text))| {
                format!(
                    r#"{{"text": "doc {i}", "operation": {}, "response": {text}}}"#,
                    doc["operation"]
                )
            })
            .collect(),
    );
    // Prefill so that lookups hit.
    for body in stores.iter() {
        let r = http
            .put(format!("{base}/v1/cache/entries"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let errors = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let hits = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + duration();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, base, key, docs, errors) = (
                http.clone(),
                base.clone(),
                key.clone(),
                docs.clone(),
                errors.clone(),
            );
            let (texts, stores, wrong, hits) =
                (texts.clone(), stores.clone(), wrong.clone(), hits.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = c;
                while Instant::now() < stop {
                    let n = i % docs.len();
                    let t = Instant::now();
                    let ok = if i % 10 == 0 {
                        http.put(format!("{base}/v1/cache/entries"))
                            .bearer_auth(&key)
                            .header("content-type", "application/json")
                            .body(stores[n].clone())
                            .send()
                            .await
                            .map(|r| r.status() == 201)
                    } else {
                        let body =
                            json!({"text": format!("doc {n}"), "operation": docs[n]["operation"]});
                        match http
                            .post(format!("{base}/v1/cache/lookup"))
                            .bearer_auth(&key)
                            .json(&body)
                            .send()
                            .await
                        {
                            Ok(r) if r.status() == 200 => {
                                let t_done = t.elapsed();
                                let bytes = r.bytes().await.unwrap_or_default();
                                // Checked outside the timed span: the answer must be the stored text.
                                let answer: std::collections::HashMap<
                                    &str,
                                    &serde_json::value::RawValue,
                                > = serde_json::from_slice(&bytes).unwrap_or_default();
                                match (answer.get("hit").map(|h| h.get()), answer.get("response")) {
                                    (Some("true"), Some(resp)) if resp.get() == texts[n] => {
                                        hits.fetch_add(1, Ordering::Relaxed);
                                    }
                                    _ => {
                                        wrong.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                lat.push(t_done);
                                i += CLIENTS;
                                continue;
                            }
                            other => other.map(|_| false),
                        }
                    };
                    lat.push(t.elapsed());
                    if !ok.unwrap_or(false) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    i += CLIENTS;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "\n| server | clients | duration | requests | requests/s | p50 ms | p99 ms | errors | hits verified | wrong answers |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {label} | {CLIENTS} | {:.0} s | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
        elapsed,
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        errors.load(Ordering::Relaxed),
        hits.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0, "the load run had errors");
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "a lookup answered something other than what was stored (or missed)"
    );
    assert!(hits.load(Ordering::Relaxed) > 0, "no hit was verified");
    all.len() as f64 / elapsed
}
