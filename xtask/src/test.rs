//! `cargo xtask test`: fmt, clippy, then every test of the workspace.

use std::process::ExitCode;

use crate::progress::{cargo, step};
use crate::redis_install::{self, PROMTOOL, REDIS, REDIS_CLI};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (for a quick local loop; CI never skips).
    #[arg(long)]
    quick: bool,
}

impl TestArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        redis_install::ensure(&[REDIS, REDIS_CLI, PROMTOOL])?;
        if !self.quick {
            step(
                "cargo fmt --check",
                cargo().args(["fmt", "--all", "--", "--check"]),
            )?;
            step(
                "cargo clippy -D warnings",
                cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )?;
        }
        step(
            "cargo test --workspace",
            cargo().args(["test", "--workspace", "--all-features", "--locked"]),
        )?;
        if !self.quick {
            step(
                "cargo doc (warnings denied)",
                cargo()
                    .args([
                        "doc",
                        "--workspace",
                        "--all-features",
                        "--no-deps",
                        "--locked",
                    ])
                    .env("RUSTDOCFLAGS", "-D warnings"),
            )?;
        }
        println!("✅ all checks and tests passed");
        Ok(ExitCode::SUCCESS)
    }
}
