//! `config generate [--cluster] [--format dir|env-vars] [--dry-run]`.

use std::path::{Path, PathBuf};

use sealcache_config_gen::cluster_dir::{self, ClusterOptions};
use sealcache_config_gen::{
    DeploymentOptions, Environment, EnvironmentDetector, EnvironmentInfo, FeatureContext,
    OutputFormat, SecureConfigGenerator, ValidationInput, WriteMode, acl, layout, password,
    validate, write_deployment,
};

use super::{Verdict, report_verdict, validate_dir_report};
use crate::error::{OpsError, Result, StepExt as _};
use crate::report::{Mark, Progress, ProgressExt as _};

/// What `config generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GenerateFormat {
    /// The deployment directory (`.env`, `secrets/`, `ca/`).
    #[default]
    Dir,
    /// One `.env.secure` with the seed's variable names.
    EnvVars,
}

/// Options of [`generate`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// The environment to generate for (detected when `None`).
    pub environment: Option<Environment>,
    /// The output directory.
    pub out: PathBuf,
    /// Replace an existing directory.
    pub force: bool,
    /// What to write.
    pub format: GenerateFormat,
    /// Extra names for the Redis server certificate.
    pub sans: Vec<String>,
    /// The cache key namespace.
    pub namespace: String,
    /// A Redis Cluster deployment (6 nodes, 2 backends).
    pub cluster: bool,
    /// Generate into a scratch directory and report the files it would write; `out` is left
    /// untouched.
    pub dry_run: bool,
}

impl GenerateOptions {
    /// The defaults of `config generate --out OUT`.
    #[must_use]
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            environment: None,
            out: out.into(),
            force: false,
            format: GenerateFormat::Dir,
            sans: Vec::new(),
            namespace: sealcache_config_gen::DEFAULT_NAMESPACE.to_owned(),
            cluster: false,
            dry_run: false,
        }
    }
}

/// Generates a deployment for `opts.environment` (or the detected one) into `opts.out`, reports
/// each step, then validates what it wrote and returns the verdict.
///
/// # Errors
/// An existing directory without `force` ([`OpsError::Deployment`]), randomness, certificate or
/// I/O failures.
pub fn generate(opts: &GenerateOptions, progress: &mut dyn Progress) -> Result<Verdict> {
    if opts.cluster && opts.format != GenerateFormat::Dir {
        return Err(OpsError::Input {
            what: "--format".to_owned(),
            reason: "a cluster deployment is a directory".to_owned(),
        });
    }
    let detected = EnvironmentDetector::default().detect(FeatureContext::SecurityEnforcement);
    let environment = opts.environment.unwrap_or(detected.environment());
    match opts.environment {
        Some(env) => progress.ok(format!("Environment: {env} (given explicitly)")),
        None => progress.ok(format!(
            "Detected environment: {} (confidence {:.0} %, by {})",
            detected.environment(),
            detected.confidence() * 100.0,
            detected.detected_by()
        )),
    }
    if detected.development_override() {
        progress.warn("REDIS_SECURITY_MODE=development is set: the development override is active");
    }
    if opts.dry_run {
        return dry_run(opts, &detected, environment, progress);
    }
    write(opts, &opts.out, &detected, environment, progress)
}

/// Generates into `dir` (the real output, or a dry run's scratch directory).
fn write(
    opts: &GenerateOptions,
    dir: &Path,
    detected: &EnvironmentInfo,
    environment: Environment,
    progress: &mut dyn Progress,
) -> Result<Verdict> {
    let config = SecureConfigGenerator::generate_for_environment(detected, opts.environment)
        .step(|| "cannot generate secrets")?;
    let options = DeploymentOptions {
        mode: if opts.force {
            WriteMode::Force
        } else {
            WriteMode::New
        },
        format: match opts.format {
            GenerateFormat::Dir => OutputFormat::Dir,
            GenerateFormat::EnvVars => OutputFormat::EnvVars,
        },
        namespace: opts.namespace.clone(),
        extra_server_names: opts.sans.clone(),
        ..DeploymentOptions::default()
    };
    let bits = password::required_bits(environment);
    if opts.cluster {
        let written = cluster_dir::write_cluster_deployment(
            &config,
            dir,
            &options,
            &ClusterOptions::default(),
        )?;
        let record = cluster_dir::cluster_record(dir)?.ok_or_else(|| OpsError::NotADeployment {
            path: dir.to_path_buf(),
            missing: cluster_dir::CLUSTER_RECORD,
        })?;
        progress.ok(format!(
            "Passwords: 5 ACL users (with {}), {bits}-bit each",
            acl::REPLICATION_USER
        ));
        progress.ok("Keys: encryption keyring (AES-256-GCM) and API key");
        progress.ok(format!(
            "Certificates: CA, server certificate naming {} (+ localhost), distinct client and node client certificates (ECDSA P-256)",
            record.nodes.join(", ")
        ));
        progress.ok(format!(
            "Cluster: {} nodes ({} primaries), {} backends; ACL with cluster grants and {}; cluster.conf with tls-cluster, tls-replication, masteruser/masterauth",
            record.nodes.len(),
            record.primaries(),
            record.backends,
            acl::REPLICATION_USER
        ));
        progress.ok(format!(
            "Wrote {} files under {} (REDIS_CLUSTER_NODES in .env, no REDIS_URL)",
            written.files.len(),
            dir.display()
        ));
        return Ok(validate_dir_report(dir, environment, progress));
    }
    let written = write_deployment(&config, dir, &options)?;
    progress.ok(format!(
        "Generated 4 Redis ACL passwords ({bits}-bit, {} characters)",
        config.redis_password.len()
    ));
    progress.ok("Encryption key created (AES-256-GCM, key id 1)");
    progress.ok("API key created");
    match opts.format {
        GenerateFormat::EnvVars => {
            let file = dir.join(layout::ENV_SECURE_FILE);
            progress.ok(format!("Wrote {} (mode 0600)", file.display()));
            let report = validate(&ValidationInput::EnvFile(file), Some(environment))?;
            Ok(report_verdict(&report, progress))
        }
        GenerateFormat::Dir => {
            progress.ok(
                "TLS material created (CA, server and distinct client certificates, ECDSA P-256)",
            );
            progress.ok("ACL file written with password hashes only (default user off)");
            progress.ok(format!(
                "Wrote {} files under {}",
                written.files.len(),
                dir.display()
            ));
            progress.mark(
                Mark::Secret,
                format!("API key file: {}", dir.join(layout::API_KEY).display()),
            );
            progress.mark(
                Mark::Secret,
                format!(
                    "CA private key kept apart: {}",
                    dir.join(layout::CA_KEY).display()
                ),
            );
            Ok(validate_dir_report(dir, environment, progress))
        }
    }
}

/// Generates into a scratch directory (removed afterwards), then reports each file the real run
/// would write under `opts.out`.
fn dry_run(
    opts: &GenerateOptions,
    detected: &EnvironmentInfo,
    environment: Environment,
    progress: &mut dyn Progress,
) -> Result<Verdict> {
    if !opts.force && opts.out.join(layout::ENV_FILE).exists() {
        crate::error::refuse!(
            "{} already holds a deployment: a real run would refuse it too (--force replaces it)",
            opts.out.display()
        );
    }
    let scratch = crate::scratch::ScratchDir::new()?;
    let target = scratch.path().join("deployment");
    let mut discarded = crate::report::Report::new();
    let verdict = write(opts, &target, detected, environment, &mut discarded)?;
    let files = crate::scratch::files_under(&target, &[])?;
    for file in &files {
        progress.mark(
            Mark::Planned,
            format!("would write {}", opts.out.join(file).display()),
        );
    }
    progress.info(format!(
        "--dry-run: {} files planned under {}; nothing was written (the generated values are thrown away)",
        files.len(),
        opts.out.display()
    ));
    Ok(verdict)
}
