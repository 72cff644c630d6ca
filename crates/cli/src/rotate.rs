//! `sealcache config rotate --stage add|promote|retire [--dry-run]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sealcache_ops::rotate::{self, RotateOptions, Stage};

use crate::render::Printer;

/// `--stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StageArg {
    /// A new key, decrypt-only everywhere, and new passwords accepted beside the old ones.
    Add,
    /// The new key seals, the old one only opens; clients switch to the new passwords.
    Promote,
    /// Keys demoted longer than the longest TTL ago and the old passwords are removed.
    Retire,
}

/// Options of `config rotate` (those of `cargo xtask config rotate`).
#[derive(Debug, clap::Args)]
pub(crate) struct RotateArgs {
    /// The stage to run: add, then promote (once every backend holds the new key), then retire
    /// (after the longest TTL).
    #[arg(long, value_enum)]
    stage: StageArg,
    /// The deployment directory [default: $SEALCACHE_DIR, else deploy/generated].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// retire: drop decrypt-only keys even before the longest TTL has passed since their
    /// promotion (values they sealed become misses).
    #[arg(long)]
    force: bool,
    /// retire: how long a demoted key is kept, in seconds (the cache's longest TTL).
    #[arg(long, default_value_t = 7200)]
    longest_ttl: u64,
    /// Change the files only; reload no running process.
    #[arg(long)]
    no_reload: bool,
    /// Check and plan only: run the stage on a private copy of the directory and print the files
    /// it would change and the reloads it would make; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl RotateArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(crate::default_dir);
        let opts = RotateOptions {
            force: self.force,
            longest_ttl: Duration::from_secs(self.longest_ttl),
            ..RotateOptions::default()
        };
        let stage = match self.stage {
            StageArg::Add => Stage::Add,
            StageArg::Promote => Stage::Promote,
            StageArg::Retire => Stage::Retire,
        };
        rotate::rotate(
            &dir,
            stage,
            &opts,
            !self.no_reload,
            self.dry_run,
            &mut Printer::new(false),
        )?;
        Ok(ExitCode::SUCCESS)
    }
}
