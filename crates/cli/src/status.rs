//! `sealcache status [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::render::{Printer, print_json};

/// Options of `status` (those of `cargo xtask status`, single-node stacks).
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print the security status JSON.
    #[arg(long)]
    json: bool,
    /// The deployment directory (for the API key) [default: deploy/generated].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Host port of the API.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

impl StatusArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(crate::default_dir);
        let status = sealcache_ops::status::status(&dir, self.port)?;
        if self.json {
            print_json(&status)?;
        } else {
            sealcache_ops::status::status_lines(&status, &mut Printer::new(false));
        }
        Ok(ExitCode::SUCCESS)
    }
}
