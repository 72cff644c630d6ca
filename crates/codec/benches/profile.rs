//! A fixed codec workload for a profiler, and the paired overheads in a few seconds.
//!
//! ```text
//! profile seal_open|open|zstd|zstd_decompress [small|medium|large] [rounds]
//! profile paired [small|medium|large]
//! ```
//!
//! The first form runs `rounds` passes over one corpus class and nothing else, so a profile of it
//! (`valgrind --tool=callgrind`, `perf record`) shows where the per-call cost goes; the exact
//! commands are in docs/benchmarks.md ("Where the per-call cost goes"). `paired` prints the
//! encryption overhead of the envelope over zstd alone (seal+open and open-only), measured the way
//! `cargo xtask bench codec` measures it, so two builds can be run alternately and compared.
//! Under `cargo bench` (no arguments) it runs one short `paired` pass over the small class.

// A benchmark program reports what it measured.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use sealcache_codec::{Compressor, Keyring, SealContext, ValueCodec, Zstd};

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

/// The median of `rounds` paired A/B rounds of `b / a - 1`, (a) and (b) alternating.
fn paired(bytes: usize, rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> f64 {
    let reps = (2_000_000 / bytes.max(1)).max(2);
    let time = |which: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..reps {
            which();
        }
        start.elapsed().as_secs_f64()
    };
    time(&mut a);
    time(&mut b);
    let mut ratios: Vec<f64> = (0..rounds)
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

fn zstd_round_trip(z: &Zstd, docs: &[Vec<u8>], scratch: &mut Vec<u8>) -> usize {
    docs.iter()
        .map(|d| {
            if z.compress(d, scratch).unwrap() {
                z.decompress(scratch, 16 << 20).unwrap().len()
            } else {
                d.clone().len()
            }
        })
        .sum()
}

fn envelope_round_trip(codec: &ValueCodec, docs: &[Vec<u8>]) -> usize {
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

struct Fixture {
    docs: Vec<Vec<u8>>,
    z: Zstd,
    codec: ValueCodec,
    compressed: Vec<Vec<u8>>,
    sealed: Vec<Vec<u8>>,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let docs = class(name);
        assert!(!docs.is_empty(), "no {name} documents in the corpus");
        let z = Zstd::default();
        let codec = ValueCodec::new(&Keyring::generate().unwrap());
        let compressed = docs
            .iter()
            .map(|d| {
                let mut out = Vec::new();
                assert!(
                    z.compress(d, &mut out).unwrap(),
                    "every corpus value compresses"
                );
                out
            })
            .collect();
        let sealed = docs
            .iter()
            .map(|d| codec.seal(&ctx(), d).unwrap().into_bytes())
            .collect();
        Self {
            docs,
            z,
            codec,
            compressed,
            sealed,
        }
    }

    fn bytes(&self) -> usize {
        self.docs.iter().map(Vec::len).sum()
    }

    fn open_all(&self) {
        let ctx = ctx();
        for s in &self.sealed {
            black_box(self.codec.open(&ctx, black_box(s)).unwrap());
        }
    }

    fn decompress_all(&self) {
        for c in &self.compressed {
            black_box(self.z.decompress(black_box(c), 16 << 20).unwrap());
        }
    }
}

fn paired_report(name: &str, rounds: usize) {
    let f = Fixture::new(name);
    let mut scratch = Vec::new();
    let seal_open = paired(
        f.bytes(),
        rounds,
        || {
            black_box(zstd_round_trip(&f.z, black_box(&f.docs), &mut scratch));
        },
        || {
            black_box(envelope_round_trip(&f.codec, black_box(&f.docs)));
        },
    );
    let open = paired(f.bytes(), rounds, || f.decompress_all(), || f.open_all());
    println!(
        "paired overhead {name}: seal+open {:+.1} %, open {:+.1} %",
        seal_open * 100.0,
        open * 100.0
    );
}

fn main() {
    // `cargo bench` passes `--bench`; only the positional arguments count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map_or("paired_short", String::as_str);
    let name = args.get(1).map_or("small", String::as_str);
    let rounds: usize = args.get(2).map_or(2000, |r| r.parse().expect("rounds"));
    match mode {
        "paired_short" => paired_report("small", 11),
        "paired" => paired_report(name, 41),
        "seal_open" | "open" | "zstd" | "zstd_decompress" => {
            let f = Fixture::new(name);
            let mut scratch = Vec::new();
            for _ in 0..rounds {
                match mode {
                    "seal_open" => {
                        black_box(envelope_round_trip(&f.codec, black_box(&f.docs)));
                    }
                    "open" => f.open_all(),
                    "zstd" => {
                        black_box(zstd_round_trip(&f.z, black_box(&f.docs), &mut scratch));
                    }
                    _ => f.decompress_all(),
                }
            }
        }
        other => {
            println!("unknown mode {other}: seal_open, open, zstd, zstd_decompress, paired");
            std::process::exit(2);
        }
    }
}
