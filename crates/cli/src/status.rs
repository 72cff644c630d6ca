//! `sealcache status [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::render::{Printer, print_json};

/// Options of `status` (those of `cargo xtask status`): any stack, one node or a cluster.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print the security status JSON.
    #[arg(long)]
    json: bool,
    /// The deployment directory [default: deploy/generated, or deploy/generated-cluster when only
    /// that one runs].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Host port of the API [default: the first backend that runs from the directory].
    #[arg(long)]
    port: Option<u16>,
}

impl StatusArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = crate::running_dir(self.dir);
        let status = sealcache_ops::status::status(&dir, self.port)?;
        if self.json {
            print_json(&status)?;
        } else {
            sealcache_ops::status::status_lines(&status, &mut Printer::new(false));
        }
        Ok(ExitCode::SUCCESS)
    }
}
