//! `sealcache verify [--dir DIR] [--json] [--development]`.

use std::path::PathBuf;
use std::process::ExitCode;

use sealcache_ops::SecurityLevel;
use sealcache_ops::verify::{self, VerifyOptions};

use crate::render::{Printer, checks_report};

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
        let dir = crate::running_dir(self.dir);
        let want = if self.development {
            SecurityLevel::Development
        } else {
            SecurityLevel::ProductionReady
        };
        let mut printer = Printer::new(self.json);
        let checks = verify::verify(&dir, &VerifyOptions::new(want), &mut printer)?;
        let total = checks.len();
        let passing = checks.iter().filter(|c| c.passed).count();
        checks_report(&checks, self.json, &mut printer, |_| {
            format!(
                "{passing} of {total} checks passed for the stack of {}",
                dir.display()
            )
        })
    }
}
