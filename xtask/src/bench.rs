//! `cargo xtask bench [codec|monitor|cache|server|cluster|python]`: criterion benchmarks over ../shared/bench/corpus.jsonl, then a
//! summary table (throughput, encryption overhead, size ratios) for docs/benchmarks.md.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::progress::{cargo, step};

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Suite {
    /// Seal/open round trips of the codec (compression only, envelope, AES-GCM only).
    Codec,
    /// Cost of recording one lookup on the hit path (OpenTelemetry, in-process, both).
    Monitor,
    /// The cache against raw redis-rs on a real redis-server (latency, throughput, L1 memory).
    Cache,
    /// The HTTP server under 64 concurrent clients for 30 s (90 % lookups, 10 % stores).
    Server,
    /// The cache on a 6-node TLS Redis Cluster against one node (64 in flight), and the failover
    /// gap.
    Cluster,
    /// The Python package (release wheel) against redis-py raw GET/SET and the template's own
    /// Fernet + zlib path, on one loopback redis-server.
    Python,
}

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The suite to run (all when omitted).
    suite: Option<Suite>,
    /// Only print the summary of the last run, without running the benchmarks again.
    #[arg(long)]
    summary_only: bool,
}

impl BenchArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let suites = match self.suite {
            Some(s) => vec![s],
            None => vec![
                Suite::Codec,
                Suite::Monitor,
                Suite::Cache,
                Suite::Server,
                Suite::Cluster,
                Suite::Python,
            ],
        };
        let results = crate::progress::target_dir().join("criterion");
        for suite in suites {
            if matches!(suite, Suite::Python) {
                if !self.summary_only {
                    crate::redis_install::ensure(&[crate::redis_install::REDIS])?;
                    crate::python::bench()?;
                }
                continue;
            }
            let (name, args): (&str, &[&str]) = match suite {
                Suite::Python => continue,
                Suite::Codec => (
                    "bench codec",
                    &[
                        "-p",
                        "sealcache-codec",
                        "--features",
                        "rustcrypto",
                        "--bench",
                        "codec",
                    ],
                ),
                Suite::Monitor => (
                    "bench monitor",
                    &[
                        "-p",
                        "sealcache-monitor",
                        "--features",
                        "otel,prometheus",
                        "--bench",
                        "record",
                    ],
                ),
                // The cache and server benchmarks need sealcache-testkit (redis-server), so they
                // live in the unpublished integration-tests package.
                Suite::Cache => (
                    "bench cache",
                    &["-p", "sealcache-integration-tests", "--bench", "cache"],
                ),
                Suite::Cluster => (
                    "bench cluster",
                    &["-p", "sealcache-integration-tests", "--bench", "cluster"],
                ),
                Suite::Server => (
                    "bench server",
                    &[
                        "-p",
                        "sealcache-integration-tests",
                        "--bench",
                        "server_load",
                    ],
                ),
            };
            if !self.summary_only {
                if matches!(suite, Suite::Cache | Suite::Server | Suite::Cluster) {
                    crate::redis_install::ensure(&[crate::redis_install::REDIS])?;
                }
                // One place for every criterion result, whichever package directory cargo runs in.
                step(
                    name,
                    cargo()
                        .arg("bench")
                        .args(args)
                        .env("CRITERION_HOME", &results),
                )?;
            }
            match suite {
                Suite::Codec => print_codec_summary(&results)?,
                Suite::Monitor => print_monitor_summary(&results)?,
                // These harnesses print their own tables.
                Suite::Cache | Suite::Server | Suite::Cluster | Suite::Python => {}
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Mean throughput in MB/s (10^6 bytes) of one criterion benchmark.
fn throughput_mb_s(dir: &Path, group: &str, bench: &str) -> anyhow::Result<f64> {
    let base = dir.join(group).join(bench).join("new");
    let read = |file: &str| -> anyhow::Result<Value> {
        let path = base.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no criterion result at {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    };
    let ns = read("estimates.json")?["mean"]["point_estimate"]
        .as_f64()
        .context("estimates.json without a mean")?;
    let bytes = read("benchmark.json")?["throughput"]["Bytes"]
        .as_f64()
        .context("benchmark.json without a byte throughput")?;
    Ok(bytes / ns * 1e3)
}

fn print_codec_summary(dir: &Path) -> anyhow::Result<()> {
    let sizes_path = dir.join("codec-sizes.json");
    let sizes: Value = serde_json::from_str(
        &std::fs::read_to_string(&sizes_path)
            .with_context(|| format!("no {}: run the benchmark first", sizes_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", sizes_path.display()))?;
    println!();
    println!(
        "CPU: {}",
        sizes["cpu"]
            .as_str()
            .unwrap_or("unknown (run the benchmark again)")
    );
    println!();
    println!(
        "| class | (a) zstd only MB/s | (b) envelope MB/s | (c) AES-GCM only MB/s | overhead (b) vs (a), seal+open, paired | overhead, open only, paired | RustCrypto seal+open / open | stored/plain | zstd only/plain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for class in ["small", "medium", "large"] {
        let group = format!("codec_{class}");
        let a = throughput_mb_s(dir, &group, "a_compress_only")?;
        let b = throughput_mb_s(dir, &group, "b_envelope")?;
        let c = throughput_mb_s(dir, &group, "c_aes_gcm_only")?;
        let s = &sizes[class];
        let plain = s["plain"].as_f64().unwrap_or(f64::NAN);
        let pct = |v: &Value| {
            v.as_f64()
                .map_or_else(|| "n/a".to_owned(), |x| format!("{:+.1} %", x * 100.0))
        };
        println!(
            "| {class} | {a:.0} | {b:.0} | {c:.0} | {} | {} | {} / {} | {:.3} | {:.3} |",
            pct(&s["paired_overhead"]),
            pct(&s["paired_open_overhead"]),
            pct(&s["rustcrypto"]["seal_open"]),
            pct(&s["rustcrypto"]["open"]),
            s["stored"].as_f64().unwrap_or(f64::NAN) / plain,
            s["zstd_only"].as_f64().unwrap_or(f64::NAN) / plain,
        );
    }
    println!();
    println!(
        "| class | dictionary | zstd B | with dictionary B | size change | compress+decompress time change |"
    );
    println!("|---|---|---|---|---|---|");
    for class in ["small", "medium"] {
        let d = &sizes[format!("dictionary/{class}")];
        let (zstd, with) = (
            d["zstd"].as_f64().unwrap_or(f64::NAN),
            d["zstd_with_dictionary"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "| {class} | {} B | {zstd:.0} | {with:.0} | {:+.1} % | {:+.1} % |",
            d["dictionary_bytes"],
            (with / zstd - 1.0) * 100.0,
            d["time_change"].as_f64().unwrap_or(f64::NAN) * 100.0
        );
    }
    let levels_path = dir.join("codec-levels.json");
    if let Ok(text) = std::fs::read_to_string(&levels_path) {
        let levels: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", levels_path.display()))?;
        println!();
        println!(
            "| zstd level | medium MB/s | medium stored/plain | large MB/s | large stored/plain |"
        );
        println!("|---|---|---|---|---|");
        for level in [1, 2, 3, 4, 5, 6, 9] {
            let bench = format!("zstd{level}");
            let (Ok(m), Ok(l)) = (
                throughput_mb_s(dir, "level_medium", &bench),
                throughput_mb_s(dir, "level_large", &bench),
            ) else {
                continue;
            };
            println!(
                "| {level} | {m:.0} | {:.3} | {l:.0} | {:.3} |",
                levels[format!("medium/{bench}")]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                levels[format!("large/{bench}")]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            );
        }
    }
    Ok(())
}

fn print_monitor_summary(dir: &Path) -> anyhow::Result<()> {
    println!();
    println!("| recorder | ns per lookup (mean) |");
    println!("|---|---|");
    for bench in ["otel", "in_process", "both"] {
        let path = dir
            .join("monitor_lookup_hit")
            .join(bench)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no criterion result at {}", path.display()))?;
        let ns = serde_json::from_str::<Value>(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?["mean"]["point_estimate"]
            .as_f64()
            .context("estimates.json without a mean")?;
        println!("| {bench} | {ns:.1} |");
    }
    Ok(())
}
