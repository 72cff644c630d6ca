//! Repository automation for sealcache (`cargo xtask ...`), in the matklad xtask style.
//!
//! One module per command, each with a `run`. Processes are started with argument arrays
//! (`std::process::Command`), never through a shell.

// xtask is a command-line program: printing progress is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod api_key;
mod bench;
mod cluster_stack;
mod config;
mod deploy;
mod detect_env;
mod flags;
mod images;
mod k8s;
mod package;
mod rotate;
mod test;

use std::process::ExitCode;

// The developer stacks and the test harnesses (crates/devstack), by the names xtask's modules use.
use sealcache_devstack::{
    cluster_local, docker, features, k8s_check, local, partitions, progress, python, redis_install,
    stack_checks, verify,
};

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let matches = flags::Cli::command().get_matches();
    let cli = flags::Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let command = matches.subcommand_name().unwrap_or("xtask").to_owned();
    match cli.command.run() {
        Ok(code) => code,
        Err(err) => {
            // The command, then the error's context chain: the step, file or process that failed
            // (every fallible operation in xtask adds one), then the cause, each once.
            eprintln!(
                "❌ cargo xtask {command}: {}",
                sealcache_ops::report::error_text(err.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
