//! The command line, declared in one place.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sealcache repository automation.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Every xtask command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run every check and test: fmt, clippy, the workspace's tests (starting the services they need).
    Test(crate::test::TestArgs),
    /// Package each published crate and test it from its `.crate` file alone (a step of `test`).
    PackageTest(crate::package::PackageTestArgs),
    /// Run benchmarks (criterion) and print the figures for docs/benchmarks.md.
    Bench(crate::bench::BenchArgs),
    /// Detect the deployment environment of this process.
    DetectEnv(crate::detect_env::DetectEnvArgs),
    /// Generate or validate a secure configuration.
    #[command(subcommand)]
    Config(crate::config::ConfigCommand),
    /// Bring up the hardened stack: generate (if missing), validate, build images, compose up, verify.
    SecureUp(crate::deploy::UpArgs),
    /// Bring up the development stack (REDIS_SECURITY_MODE=development, plaintext Redis).
    DevUp(crate::deploy::UpArgs),
    /// Stop and remove the stack.
    Down(crate::deploy::DownArgs),
    /// Show the running backend's live security status.
    Status(crate::deploy::StatusArgs),
    /// Mint a scoped API key: print it once, append its SHA-256 to the keys file (0600).
    ApiKey(sealcache_cli::api_key::ApiKeyArgs),
    /// Kubernetes: render hardened manifests (Kustomize) from a deployment directory.
    #[command(subcommand)]
    K8s(crate::k8s::K8sCommand),
    /// Cut a three-host stack (network namespaces) apart in four ways and judge every answer.
    Partitions(crate::partitions::PartitionsArgs),
    /// The verifying client `partitions` runs inside each host (not for people).
    #[command(hide = true)]
    PartitionsAgent(crate::partitions::AgentArgs),
}

impl Command {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Test(args) => args.run(),
            Command::PackageTest(args) => args.run(),
            Command::Bench(args) => args.run(),
            Command::DetectEnv(args) => args.run(),
            Command::Config(cmd) => cmd.run(),
            Command::SecureUp(args) => args.run(true),
            Command::DevUp(args) => args.run(false),
            Command::Down(args) => args.run(),
            Command::Status(args) => args.run(),
            Command::ApiKey(args) => args.run(),
            Command::K8s(cmd) => cmd.run(),
            Command::Partitions(args) => args.run(),
            Command::PartitionsAgent(args) => args.run(),
        }
    }
}
