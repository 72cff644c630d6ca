//! Codec benchmarks over the shared corpus (`../shared/bench/corpus.jsonl`, or `SEALCACHE_CORPUS`).
//!
//! Per size class: seal+open round trips of (a) compression only, (b) the envelope (compression +
//! AES-256-GCM), (c) AES-256-GCM alone; stored/plain size ratios; and the zstd level curve.
//! `cargo xtask bench codec` runs this and prints the table for docs/benchmarks.md.

// A benchmark program reports what it measured.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sealcache_codec::{
    Compressor, DEFAULT_COMPRESSION_THRESHOLD, DefaultCipher, Keyring, NoCompression, SealContext,
    ValueCodec, Zstd,
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

fn envelope_round_trip<C: Compressor>(codec: &ValueCodec<C>, docs: &[Vec<u8>]) -> usize {
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

/// Encryption overhead measured as paired A/B rounds: (a) and (b) alternate within each round (in
/// alternating order), and the median of the per-round ratios b/a is reported. On a shared VM
/// whose speed drifts, this is far steadier than comparing two criterion runs taken minutes apart.
fn paired_overhead<C: Compressor>(z: &Zstd, codec: &ValueCodec<C>, docs: &[Vec<u8>]) -> f64 {
    let bytes: usize = docs.iter().map(Vec::len).sum();
    let reps = (2_000_000 / bytes).max(2); // about 20 ms of work per timing
    let mut scratch = Vec::new();
    let mut time = |envelope: bool| {
        let start = std::time::Instant::now();
        for _ in 0..reps {
            if envelope {
                black_box(envelope_round_trip(codec, black_box(docs)));
            } else {
                black_box(compress_round_trip(z, black_box(docs), &mut scratch));
            }
        }
        start.elapsed().as_secs_f64()
    };
    time(true);
    time(false);
    let mut ratios: Vec<f64> = (0..41)
        .map(|round| {
            if round % 2 == 0 {
                let a = time(false);
                time(true) / a
            } else {
                let b = time(true);
                b / time(false)
            }
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2] - 1.0
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

        let overhead = paired_overhead(&z, &envelope, &docs);
        println!("paired overhead {name}: {:+.1} %", overhead * 100.0);
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
            serde_json::json!({"docs": docs.len(), "plain": plain, "zstd_only": compressed_only, "stored": stored, "paired_overhead": overhead}),
        );
    }
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
