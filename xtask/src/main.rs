//! Repository automation for sealcache (`cargo xtask ...`), in the matklad xtask style.
//!
//! One module per command, each with a `run`. Processes are started with argument arrays
//! (`std::process::Command`), never through a shell.

// xtask is a command-line program: printing progress is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod api_key;
mod bench;
mod cluster_local;
mod cluster_stack;
mod config;
mod contract;
mod deploy;
mod detect_env;
mod docker;
mod features;
mod flags;
mod http;
mod images;
mod k8s;
mod k8s_check;
mod local;
mod package;
mod partitions;
mod progress;
mod python;
mod redis_install;
mod rotate;
mod stack_tests;
mod test;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let matches = flags::Cli::command().get_matches();
    let cli = flags::Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let command = matches.subcommand_name().unwrap_or("xtask").to_owned();
    match cli.command.run() {
        Ok(code) => code,
        Err(err) => {
            // The command, then the error's context chain: the step, file or process that failed
            // (every fallible operation in xtask adds one), then the cause.
            eprintln!("❌ cargo xtask {command}: {err:#}");
            ExitCode::FAILURE
        }
    }
}
