//! `cargo xtask config rotate --stage add|promote|retire [--dry-run]`: a thin caller of
//! `sealcache_ops::rotate` (the `sealcache` binary runs the same functions). The rotation's test
//! harnesses are `sealcache_devstack::rotation`'s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sealcache_config_gen::rotation::{self, RotateOptions, Stage};

pub(crate) use sealcache_devstack::rotation::{
    Rotator, refused_with_redis_down, run_stage, verify_interruptions, verify_under_load,
};

use crate::progress::Printer;

/// `--stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StageArg {
    /// A new key, decrypt-only everywhere, and new passwords accepted beside the old ones.
    Add,
    /// The new key seals, the old one only opens; clients switch to the new passwords.
    Promote,
    /// Keys demoted longer than the longest TTL ago and the old passwords are removed.
    Retire,
}

impl StageArg {
    fn stage(self) -> Stage {
        match self {
            StageArg::Add => Stage::Add,
            StageArg::Promote => Stage::Promote,
            StageArg::Retire => Stage::Retire,
        }
    }
}

/// Options of `config rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RotateArgs {
    /// The stage to run: add, then promote (once every backend holds the new key), then retire
    /// (after the longest TTL).
    #[arg(long, value_enum)]
    stage: StageArg,
    /// The deployment directory [default: deploy/generated].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// retire: drop decrypt-only keys even before the longest TTL has passed since their
    /// promotion (values they sealed become misses).
    #[arg(long)]
    force: bool,
    /// retire: how long a demoted key is kept, in seconds (the cache's longest TTL).
    #[arg(long, default_value_t = rotation::DEFAULT_LONGEST_TTL.as_secs())]
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
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(crate::progress::default_dir);
        let opts = RotateOptions {
            force: self.force,
            longest_ttl: Duration::from_secs(self.longest_ttl),
            ..RotateOptions::default()
        };
        sealcache_ops::rotate::rotate(
            &dir,
            self.stage.stage(),
            &opts,
            !self.no_reload,
            self.dry_run,
            &mut Printer,
        )?;
        Ok(ExitCode::SUCCESS)
    }
}
