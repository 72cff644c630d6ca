//! `cargo xtask bench server`: 64 concurrent HTTP clients on loopback for 30 s against the
//! `sealcache-server` binary (production configuration, TLS + mTLS + ACL redis-server), mixed 90 %
//! lookups / 10 % stores of the corpus' medium documents. Requests per second, p50/p99 latency,
//! errors (must be 0), and wrong answers (must be 0): every hit's `response` is compared byte for
//! byte with the JSON text stored for that request.
//!
//! Tracing cost: the run alternates (ABBA, twice: four runs each) a server without OTLP export and one exporting
//! traces and security log records to a local OTLP sink with `parentbased_traceidratio` 0.1, and
//! prints the throughput ratio (target ≥ 95 %). `SEALCACHE_BENCH_TRACES=0` runs the plain server
//! once. `SEALCACHE_BENCH_ROUNDS` sets how many ABBA rounds run (default 2).
//!
//! Every run also prints the server's CPU time per request (the server process, all its threads,
//! the exporter's included, from `/proc/PID/stat`). `SEALCACHE_BENCH_RATE=N` offers a fixed load
//! of `N` requests/s (spread over the 64 clients) instead of as many as the clients can send: the
//! server then does the same work in both configurations, and its CPU per request, not the
//! throughput of two shared cores, measures what tracing costs (a server on cores of its own loses
//! that share of its throughput). `SEALCACHE_BENCH_TOGETHER=1` runs the two servers at once, each
//! client alternating between them, `SEALCACHE_BENCH_ROUNDS` times with fresh servers: the
//! steadiest comparison on a machine whose speed drifts, since a drift falls on both alike.
//! `SEALCACHE_BENCH_TOGETHER=control` runs two plain servers the same way: the ratio it prints is
//! the harness's own error.

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

/// The offered load in requests/s (`SEALCACHE_BENCH_RATE`), or `None`: as fast as the clients go.
fn offered_rate() -> Option<f64> {
    std::env::var("SEALCACHE_BENCH_RATE").ok().map(|s| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|r| *r > 0.0)
            .expect("SEALCACHE_BENCH_RATE: requests per second, a positive number")
    })
}

/// The traced server's `OTEL_TRACES_SAMPLER_ARG`: 0.1, or `SEALCACHE_BENCH_SAMPLER_ARG` (to
/// split what tracing costs every request from what it costs a sampled one).
fn sampled_ratio() -> String {
    std::env::var("SEALCACHE_BENCH_SAMPLER_ARG").unwrap_or_else(|_| "0.1".to_owned())
}

/// The load, as the result tables name it.
fn offered_label() -> String {
    offered_rate().map_or_else(
        || format!("{CLIENTS} clients"),
        |r| format!("{CLIENTS} clients, {r:.0} req/s offered"),
    )
}

/// CPU time a process has used (user + system, all its threads), in seconds, from
/// `/proc/PID/stat` (clock ticks of `USER_HZ` = 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// What one run measured.
#[derive(Clone, Copy)]
struct Measured {
    /// Requests per second.
    rps: f64,
    /// The server's CPU time per request, µs.
    server_cpu_us: f64,
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
    let start = |traced: bool| {
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
                ("OTEL_TRACES_SAMPLER_ARG", sampled_ratio()),
            ] {
                vars.push((k.to_owned(), v));
            }
        }
        let server = common::start_server(&vars, None);
        let label = if traced {
            format!(
                "traces exported (parentbased_traceidratio {})",
                sampled_ratio()
            )
        } else {
            "no export".to_owned()
        };
        (server, label)
    };
    let run = |traced: bool| {
        let (server, label) = start(traced);
        let target = Target {
            base: server.base.clone(),
            pid: server.child.id(),
            label,
        };
        let measured = runtime.block_on(load(&[target], &key, offered_rate()));
        drop(server);
        measured[0]
    };
    if !compare {
        run(false);
        return;
    }
    let rounds: usize = std::env::var("SEALCACHE_BENCH_ROUNDS").ok().map_or(2, |s| {
        s.trim().parse().expect("SEALCACHE_BENCH_ROUNDS: a count")
    });
    let together_mode = std::env::var("SEALCACHE_BENCH_TOGETHER").unwrap_or_default();
    if together_mode == "1" || together_mode == "control" {
        // `control`: two plain servers, which measures the harness's own asymmetry.
        let second_traced = together_mode == "1";
        together(rounds, &|| {
            let ((plain, plain_label), (traced, traced_label)) =
                (start(false), start(second_traced));
            let targets = [
                Target {
                    base: plain.base.clone(),
                    pid: plain.child.id(),
                    label: plain_label,
                },
                Target {
                    base: traced.base.clone(),
                    pid: traced.child.id(),
                    label: traced_label,
                },
            ];
            let measured = runtime.block_on(load(&targets, &key, offered_rate()));
            (measured[0], measured[1])
        });
        return;
    }
    // ABBA order: a drift of the machine over the run (warm-up, Redis memory, thermal) cancels
    // out instead of favouring whichever configuration runs first.
    let (mut plain, mut traced) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.push(run(false));
        traced.push(run(true));
        traced.push(run(true));
        plain.push(run(false));
    }
    let mean =
        |v: &[Measured], f: fn(&Measured) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let runs = 2 * rounds;
    let offered = offered_label();
    let (rps_plain, rps_traced) = (mean(&plain, |m| m.rps), mean(&traced, |m| m.rps));
    let (cpu_plain, cpu_traced) = (
        mean(&plain, |m| m.server_cpu_us),
        mean(&traced, |m| m.server_cpu_us),
    );
    // Each ABBA round gives one ratio (its two traced runs over its two plain runs): the spread of
    // these per-round ratios, not of single runs, bounds what a drifting machine did to the mean.
    let per_round = |f: fn(&Measured) -> f64| -> (f64, f64) {
        let ratios: Vec<f64> = traced
            .chunks(2)
            .zip(plain.chunks(2))
            .map(|(t, p)| (f(&t[0]) + f(&t[1])) / (f(&p[0]) + f(&p[1])))
            .collect();
        mean_and_ci95(&ratios)
    };
    let (rps_ratio, rps_ci) = per_round(|m| m.rps);
    let (cpu_ratio, cpu_ci) = per_round(|m| m.server_cpu_us);
    println!(
        "\n| tracing cost | no export | traces exported | traced / plain, mean of {rounds} ABBA rounds ± 95 % CI |\n|---|---|---|---|\n| throughput, {offered}, {runs} runs each | {rps_plain:.0} req/s | {rps_traced:.0} req/s | {:.1} % ± {:.1} |\n| server CPU per request | {cpu_plain:.1} µs | {cpu_traced:.1} µs | {:.1} % ± {:.1} (a server on its own cores keeps {:.1} % of its throughput) |",
        100.0 * rps_ratio,
        100.0 * rps_ci,
        100.0 * cpu_ratio,
        100.0 * cpu_ci,
        100.0 / cpu_ratio,
    );
}

/// `SEALCACHE_BENCH_TOGETHER=1`: both servers run at once and every client alternates between
/// them, so each serves the same requests in the same seconds and a drift of the machine falls on
/// both alike; `rounds` pairs of fresh servers. Only the CPU per request is compared (the
/// throughputs are equal by construction).
fn together(rounds: usize, pair: &dyn Fn() -> (Measured, Measured)) {
    let (mut ratios, mut plain, mut traced) = (Vec::new(), 0.0, 0.0);
    for _ in 0..rounds {
        let (p, t) = pair();
        ratios.push(t.server_cpu_us / p.server_cpu_us);
        plain += p.server_cpu_us / rounds as f64;
        traced += t.server_cpu_us / rounds as f64;
    }
    let (ratio, ci) = mean_and_ci95(&ratios);
    let offered = offered_label();
    println!(
        "\n| tracing cost, both servers at once | no export | traces exported | traced / plain, mean of {rounds} rounds ± 95 % CI |\n|---|---|---|---|\n| server CPU per request, {offered} | {plain:.1} µs | {traced:.1} µs | {:.1} % ± {:.1} (a server on its own cores keeps {:.1} % of its throughput) |",
        100.0 * ratio,
        100.0 * ci,
        100.0 / ratio,
    );
}

/// The mean of `v` and the half-width of its 95 % confidence interval (Student's t; infinite for
/// a single value).
fn mean_and_ci95(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::INFINITY);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // Two-sided 95 % quantiles of Student's t for 1 to 10 degrees of freedom, then about 2.
    const T95: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    let t = T95.get(v.len() - 2).copied().unwrap_or(2.1);
    (mean, t * (var / n).sqrt())
}

fn medium_docs() -> Vec<Value> {
    common::corpus()
        .into_iter()
        .filter(|v| v["size_class"] == "medium")
        .collect()
}

/// One server under load.
struct Target {
    base: String,
    pid: u32,
    label: String,
}

/// Runs the load against `targets` (each client's requests alternate between them) and measures
/// each one.
async fn load(targets: &[Target], key: &str, rate: Option<f64>) -> Vec<Measured> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for target in targets {
        let base = &target.base;
        while http.get(format!("{base}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
    // Prefill so that lookups hit (through each server, so each one's L1 starts alike).
    for target in targets {
        for body in stores.iter() {
            let r = http
                .put(format!("{}/v1/cache/entries", target.base))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    }
    let bases: Arc<Vec<String>> = Arc::new(targets.iter().map(|t| t.base.clone()).collect());
    let errors = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let hits = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + duration();
    let started = Instant::now();
    let cpu_started: Vec<f64> = targets.iter().map(|t| cpu_seconds(t.pid)).collect();
    // With an offered rate, each client sends at its share of it (a request every `period`,
    // whatever the last one took, so every configuration gets the same arrivals).
    let period = rate.map(|r| Duration::from_secs_f64(CLIENTS as f64 / r));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, bases, key, docs, errors) = (
                http.clone(),
                bases.clone(),
                key.to_owned(),
                docs.clone(),
                errors.clone(),
            );
            let (texts, stores, wrong, hits) =
                (texts.clone(), stores.clone(), wrong.clone(), hits.clone());
            tokio::spawn(async move {
                // Latencies per target.
                let mut lat = vec![Vec::new(); bases.len()];
                let mut i = c;
                let mut turn = c;
                let mut ticks = period.map(|p| {
                    // Spread the clients' first requests over one period.
                    let first = tokio::time::Instant::now() + p.mul_f64(c as f64 / CLIENTS as f64);
                    tokio::time::interval_at(first, p)
                });
                while Instant::now() < stop {
                    if let Some(ticks) = ticks.as_mut() {
                        ticks.tick().await;
                    }
                    let target = turn % bases.len();
                    turn += 1;
                    let base = &bases[target];
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
                                lat[target].push(t_done);
                                i += CLIENTS;
                                continue;
                            }
                            other => other.map(|_| false),
                        }
                    };
                    lat[target].push(t.elapsed());
                    if !ok.unwrap_or(false) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    i += CLIENTS;
                }
                lat
            })
        })
        .collect();
    let mut all = vec![Vec::new(); targets.len()];
    for t in tasks {
        for (target, lat) in t.await.unwrap().into_iter().enumerate() {
            all[target].extend(lat);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu: Vec<f64> = targets
        .iter()
        .zip(&cpu_started)
        .map(|(t, before)| cpu_seconds(t.pid) - before)
        .collect();
    println!(
        "\n| server | clients | duration | requests | requests/s | server CPU µs/request | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let measured = targets
        .iter()
        .zip(&mut all)
        .zip(&server_cpu)
        .map(|((target, lat), cpu)| {
            lat.sort();
            let pct =
                |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
            let m = Measured {
                rps: lat.len() as f64 / elapsed,
                server_cpu_us: cpu * 1e6 / lat.len() as f64,
            };
            println!(
                "| {} | {CLIENTS} | {elapsed:.0} s | {} | {:.0} | {:.1} | {:.2} | {:.2} |",
                target.label,
                lat.len(),
                m.rps,
                m.server_cpu_us,
                pct(0.5),
                pct(0.99),
            );
            m
        })
        .collect();
    println!(
        "errors {}, hits verified {}, wrong answers {}",
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
    measured
}
