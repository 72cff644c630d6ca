//! `sealcache config generate|validate|dictionary` (`rotate` is in rotate.rs).

use std::path::PathBuf;
use std::process::ExitCode;

use sealcache_ops::config::{
    self, DictionaryOptions, GenerateFormat, GenerateOptions, Verdict, report_verdict,
};
use sealcache_ops::{Environment, ValidationInput};

use crate::render::{Printer, print_json};

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
            ConfigCommand::Validate(args) => args.run(),
            ConfigCommand::Dictionary(args) => args.run(),
            ConfigCommand::Rotate(args) => args.run(),
        }
    }
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
    #[arg(long, value_parser = crate::parse_env)]
    environment: Option<Environment>,
    /// Output directory [default: deploy/generated, deploy/generated-cluster with --cluster].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing directory.
    #[arg(long)]
    force: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "dir")]
    format: Format,
    /// Extra name for the Redis server certificate (repeatable).
    #[arg(long = "san")]
    sans: Vec<String>,
    /// Cache key namespace.
    #[arg(long, default_value = "ai_cache")]
    namespace: String,
    /// A Redis Cluster deployment (6 nodes, 2 backends).
    #[arg(long, conflicts_with = "format")]
    cluster: bool,
    /// Generate into a scratch directory and list the files it would write; write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl GenerateArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let out = self.out.clone().unwrap_or_else(|| {
            if self.cluster {
                crate::default_cluster_dir()
            } else {
                crate::checkout_dir()
            }
        });
        let mut opts = GenerateOptions::new(out);
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
        let verdict = config::generate(&opts, &mut Printer::new(false))?;
        Ok(ExitCode::from(verdict.exit_code()))
    }
}

/// Options of `config validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// A deployment directory [default: $SEALCACHE_DIR, else deploy/generated].
    #[arg(long, conflicts_with = "env_file")]
    dir: Option<PathBuf>,
    /// An env file (the seed's flat format or a .env with *_FILE paths).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Environment to validate against (detected from the configuration when omitted).
    #[arg(long, value_parser = crate::parse_env)]
    environment: Option<Environment>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl ValidateArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let input = match (self.env_file, self.dir) {
            (Some(file), _) => ValidationInput::EnvFile(file),
            (None, Some(dir)) => ValidationInput::Dir(dir),
            (None, None) => ValidationInput::Dir(crate::default_dir()),
        };
        let report = match config::validate_input(&input, self.environment) {
            Ok(report) => report,
            Err(err) => {
                eprintln!("❌ unusable input: {err}");
                return Ok(ExitCode::from(Verdict::Unusable.exit_code()));
            }
        };
        if self.json {
            print_json(&report)?;
            return Ok(ExitCode::from(Verdict::of(&report).exit_code()));
        }
        println!(
            "Environment: {} (confidence {:.0} %)",
            report.environment,
            report.confidence * 100.0
        );
        let verdict = report_verdict(&report, &mut Printer::new(false));
        Ok(ExitCode::from(verdict.exit_code()))
    }
}

/// Options of `config dictionary`.
#[derive(Debug, clap::Args)]
pub(crate) struct DictionaryArgs {
    /// Sample values: a JSON-lines file (one value per line) or a directory (one value per
    /// file). Use the deployment's own values, never another tenant's.
    #[arg(long)]
    samples: PathBuf,
    /// The deployment directory whose keyring gets the dictionary [default: $SEALCACHE_DIR, else deploy/generated].
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
        let mut opts =
            DictionaryOptions::new(self.samples, self.dir.unwrap_or_else(crate::default_dir));
        opts.size = self.size;
        opts.dry_run = self.dry_run;
        config::train_dictionary(&opts, &mut Printer::new(false))?;
        Ok(ExitCode::SUCCESS)
    }
}
