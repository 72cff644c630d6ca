//! `sealcache verify [--dir DIR] [--json] [--development]`.

use std::path::PathBuf;
use std::process::ExitCode;

use sealcache_ops::verify::{self, VerifyOptions};
use sealcache_ops::{Line, Mark, Progress as _, SecurityLevel};

use crate::render::{Printer, print_json};

/// Options of `verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The deployment directory whose running stack to verify [default: deploy/generated, or
    /// deploy/generated-cluster when only that one runs].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print the checks as JSON (an array of `name`, `passed`, `detail`).
    #[arg(long)]
    json: bool,
    /// The stack is a development one (`dev-up`): every backend must report `development`
    /// instead of `production_ready`.
    #[arg(long)]
    development: bool,
}

impl VerifyArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self
            .dir
            .or_else(|| {
                sealcache_ops::stack::first_running(&[
                    crate::default_dir(),
                    crate::default_cluster_dir(),
                ])
            })
            .unwrap_or_else(crate::default_dir);
        let want = if self.development {
            SecurityLevel::Development
        } else {
            SecurityLevel::ProductionReady
        };
        let mut printer = Printer::new(self.json);
        let checks = verify::verify(&dir, &VerifyOptions::new(want), &mut printer)?;
        let passed = checks.iter().all(|c| c.passed);
        if self.json {
            print_json(&checks)?;
        } else {
            verify::check_lines(&checks, &mut printer);
            printer.line(Line {
                mark: if passed { Mark::Ok } else { Mark::Failed },
                text: format!(
                    "{} of {} checks passed for the stack of {}",
                    checks.iter().filter(|c| c.passed).count(),
                    checks.len(),
                    dir.display()
                ),
            });
        }
        Ok(if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
