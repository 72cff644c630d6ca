//! `cargo xtask secure-up | dev-up | down | status`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail, ensure};
use sealcache_config_gen::{
    DeploymentOptions, Recommendation, SecureConfigGenerator, ValidationInput, ValidationReport,
    layout, validate, write_deployment,
};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext};

use crate::docker::engine_answers;
use crate::images::{ImageMode, prepare};
use crate::verify::verify_printed;

/// The compose project name.
pub(crate) const PROJECT: &str = sealcache_ops::up::DEFAULT_PROJECT;
/// Where the API is published (127.0.0.1 only).
pub(crate) const DEFAULT_PORT: u16 = sealcache_ops::up::DEFAULT_PORT;

fn parse_env(s: &str) -> Result<Environment, String> {
    s.parse()
        .map_err(|_| "expected development, testing, staging, production or unknown".to_owned())
}

/// Options of `secure-up` and `dev-up`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Environment (detected when omitted; secure-up never uses development).
    #[arg(long, value_parser = parse_env)]
    environment: Option<Environment>,
    /// The deployment directory [default: deploy/generated for secure-up, deploy/generated-dev for
    /// dev-up]; generated when missing, never overwritten.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Which images to use.
    #[arg(long, value_enum, default_value = "auto")]
    images: ImageMode,
    /// Host port of the API (bound to 127.0.0.1).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Compose project name.
    #[arg(long, default_value = PROJECT)]
    project: String,
    /// Run Redis and the server as local processes instead of containers (automatic when no Docker
    /// engine answers).
    #[arg(long)]
    local: bool,
    /// Print the verification as JSON.
    #[arg(long)]
    json: bool,
    /// Also start the `observability` profile (OpenTelemetry Collector, Prometheus, Grafana with the
    /// sealcache dashboard); needs registry access for their official images.
    #[arg(long)]
    observability: bool,
    /// Subnet of the internal network (tests run a second stack beside a user's).
    #[arg(long, hide = true)]
    internal_subnet: Option<String>,
    /// The Redis Cluster stack: 6 TLS nodes (3 primaries, 3 replicas) and 2 backends on
    /// 127.0.0.1:PORT and PORT+1 [default --dir: deploy/generated-cluster]; see docs/deployment.md.
    #[arg(long, conflicts_with = "observability")]
    cluster: bool,
}

impl UpArgs {
    /// The arguments `cargo xtask test` uses for its own, separate stack.
    pub(crate) fn for_test(dir: PathBuf, port: u16) -> Self {
        Self {
            environment: Some(Environment::Production),
            dir: Some(dir),
            images: ImageMode::Auto,
            port,
            project: "sealcache-test".to_owned(),
            local: false,
            json: false,
            observability: false,
            internal_subnet: Some("172.30.239.0/24".to_owned()),
            cluster: false,
        }
    }

    /// The compose project.
    pub(crate) fn project(&self) -> &str {
        &self.project
    }

    /// Sets the compose project.
    pub(crate) fn set_project(&mut self, project: &str) {
        project.clone_into(&mut self.project);
    }

    /// The options of `secure-up --cluster` (cluster_stack.rs).
    pub(crate) fn cluster_options(&self) -> crate::cluster_stack::UpOptions {
        crate::cluster_stack::UpOptions {
            environment: self.environment,
            dir: self.dir.clone(),
            images: self.images,
            port: self.port,
            project: self.project.clone(),
            local: self.local,
            json: self.json,
            internal_subnet: self.internal_subnet.clone(),
        }
    }
}

/// `down`.
#[derive(Debug, clap::Args)]
pub(crate) struct DownArgs {
    /// Also remove volumes.
    #[arg(long)]
    volumes: bool,
    /// The deployment directory whose stack to stop, whatever runs it (local processes or
    /// compose, one node or a cluster) [default: both deploy/generated and
    /// deploy/generated-cluster].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A compose project to remove by name as well, whatever it mounts.
    #[arg(long, default_value = PROJECT)]
    project: String,
    /// Remove `project` alone: no deployment directory is looked at (the test harness's own
    /// stacks; never a developer's stacks in the default directories).
    #[arg(skip)]
    project_only: bool,
}

/// `status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print the security status JSON.
    #[arg(long)]
    json: bool,
    /// The deployment directory [default: deploy/generated, or deploy/generated-cluster when only
    /// that one runs].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Host port of the API [default: the first backend that runs from the directory].
    #[arg(long)]
    port: Option<u16>,
}

impl UpArgs {
    pub(crate) fn run(self, secure: bool) -> anyhow::Result<ExitCode> {
        if self.local && !secure {
            bail!("dev-up runs containers only; for local processes use `secure-up --local`");
        }
        if self.cluster {
            ensure!(
                secure,
                "dev-up has no cluster stack: use `secure-up --cluster`"
            );
            return crate::cluster_stack::secure_up(&self.cluster_options());
        }
        let detected = EnvironmentDetector::default().detect(FeatureContext::SecurityEnforcement);
        let environment = match (secure, self.environment) {
            (false, _) => Environment::Development,
            (true, Some(Environment::Development)) => {
                bail!(
                    "secure-up does not deploy a development configuration: use `cargo xtask dev-up`"
                )
            }
            (true, Some(e)) => e,
            // Nothing declared (a checkout's `.git` is only a hint, so detection says unknown), or
            // a development declaration: secure-up still deploys the strict configuration, and
            // records it as production.
            (true, None)
                if matches!(
                    detected.environment(),
                    Environment::Development | Environment::Unknown
                ) =>
            {
                Environment::Production
            }
            (true, None) => detected.environment(),
        };
        match self.environment {
            Some(e) => println!("✅ Environment: {e} (given explicitly)"),
            None => println!(
                "✅ Environment: {environment} (detected {} at {:.0} % by {})",
                detected.environment(),
                detected.confidence() * 100.0,
                detected.detected_by()
            ),
        }

        // dev-up has its own directory: it never reuses (nor rewrites) the one secure-up deploys.
        let dir = self.dir.clone().unwrap_or_else(|| {
            if secure {
                crate::progress::default_dir()
            } else {
                crate::progress::default_dev_dir()
            }
        });
        if dir.join(layout::ENV_FILE).exists() {
            let recorded = sealcache_config_gen::rotation::recorded_environment(&dir)?;
            if secure == (recorded == Environment::Development) {
                bail!(
                    "{} was generated for {recorded}: {} (use another --dir)",
                    dir.display(),
                    if secure {
                        "secure-up never deploys a development directory"
                    } else {
                        "dev-up never uses a directory generated for a strict environment"
                    }
                );
            }
            let moved = sealcache_config_gen::rotation::upgrade_layout(&dir)?;
            if !moved.is_empty() {
                println!(
                    "✅ Layout upgraded: {} moved into the directories the containers mount",
                    moved.join(", ")
                );
            }
            println!(
                "✅ Configuration: using {} (existing, not overwritten)",
                dir.display()
            );
        } else {
            let config =
                SecureConfigGenerator::generate_for_environment(&detected, Some(environment))
                    .context("cannot generate secrets")?;
            write_deployment(&config, &dir, &DeploymentOptions::default())?;
            println!(
                "✅ Passwords: 4 ACL users, {}-bit each",
                sealcache_config_gen::password::required_bits(environment)
            );
            println!("✅ Keys: encryption keyring (AES-256-GCM) and API key");
            println!("✅ Certificates: CA, Redis server, distinct client (ECDSA P-256)");
        }
        let report = validate(&ValidationInput::Dir(dir.clone()), Some(environment))?;
        if !print_validation(&report) {
            return Ok(ExitCode::from(1));
        }

        if self.local || !engine_answers() {
            if !self.local {
                println!(
                    "⚠️  no Docker engine answers: running the same topology as local processes (--local)"
                );
            }
            let port = crate::local::start(&dir, self.port)?;
            let checks = crate::verify::verify_printed(&dir, true);
            return Ok(print_report(&checks, self.json, secure, port, &dir));
        }
        let options = sealcache_ops::up::UpOptions::new(self.project.clone(), self.port)
            .development(!secure)
            .observability(self.observability)
            .internal_subnet(self.internal_subnet.clone());
        let options =
            if sealcache_ops::up::healthy_stack(&self.project, &std::fs::canonicalize(&dir)?) {
                // secure-up never harms what it deploys: no image is built for a healthy stack.
                options
            } else {
                let images = prepare(self.images)?;
                println!(
                    "✅ Images: redis={} backend={} ({})",
                    images.redis, images.backend, images.origin
                );
                if self.observability {
                    let images = crate::images::observability_images()?;
                    println!("✅ Observability images: {}", images.join(", "));
                }
                options.images(Some(images.redis), Some(images.backend))
            };
        sealcache_ops::up::compose(&dir, &options, &mut crate::progress::Printer)?;
        let checks = verify_printed(&dir, secure);
        Ok(print_report(&checks, self.json, secure, self.port, &dir))
    }
}

/// Prints the validation's verdict (and, when not acceptable, its issues); returns whether the
/// directory is acceptable.
pub(crate) fn print_validation(report: &ValidationReport) -> bool {
    if report.recommendation == Recommendation::Acceptable {
        println!(
            "✅ Validation: acceptable (score {}/100)",
            report.security_score
        );
        return true;
    }
    println!(
        "❌ Validation: regenerate (score {})",
        report.security_score
    );
    for i in &report.issues {
        println!("   {}: {} — {}", i.code, i.message, i.remedy);
    }
    false
}

fn print_report(
    checks: &[crate::verify::Check],
    json: bool,
    secure: bool,
    port: u16,
    dir: &Path,
) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(checks).unwrap_or_default()
        );
    }
    crate::verify::print_checks(checks);
    let passed = checks.iter().all(|c| c.passed);
    if passed {
        if !secure {
            println!(
                "⚠️  DEVELOPMENT MODE (REDIS_SECURITY_MODE=development): plaintext Redis, not for production"
            );
        }
        println!("✅ Isolation verified");
    }
    crate::verify::ready_or_failed(passed, &format!("http://127.0.0.1:{port}"), dir)
}

impl DownArgs {
    /// `down` of `project`.
    pub(crate) fn project(project: &str) -> Self {
        Self {
            volumes: true,
            dir: None,
            project: project.to_owned(),
            project_only: true,
        }
    }

    /// Stops what runs from `--dir` (without it, from both default directories) and removes
    /// compose project `--project`: `sealcache_ops::stack::down`, once for every stack.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        if self.project_only {
            let removed = sealcache_ops::stack::remove_project(&self.project, self.volumes)?;
            sealcache_ops::stack::project_lines(&removed, &mut crate::progress::Printer);
            return Ok(ExitCode::SUCCESS);
        }
        let dirs = match self.dir {
            Some(dir) => vec![dir],
            None => vec![
                crate::progress::default_dir(),
                crate::progress::default_cluster_dir(),
            ],
        };
        for (i, dir) in dirs.iter().enumerate() {
            let projects = if i == 0 {
                vec![self.project.clone()]
            } else {
                Vec::new()
            };
            let report = sealcache_ops::stack::down(
                dir,
                &sealcache_ops::stack::DownOptions::new(self.volumes, projects),
            )?;
            sealcache_ops::stack::down_lines(&report, &mut crate::progress::Printer);
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl StatusArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self
            .dir
            .or_else(|| {
                sealcache_ops::stack::first_running(&[
                    crate::progress::default_dir(),
                    crate::progress::default_cluster_dir(),
                ])
            })
            .unwrap_or_else(crate::progress::default_dir);
        let status = sealcache_ops::status::status(&dir, self.port)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
            return Ok(ExitCode::SUCCESS);
        }
        sealcache_ops::status::status_lines(&status, &mut crate::progress::Printer);
        Ok(ExitCode::SUCCESS)
    }
}
