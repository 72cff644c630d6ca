//! `cargo xtask bench [codec]`: criterion benchmarks over ../shared/bench/corpus.jsonl.

use std::process::ExitCode;

use crate::progress::{cargo, step};

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Suite {
    /// Seal/open round trips of the codec (compression only, envelope, AES-GCM only).
    Codec,
}

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The suite to run (all when omitted).
    suite: Option<Suite>,
}

impl BenchArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let suites = match self.suite {
            Some(s) => vec![s],
            None => vec![Suite::Codec],
        };
        for suite in suites {
            match suite {
                Suite::Codec => step(
                    "bench codec",
                    cargo().args(["bench", "-p", "sealcache-codec", "--bench", "codec"]),
                )?,
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
