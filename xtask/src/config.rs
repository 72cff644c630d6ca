//! `cargo xtask config generate|validate|dictionary|rotate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sealcache_config_gen::{
    DeploymentOptions, OutputFormat, Recommendation, SecureConfigGenerator, Severity,
    ValidationInput, ValidationReport, WriteMode, layout, password, validate, write_deployment,
};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext};

use crate::progress::workspace_root;

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
}

impl DictionaryArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.clone().unwrap_or_else(default_dir);
        anyhow::ensure!(
            dir.join(layout::ENCRYPTION_KEYRING).is_file(),
            "{} holds no keyring ({}): generate the deployment first",
            dir.display(),
            layout::ENCRYPTION_KEYRING
        );
        anyhow::ensure!(
            (1024..=1 << 20).contains(&self.size),
            "--size must be between 1024 and 1048576 bytes"
        );
        let samples: Vec<Vec<u8>> = if self.samples.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&self.samples)
                .with_context(|| format!("cannot read {}", self.samples.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files
                .iter()
                .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
                .collect::<anyhow::Result<_>>()?
        } else {
            std::fs::read_to_string(&self.samples)
                .with_context(|| format!("cannot read {}", self.samples.display()))?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect()
        };
        anyhow::ensure!(
            samples.len() >= 10,
            "{} holds {} samples; train on at least 10 (a few hundred is better)",
            self.samples.display(),
            samples.len()
        );
        let dictionary = sealcache_codec::Dictionary::train(&samples, self.size)
            .context("dictionary training failed")?;
        println!(
            "✅ Trained dictionary {} ({} bytes) on {} samples",
            dictionary.id(),
            dictionary.as_bytes().len(),
            samples.len()
        );
        let id = dictionary.id();
        let held = sealcache_config_gen::add_dictionary(&dir, dictionary)
            .with_context(|| format!("cannot add the dictionary to {}", dir.display()))?;
        println!(
            "✅ {}: dictionary {id} seals new values; dictionaries held: {held:?} (reload the backends: SIGHUP; drop an old one after the longest TTL)",
            dir.join(layout::ENCRYPTION_KEYRING).display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

fn parse_env(s: &str) -> Result<Environment, String> {
    s.parse()
        .map_err(|_| "expected development, testing, staging, production or unknown".to_owned())
}

/// The default output directory, `deploy/generated` in the repository (git-ignored).
pub(crate) fn default_dir() -> PathBuf {
    workspace_root().join("deploy/generated")
}

/// `dev-up`'s own directory, `deploy/generated-dev` (git-ignored): never the production one.
pub(crate) fn default_dev_dir() -> PathBuf {
    workspace_root().join("deploy/generated-dev")
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
}

impl GenerateArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        if self.cluster {
            return crate::cluster_stack::generate(
                self.environment,
                self.out,
                self.force,
                self.sans,
                self.namespace,
            );
        }
        let dir = self.out.clone().unwrap_or_else(default_dir);
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
            return Ok(report_validation(&dir, recorded));
        }
        let detected = EnvironmentDetector::default().detect(FeatureContext::SecurityEnforcement);
        let environment = self.environment.unwrap_or(detected.environment());
        match self.environment {
            Some(env) => println!("✅ Environment: {env} (given explicitly)"),
            None => println!(
                "✅ Detected environment: {} (confidence {:.0} %, by {})",
                detected.environment(),
                detected.confidence() * 100.0,
                detected.detected_by()
            ),
        }
        if detected.development_override() {
            println!(
                "⚠️  REDIS_SECURITY_MODE=development is set: the development override is active"
            );
        }

        let config = SecureConfigGenerator::generate_for_environment(&detected, self.environment)
            .context("cannot generate secrets")?;
        let options = DeploymentOptions {
            mode: if self.force {
                WriteMode::Force
            } else {
                WriteMode::New
            },
            format: match self.format {
                Format::Dir => OutputFormat::Dir,
                Format::EnvVars => OutputFormat::EnvVars,
            },
            namespace: self.namespace.clone(),
            extra_server_names: self.sans.clone(),
            ..DeploymentOptions::default()
        };
        let written = write_deployment(&config, &dir, &options)?;
        let bits = password::required_bits(environment);
        println!(
            "✅ Generated 4 Redis ACL passwords ({bits}-bit, {} characters)",
            config.redis_password.len()
        );
        println!("✅ Encryption key created (AES-256-GCM, key id 1)");
        println!("✅ API key created");
        match self.format {
            Format::EnvVars => {
                println!(
                    "✅ Wrote {} (mode 0600)",
                    dir.join(layout::ENV_SECURE_FILE).display()
                );
                let report = validate(
                    &ValidationInput::EnvFile(dir.join(layout::ENV_SECURE_FILE)),
                    Some(environment),
                )?;
                Ok(print_verdict(&report))
            }
            Format::Dir => {
                println!(
                    "✅ TLS material created (CA, server and distinct client certificates, ECDSA P-256)"
                );
                println!("✅ ACL file written with password hashes only (default user off)");
                println!(
                    "✅ Wrote {} files under {}",
                    written.files.len(),
                    dir.display()
                );
                println!("🔑 API key file: {}", dir.join(layout::API_KEY).display());
                println!(
                    "🔒 CA private key kept apart: {}",
                    dir.join(layout::CA_KEY).display()
                );
                Ok(report_validation(&dir, environment))
            }
        }
    }
}

fn report_validation(dir: &std::path::Path, environment: Environment) -> ExitCode {
    match validate(&ValidationInput::Dir(dir.to_path_buf()), Some(environment)) {
        Ok(report) => print_verdict(&report),
        Err(err) => {
            println!("❌ validation could not read {}: {err}", dir.display());
            ExitCode::from(2)
        }
    }
}

fn print_verdict(report: &ValidationReport) -> ExitCode {
    let ok = report.recommendation == Recommendation::Acceptable;
    println!(
        "{} Validated: {} (score {}/100)",
        if ok { "✅" } else { "❌" },
        if ok { "acceptable" } else { "regenerate" },
        report.security_score
    );
    for issue in &report.issues {
        let mark = match issue.severity {
            Severity::Error => "❌",
            Severity::Warning => "⚠️ ",
            Severity::Info => "ℹ️ ",
        };
        println!(
            "   {mark} {}: {} — {}",
            issue.code, issue.message, issue.remedy
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
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
            (None, None) => ValidationInput::Dir(default_dir()),
        };
        let report = match validate(&input, self.environment) {
            Ok(report) => report,
            Err(err) => {
                eprintln!("❌ unusable input: {err}");
                return ExitCode::from(2);
            }
        };
        if self.json {
            match serde_json::to_string_pretty(&report) {
                Ok(text) => println!("{text}"),
                Err(err) => {
                    eprintln!("❌ cannot render the report: {err}");
                    return ExitCode::from(2);
                }
            }
            return if report.recommendation == Recommendation::Acceptable {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        println!(
            "Environment: {} (confidence {:.0} %)",
            report.environment,
            report.confidence * 100.0
        );
        print_verdict(&report)
    }
}
