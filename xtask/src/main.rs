//! Repository automation for sealcache (`cargo xtask ...`), in the matklad xtask style.
//!
//! One module per command, each with a `run`. Processes are started with argument arrays
//! (`std::process::Command`), never through a shell.

// xtask is a command-line program: printing progress is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod config;
mod contract;
mod deploy;
mod detect_env;
mod docker;
mod features;
mod flags;
mod http;
mod images;
mod local;
mod progress;
mod redis_install;
mod secrets;
mod test;
mod verify;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("❌ {err:#}");
            ExitCode::FAILURE
        }
    }
}
