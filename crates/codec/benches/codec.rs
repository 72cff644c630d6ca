//! Codec benchmarks over the shared corpus (`../shared/bench/corpus.jsonl`, or `SEALCACHE_CORPUS`).
//!
//! Per size class: seal+open round trips of (a) compression only, (b) the envelope (compression +
//! AES-256-GCM, ring's by default), (c) AES-256-GCM alone; the encryption overhead of (b) over (a)
//! measured paired, seal+open and open-only, for ring and for RustCrypto; stored/plain size ratios;
//! a trained zstd dictionary against none; and the zstd level curve. `cargo xtask bench codec`
//! runs this and prints the tables for docs/benchmarks.md.

// A benchmark program reports what it measured.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sealcache_codec::{
    Cipher, Compressor, DEFAULT_COMPRESSION_THRESHOLD, DefaultCipher, Keyring, NoCompression,
    SealContext, ValueCodec, Zstd,
};

const CLASSES: [&str; 3] = ["small", "medium", "large"];
const LEVELS: [i32; 7] = [1, 2, 3, 4, 5, 6, 9];

fn corpus_path() -> PathBuf {
    std::env::var_os("SEALCACHE_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/corpus.jsonl"),
        PathBuf::from,
    )
}

/// The documents of one size class, as stored: each line's compact JSON bytes.
fn class(name: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(corpus_path()).expect("corpus: set SEALCACHE_CORPUS");
    text.lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["size_class"] == name)
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn ctx() -> SealContext<'static> {
    SealContext::new(
        "ai_cache",
        "ai_cache:v2:summarize:0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    )
}

fn compress_round_trip(z: &Zstd, docs: &[Vec<u8>], scratch: &mut Vec<u8>) -> usize {
    let mut total = 0;
    for d in docs {
        let compressed = z.compress(d, scratch).unwrap();
        total += if compressed {
            z.decompress(scratch, 16 << 20).unwrap().len()
        } else {
            d.clone().len()
        };
    }
    total
}

fn envelope_round_trip<C: Compressor, K: Cipher>(
    codec: &ValueCodec<C, K>,
    docs: &[Vec<u8>],
) -> usize {
    let ctx = ctx();
    docs.iter()
        .map(|d| {
            let sealed = codec.seal(&ctx, d).unwrap();
            codec
                .open(&ctx, sealed.as_bytes())
                .unwrap()
                .as_bytes()
                .len()
        })
        .sum()
}

fn sizes<C: Compressor>(codec: &ValueCodec<C>, docs: &[Vec<u8>]) -> (usize, usize) {
    let plain: usize = docs.iter().map(Vec::len).sum();
    let stored: usize = docs
        .iter()
        .map(|d| codec.seal(&ctx(), d).unwrap().stored_len())
        .sum();
    (plain, stored)
}

/// The median of 41 paired A/B rounds of `b / a - 1`: (a) and (b) alternate within each round (in
/// alternating order). On a shared VM whose speed drifts this is far steadier than comparing two
/// criterion runs taken minutes apart.
fn paired(bytes: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> f64 {
    let reps = (2_000_000 / bytes.max(1)).max(2); // about 20 ms of work per timing
    let time = |which: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..reps {
            which();
        }
        start.elapsed().as_secs_f64()
    };
    time(&mut a);
    time(&mut b);
    let mut ratios: Vec<f64> = (0..41)
        .map(|round| {
            if round % 2 == 0 {
                let ta = time(&mut a);
                time(&mut b) / ta
            } else {
                let tb = time(&mut b);
                tb / time(&mut a)
            }
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2] - 1.0
}

/// Encryption overhead of `codec` over compression alone: (seal+open, open-only).
fn overheads<K: Cipher>(z: &Zstd, codec: &ValueCodec<Zstd, K>, docs: &[Vec<u8>]) -> (f64, f64) {
    let bytes: usize = docs.iter().map(Vec::len).sum();
    let mut scratch = Vec::new();
    let round_trip = paired(
        bytes,
        || {
            black_box(compress_round_trip(z, black_box(docs), &mut scratch));
        },
        || {
            black_box(envelope_round_trip(codec, black_box(docs)));
        },
    );
    // Open-only: decompress the compressed documents vs open the sealed ones.
    let ctx = ctx();
    let compressed: Vec<(bool, Vec<u8>)> = docs
        .iter()
        .map(|d| {
            let mut out = Vec::new();
            let c = z.compress(d, &mut out).unwrap();
            (c, if c { out } else { d.clone() })
        })
        .collect();
    let sealed: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| codec.seal(&ctx, d).unwrap().as_bytes().to_vec())
        .collect();
    let open_only = paired(
        bytes,
        || {
            for (c, d) in &compressed {
                if *c {
                    black_box(z.decompress(black_box(d), 16 << 20).unwrap());
                } else {
                    black_box(d.clone());
                }
            }
        },
        || {
            for s in &sealed {
                black_box(codec.open(&ctx, black_box(s)).unwrap());
            }
        },
    );
    (round_trip, open_only)
}

/// The CPU the figures come from (`model name` in /proc/cpuinfo).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// A zstd dictionary trained on the even-numbered documents of the small and medium classes,
/// measured on the odd-numbered ones (never trained on): stored size and compress+decompress
/// speed, with and without it, at the default level.
fn dictionary(report: &mut serde_json::Map<String, serde_json::Value>) {
    let level = 2;
    for name in ["small", "medium"] {
        let docs = class(name);
        let train: Vec<&Vec<u8>> = docs.iter().step_by(2).collect();
        let test: Vec<&Vec<u8>> = docs.iter().skip(1).step_by(2).collect();
        let samples: Vec<&[u8]> = train.iter().map(|d| d.as_slice()).collect();
        let dict = zstd::dict::from_samples(&samples, 16 * 1024).unwrap();
        let plain: usize = test.iter().map(|d| d.len()).sum();
        let mut plain_c = zstd::bulk::Compressor::new(level).unwrap();
        let mut dict_c = zstd::bulk::Compressor::with_dictionary(level, &dict).unwrap();
        let mut plain_d = zstd::bulk::Decompressor::new().unwrap();
        let mut dict_d = zstd::bulk::Decompressor::with_dictionary(&dict).unwrap();
        let size = |c: &mut zstd::bulk::Compressor<'_>| -> usize {
            test.iter().map(|d| c.compress(d).unwrap().len()).sum()
        };
        let (without, with) = (size(&mut plain_c), size(&mut dict_c));
        let speed_gain = -paired(
            plain,
            || {
                for d in &test {
                    let c = plain_c.compress(d).unwrap();
                    black_box(plain_d.decompress(&c, d.len()).unwrap());
                }
            },
            || {
                for d in &test {
                    let c = dict_c.compress(d).unwrap();
                    black_box(dict_d.decompress(&c, d.len()).unwrap());
                }
            },
        );
        println!(
            "dictionary {name}: {} B dictionary, {} test docs, compressed {without} B -> {with} B ({:+.1} %), compress+decompress time {:+.1} %",
            dict.len(),
            test.len(),
            (with as f64 / without as f64 - 1.0) * 100.0,
            -speed_gain * 100.0
        );
        // The whole envelope (ValueCodec, seal + open), with the dictionary in the keyring.
        let ring = Keyring::generate().unwrap();
        let with_ring = ring
            .with_dictionary(
                sealcache_codec::Dictionary::from_bytes(dict.clone()).unwrap(),
                true,
            )
            .unwrap();
        let ctx = SealContext::new("ai_cache", "ai_cache:v2:qa:00ff");
        let mbps = |codec: &ValueCodec| -> f64 {
            let start = std::time::Instant::now();
            let mut n = 0usize;
            while start.elapsed() < Duration::from_millis(1500) {
                for d in &test {
                    let sealed = codec.seal(&ctx, d).unwrap();
                    black_box(codec.open(&ctx, sealed.as_bytes()).unwrap());
                    n += d.len();
                }
            }
            n as f64 / start.elapsed().as_secs_f64() / 1e6
        };
        let (plain_codec, dict_codec) = (ValueCodec::new(&ring), ValueCodec::new(&with_ring));
        // Alternating rounds, best of two each.
        let (mut env_without, mut env_with) = (0f64, 0f64);
        for _ in 0..2 {
            env_without = env_without.max(mbps(&plain_codec));
            env_with = env_with.max(mbps(&dict_codec));
        }
        let stored = |codec: &ValueCodec| -> usize {
            test.iter()
                .map(|d| codec.seal(&ctx, d).unwrap().stored_len())
                .sum()
        };
        let (stored_without, stored_with) = (stored(&plain_codec), stored(&dict_codec));
        println!(
            "envelope {name} (seal+open): {env_without:.0} MB/s without, {env_with:.0} MB/s with the dictionary; stored {stored_without} B -> {stored_with} B"
        );
        report.insert(
            format!("dictionary/{name}"),
            serde_json::json!({
                "dictionary_bytes": dict.len(),
                "test_docs": test.len(),
                "plain": plain,
                "zstd": without,
                "zstd_with_dictionary": with,
                "time_change": -speed_gain,
                "envelope_mbps_without": env_without,
                "envelope_mbps_with": env_with,
                "stored_without": stored_without,
                "stored_with": stored_with,
            }),
        );
    }
}

fn pipelines(c: &mut Criterion) {
    let ring = Keyring::generate().unwrap();
    let mut report = serde_json::Map::new();
    for name in CLASSES {
        let docs = class(name);
        assert!(!docs.is_empty(), "no {name} documents in the corpus");
        let bytes: usize = docs.iter().map(Vec::len).sum();
        let z = Zstd::default();
        let envelope = ValueCodec::new(&ring);
        let aes_only = ValueCodec::with_parts(NoCompression, DefaultCipher::new(&ring));

        let mut group = c.benchmark_group(format!("codec/{name}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut scratch = Vec::new();
        group.bench_function("a_compress_only", |b| {
            b.iter(|| compress_round_trip(&z, black_box(&docs), &mut scratch));
        });
        group.bench_function("b_envelope", |b| {
            b.iter(|| envelope_round_trip(&envelope, black_box(&docs)));
        });
        group.bench_function("c_aes_gcm_only", |b| {
            b.iter(|| envelope_round_trip(&aes_only, black_box(&docs)));
        });
        group.finish();

        let (overhead, open_overhead) = overheads(&z, &envelope, &docs);
        println!(
            "paired overhead {name} ({}): seal+open {:+.1} %, open {:+.1} %",
            std::any::type_name::<DefaultCipher>(),
            overhead * 100.0,
            open_overhead * 100.0
        );
        #[cfg(feature = "rustcrypto")]
        let rustcrypto = {
            let rc = ValueCodec::with_parts(
                Zstd::default(),
                sealcache_codec::Aes256GcmCipher::new(&ring),
            );
            let (both, open) = overheads(&z, &rc, &docs);
            println!(
                "paired overhead {name} (RustCrypto aes-gcm): seal+open {:+.1} %, open {:+.1} %",
                both * 100.0,
                open * 100.0
            );
            serde_json::json!({"seal_open": both, "open": open})
        };
        #[cfg(not(feature = "rustcrypto"))]
        let rustcrypto = serde_json::Value::Null;
        let (plain, stored) = sizes(&envelope, &docs);
        let compressed_only: usize = docs
            .iter()
            .map(|d| {
                if z.compress(d, &mut scratch).unwrap() {
                    scratch.len()
                } else {
                    d.len()
                }
            })
            .sum();
        println!(
            "sizes {name}: {} docs, plain {plain} B, zstd only {compressed_only} B ({:.3}), stored {stored} B ({:.3})",
            docs.len(),
            compressed_only as f64 / plain as f64,
            stored as f64 / plain as f64
        );
        report.insert(
            name.into(),
            serde_json::json!({"docs": docs.len(), "plain": plain, "zstd_only": compressed_only, "stored": stored, "paired_overhead": overhead, "paired_open_overhead": open_overhead, "rustcrypto": rustcrypto}),
        );
    }
    dictionary(&mut report);
    let cpu = cpu_model();
    println!("cpu: {cpu}");
    report.insert("cpu".into(), serde_json::json!(cpu));
    write_report("codec-sizes.json", &report);
}

fn level_curve(c: &mut Criterion) {
    let ring = Keyring::generate().unwrap();
    let mut report = serde_json::Map::new();
    for name in ["medium", "large"] {
        let docs = class(name);
        let bytes: usize = docs.iter().map(Vec::len).sum();
        let mut group = c.benchmark_group(format!("level/{name}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        for level in LEVELS {
            let codec = ValueCodec::with_parts(
                Zstd::new(level, DEFAULT_COMPRESSION_THRESHOLD),
                DefaultCipher::new(&ring),
            );
            group.bench_function(format!("zstd{level}"), |b| {
                b.iter(|| envelope_round_trip(&codec, black_box(&docs)));
            });
            let (plain, stored) = sizes(&codec, &docs);
            report.insert(
                format!("{name}/zstd{level}"),
                serde_json::json!(stored as f64 / plain as f64),
            );
        }
        group.finish();
    }
    write_report("codec-levels.json", &report);
}

fn write_report(file: &str, report: &serde_json::Map<String, serde_json::Value>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), serde_json::to_vec_pretty(report).unwrap()).unwrap();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! { name = benches; config = config(); targets = pipelines, level_curve }
criterion_main!(benches);
