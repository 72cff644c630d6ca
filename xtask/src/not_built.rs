//! Commands whose issue has not been built yet say so plainly.

use std::process::ExitCode;

/// Arguments are accepted and ignored so that scripts get the plain message, not a usage error.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

impl Args {
    pub(crate) fn run(self, name: &str) -> anyhow::Result<ExitCode> {
        let _ = self.rest;
        eprintln!(
            "❌ `cargo xtask {name}` is not built yet: the deployment issue (compose stack and \
             secure-up) is still open. Today sealcache ships the sealed-value codec; see README.md."
        );
        Ok(ExitCode::from(2))
    }
}
