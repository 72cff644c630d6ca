//! `sealcache`: the operator command of a sealcache deployment, over the `sealcache-ops` library.
//!
//! Everything an operator runs in production, without a Rust toolchain or a checkout: `config
//! generate|validate|rotate|dictionary`, `api-key`, `up`, `status`, `verify`, `down`, `k8s render`. The flags and the JSON
//! are those of the repository's `cargo xtask` commands of the same names (both call the same
//! library functions); every stage that changes files takes `--dry-run`.

// A command-line program: printing its report is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod down;
mod k8s;
mod render;
mod rotate;
mod status;
mod up;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate a sealcache deployment: generate, validate and rotate its configuration, check the
/// running stack, render Kubernetes manifests.
#[derive(Debug, Parser)]
#[command(name = "sealcache", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
enum Command {
    /// Generate, validate, rotate a deployment directory, or give it a compression dictionary.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Mint a scoped API key into the keys file (SEALCACHE_API_KEYS_FILE); the key is printed once.
    ApiKey(sealcache_cli::api_key::ApiKeyArgs),
    /// Show the running backend's live security status, compared with the deployment directory.
    Status(status::StatusArgs),
    /// Bring up the compose stack of a deployment directory (embedded compose files), then verify it.
    Up(up::UpArgs),
    /// Verify the stack that runs from a deployment directory: every hardening item, observed.
    Verify(verify::VerifyArgs),
    /// Stop the stack that runs from a deployment directory (local processes or compose).
    Down(down::DownArgs),
    /// Kubernetes: render hardened manifests (Kustomize) from a deployment directory.
    #[command(subcommand)]
    K8s(k8s::K8sCommand),
}

impl Command {
    fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Config(cmd) => cmd.run(),
            Command::ApiKey(args) => args.run(),
            Command::Status(args) => args.run(),
            Command::Up(args) => args.run(),
            Command::Verify(args) => args.run(),
            Command::Down(args) => args.run(),
            Command::K8s(cmd) => cmd.run(),
        }
    }
}

/// The default deployment directory: `SEALCACHE_DIR` when set (the compose file sets it to the
/// directory's mount in the backend container, so that `docker compose exec backend sealcache
/// config rotate --stage add` needs no `--dir`), else `deploy/generated` under the current
/// directory (where `cargo xtask` keeps it in a checkout).
pub(crate) fn default_dir() -> PathBuf {
    std::env::var_os("SEALCACHE_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(checkout_dir, PathBuf::from)
}

/// `deploy/generated` under the current directory: where `config generate` writes by default
/// (never into `SEALCACHE_DIR`, which names a deployment that exists).
pub(crate) fn checkout_dir() -> PathBuf {
    PathBuf::from("deploy/generated")
}

/// The default directory of a cluster deployment, `deploy/generated-cluster`.
pub(crate) fn default_cluster_dir() -> PathBuf {
    PathBuf::from("deploy/generated-cluster")
}

/// The directory a command on a running stack acts on: `--dir`, else `deploy/generated`, or
/// `deploy/generated-cluster` when only that one runs.
pub(crate) fn running_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.or_else(|| sealcache_ops::stack::first_running(&[default_dir(), default_cluster_dir()]))
        .unwrap_or_else(default_dir)
}

/// Parses an environment name.
pub(crate) fn parse_env(s: &str) -> Result<sealcache_ops::Environment, String> {
    s.parse()
        .map_err(|_| "expected development, testing, staging, production or unknown".to_owned())
}

fn main() -> ExitCode {
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        Err(err) => {
            // The failing step, then its causes (no secret is in any: the library's errors name
            // files and processes, never values).
            let message = sealcache_ops::report::error_text(err.as_ref());
            eprintln!("❌ sealcache: {message}");
            if json {
                // A script that asked for JSON reads JSON on failure too: `{"error": "..."}`.
                println!("{}", serde_json::json!({ "error": message }));
            }
            ExitCode::FAILURE
        }
    }
}
