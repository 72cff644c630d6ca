//! `cargo xtask config generate|validate|dictionary|rotate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sealcache_config_gen::ValidationInput;
use sealcache_env_detect::Environment;
use sealcache_ops::config::{GenerateFormat, GenerateOptions, Verdict, report_verdict};

use crate::progress::Printer;

/// `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Generate a deployment directory (or a flat .env.secure) for the detected environment.
    Generate(GenerateArgs),
    /// Judge an existing configuration: exit 0 acceptable, 1 regenerate, 2 unusable input.
    Validate(ValidateArgs),
    /// Train a zstd dictionary on sample values and make it the deployment's sealing dictionary.
    Dictionary(DictionaryArgs),
    /// Rotate the encryption key and the Redis passwords of a running deployment in stages
    /// (add, promote, retire), reloading every process that uses it.
    Rotate(crate::rotate::RotateArgs),
}

impl ConfigCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ConfigCommand::Generate(args) => args.run(),
            ConfigCommand::Validate(args) => Ok(args.run()),
            ConfigCommand::Dictionary(args) => args.run(),
            ConfigCommand::Rotate(args) => args.run(),
        }
    }
}

/// Options of `config dictionary`.
#[derive(Debug, clap::Args)]
pub(crate) struct DictionaryArgs {
    /// Sample values: a JSON-lines file (one value per line) or a directory (one value per
    /// file). Use the deployment's own values, never another tenant's.
    #[arg(long)]
    samples: PathBuf,
    /// The deployment directory whose keyring gets the dictionary.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Largest dictionary size in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    size: usize,
    /// Train and report; leave the keyring unchanged.
    #[arg(long)]
    dry_run: bool,
}

impl DictionaryArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let mut opts = sealcache_ops::config::DictionaryOptions::new(
            self.samples,
            self.dir.unwrap_or_else(crate::progress::default_dir),
        );
        opts.size = self.size;
        opts.dry_run = self.dry_run;
        sealcache_ops::config::train_dictionary(&opts, &mut Printer)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn parse_env(s: &str) -> Result<Environment, String> {
    s.parse()
        .map_err(|_| "expected development, testing, staging, production or unknown".to_owned())
}

/// Output format names.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// The deployment directory (.env, secrets/, ca/).
    Dir,
    /// One .env.secure with the seed's variable names.
    EnvVars,
}

/// Options of `config generate`.
#[derive(Debug, clap::Args)]
pub(crate) struct GenerateArgs {
    /// Environment to generate for (detected when omitted).
    #[arg(long, value_parser = parse_env)]
    environment: Option<Environment>,
    /// Output directory [default: deploy/generated].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing directory.
    #[arg(long, conflicts_with = "rotate")]
    force: bool,
    /// Start a rotation of an existing directory: the same as `config rotate --stage add` (a new
    /// key decrypt-only, new passwords beside the old ones, running processes reloaded); finish
    /// with `config rotate --stage promote`, then `--stage retire` after the longest TTL.
    #[arg(long)]
    rotate: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "dir")]
    format: Format,
    /// Extra name for the Redis server certificate (repeatable).
    #[arg(long = "san")]
    sans: Vec<String>,
    /// Cache key namespace.
    #[arg(long, default_value = sealcache_config_gen::DEFAULT_NAMESPACE)]
    namespace: String,
    /// A Redis Cluster deployment (6 nodes, 2 backends; `secure-up --cluster`)
    /// [default --out: deploy/generated-cluster].
    #[arg(long, conflicts_with_all = ["rotate", "format"])]
    cluster: bool,
    /// Generate into a scratch directory and list the files it would write; write nothing.
    #[arg(long, conflicts_with = "rotate")]
    dry_run: bool,
}

impl GenerateArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.out.clone().unwrap_or_else(|| {
            if self.cluster {
                crate::progress::default_cluster_dir()
            } else {
                crate::progress::default_dir()
            }
        });
        if self.rotate {
            // A rotation takes the environment the directory records, never the one this process
            // detects (a checkout detects as development and would weaken production passwords).
            let recorded = sealcache_config_gen::rotation::recorded_environment(&dir)
                .with_context(|| {
                    format!("cannot read the environment {} records", dir.display())
                })?;
            if let Some(given) = self.environment
                && given != recorded
            {
                anyhow::bail!(
                    "{} records environment {recorded}; --environment {given} disagrees (a rotation never changes the environment)",
                    dir.display()
                );
            }
            println!("✅ Environment: {recorded} (recorded in {})", dir.display());
            println!(
                "ℹ️  --rotate runs `config rotate --stage add`; then run `--stage promote`, and `--stage retire` after the longest TTL"
            );
            crate::rotate::run_stage(
                &dir,
                sealcache_config_gen::rotation::Stage::Add,
                &sealcache_config_gen::rotation::RotateOptions::default(),
                true,
            )?;
            let verdict = sealcache_ops::config::validate_dir_report(&dir, recorded, &mut Printer);
            return Ok(ExitCode::from(verdict.exit_code()));
        }
        let mut opts = GenerateOptions::new(dir);
        opts.environment = self.environment;
        opts.force = self.force;
        opts.format = match self.format {
            Format::Dir => GenerateFormat::Dir,
            Format::EnvVars => GenerateFormat::EnvVars,
        };
        opts.sans = self.sans;
        opts.namespace = self.namespace;
        opts.cluster = self.cluster;
        opts.dry_run = self.dry_run;
        let verdict = sealcache_ops::config::generate(&opts, &mut Printer)?;
        Ok(ExitCode::from(verdict.exit_code()))
    }
}

/// Options of `config validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// A deployment directory [default: deploy/generated].
    #[arg(long, conflicts_with = "env_file")]
    dir: Option<PathBuf>,
    /// An env file (the seed's flat format or a .env with *_FILE paths).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Environment to validate against (detected from the configuration when omitted).
    #[arg(long, value_parser = parse_env)]
    environment: Option<Environment>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl ValidateArgs {
    fn run(self) -> ExitCode {
        let input = match (self.env_file, self.dir) {
            (Some(file), _) => ValidationInput::EnvFile(file),
            (None, Some(dir)) => ValidationInput::Dir(dir),
            (None, None) => ValidationInput::Dir(crate::progress::default_dir()),
        };
        let report = match sealcache_ops::config::validate_input(&input, self.environment) {
            Ok(report) => report,
            Err(err) => {
                eprintln!("❌ unusable input: {err}");
                return ExitCode::from(Verdict::Unusable.exit_code());
            }
        };
        if self.json {
            match serde_json::to_string_pretty(&report) {
                Ok(text) => println!("{text}"),
                Err(err) => {
                    eprintln!("❌ cannot render the report: {err}");
                    return ExitCode::from(Verdict::Unusable.exit_code());
                }
            }
            return ExitCode::from(Verdict::of(&report).exit_code());
        }
        println!(
            "Environment: {} (confidence {:.0} %)",
            report.environment,
            report.confidence * 100.0
        );
        ExitCode::from(report_verdict(&report, &mut Printer).exit_code())
    }
}
