//! `sealcache down [--dir DIR] [--volumes] [--project P] [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use sealcache_ops::stack::{self, DownOptions};

use crate::render::{Printer, print_json};

/// Options of `down` (those of `cargo xtask down`).
#[derive(Debug, clap::Args)]
pub(crate) struct DownArgs {
    /// The deployment directory whose stack to stop, whatever runs it (local processes or
    /// compose, one node or a cluster) [default: both deploy/generated and
    /// deploy/generated-cluster].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also remove the compose projects' volumes.
    #[arg(long)]
    volumes: bool,
    /// A compose project to remove by name as well, whatever it mounts (repeatable).
    #[arg(long)]
    project: Vec<String>,
    /// Print what was stopped as JSON (an array, one object per directory).
    #[arg(long)]
    json: bool,
}

impl DownArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dirs = match self.dir {
            Some(dir) => {
                // A mistyped directory is an error, never "nothing was running".
                if !dir.is_dir() {
                    anyhow::bail!("{} is not a directory", dir.display());
                }
                vec![dir]
            }
            None => vec![crate::default_dir(), crate::default_cluster_dir()],
        };
        let mut reports = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            // The named projects once, with the first directory.
            let projects = if i == 0 {
                self.project.clone()
            } else {
                Vec::new()
            };
            reports.push(stack::down(dir, &DownOptions::new(self.volumes, projects))?);
        }
        if self.json {
            print_json(&reports)?;
        } else {
            let mut printer = Printer::new(false);
            for report in &reports {
                stack::down_lines(report, &mut printer);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
