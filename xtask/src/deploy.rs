//! `cargo xtask secure-up | dev-up | down | status`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use sealcache_config_gen::{
    DeploymentOptions, Recommendation, SecureConfigGenerator, ValidationInput, ValidationReport,
    layout, validate, write_deployment,
};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext};

use crate::contract::variable;
use crate::docker::{Compose, engine_answers, inspect};
use crate::images::{ImageMode, prepare};
use crate::progress::{is_root, workspace_root};
use crate::verify::verify;

/// The compose project name.
pub(crate) const PROJECT: &str = "sealcache";
/// Where the API is published (127.0.0.1 only).
pub(crate) const DEFAULT_PORT: u16 = 8080;
/// The containers' user (and group).
pub(crate) const UID: &str = "999";
/// [`UID`] as a number.
const UID_NUMBER: u32 = 999;

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
    /// A compose project to remove by name as well, whatever it mounts.
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

pub(crate) fn compose_for(
    project: &str,
    secure: bool,
    dir: &Path,
    images: (&str, &str),
    port: u16,
) -> anyhow::Result<Compose> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("{} does not exist", dir.display()))?;
    compose_with(
        project,
        if secure {
            "docker-compose.secure.yml"
        } else {
            "docker-compose.dev.yml"
        },
        &dir,
        images,
        port,
    )
}

/// The compose project `project` of `deploy/<file>` for the deployment directory `dir`
/// (canonical): the directory, the images, the API port and the containers' uid set for
/// interpolation.
pub(crate) fn compose_with(
    project: &str,
    file: &str,
    dir: &Path,
    images: (&str, &str),
    port: u16,
) -> anyhow::Result<Compose> {
    let deploy = workspace_root().join("deploy");
    Ok(Compose::detect(project)?
        .file(&deploy.join(file))
        .var(const { variable("SEALCACHE_DIR") }, dir.to_string_lossy())
        .var(
            const { variable("SEALCACHE_DEPLOY") },
            deploy.to_string_lossy(),
        )
        .var(const { variable("SEALCACHE_REDIS_IMAGE") }, images.0)
        .var(const { variable("SEALCACHE_BACKEND_IMAGE") }, images.1)
        .var(const { variable("SEALCACHE_PORT") }, port.to_string())
        .var(const { variable("SEALCACHE_UID") }, UID)
        .var(const { variable("SEALCACHE_GID") }, UID))
}

/// Gives the containers' user the secret files (0600 stays 0600); the CA key stays root's.
fn hand_secrets_to_containers(dir: &Path) -> anyhow::Result<()> {
    if !is_root() {
        println!(
            "⚠️  not root: the containers read the secrets as their owner; run as root to hand them to uid {UID}"
        );
        return Ok(());
    }
    chown_to_containers(dir, &[layout::SECRETS_DIR])
}

/// `chown -R` to the containers' user of each of `dir`'s subdirectories `subs` (symbolic links
/// themselves, never what they point to).
pub(crate) fn chown_to_containers(dir: &Path, subs: &[&str]) -> anyhow::Result<()> {
    fn chown_tree(path: &Path) -> anyhow::Result<()> {
        let owner = Some(rustix::fs::Uid::from_raw(UID_NUMBER));
        let group = Some(rustix::fs::Gid::from_raw(UID_NUMBER));
        rustix::fs::chownat(
            rustix::fs::CWD,
            path,
            owner,
            group,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("chown {UID}:{UID} {}", path.display()))?;
        if std::fs::symlink_metadata(path)?.is_dir() {
            for entry in std::fs::read_dir(path)? {
                chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
    for sub in subs {
        chown_tree(&dir.join(sub))?;
    }
    Ok(())
}

/// The health of `service`'s container: `healthy`, `starting`, …, `none` without a health check,
/// `missing` when it cannot be inspected.
pub(crate) fn health(compose: &Compose, service: &str) -> String {
    compose
        .container(service)
        .and_then(|id| inspect(&id))
        .map(|v| {
            v["State"]["Health"]["Status"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .unwrap_or_else(|_| "missing".to_owned())
}

fn wait_healthy(compose: &Compose, timeout: Duration) -> anyhow::Result<()> {
    // A spinner with the elapsed time on a terminal; plain progress lines otherwise (CI logs).
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "   {spinner} {elapsed:>3} waiting for health: {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < timeout {
        let states: Vec<String> = ["redis", "backend"]
            .iter()
            .map(|s| health(compose, s))
            .collect();
        let line = format!("redis {}, backend {}", states[0], states[1]);
        if line != last {
            if bar.is_hidden() {
                println!("   … {line} ({:.0}s)", started.elapsed().as_secs_f64());
            }
            bar.set_message(line.clone());
            last = line;
        }
        if states.iter().all(|s| s == "healthy") {
            bar.finish_and_clear();
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bar.abandon();
    bail!(
        "the stack did not become healthy within {}s ({last})",
        timeout.as_secs()
    )
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
            return crate::cluster_stack::up(&self.cluster_options());
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
                crate::config::default_dir()
            } else {
                crate::config::default_dev_dir()
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
            let port = crate::local::up(&dir, self.port)?;
            let checks = crate::verify::verify(&dir, true);
            return Ok(print_report(&checks, self.json, secure, port, &dir));
        }
        if healthy_stack(&self.project, &dir).is_some() {
            // secure-up never harms what it deploys: a healthy stack of this directory keeps its
            // containers, images and secrets' ownership; it is only verified.
            println!(
                "✅ Stack {} already runs healthy from {}: nothing changed (no image built, no container recreated; `cargo xtask down` first to redeploy{})",
                self.project,
                dir.display(),
                if self.observability {
                    ", --observability is not applied to a running stack"
                } else {
                    ""
                }
            );
            let checks = verify(&dir, secure);
            return Ok(print_report(&checks, self.json, secure, self.port, &dir));
        }
        let images = prepare(self.images)?;
        println!(
            "✅ Images: redis={} backend={} ({})",
            images.redis, images.backend, images.origin
        );
        hand_secrets_to_containers(&dir)?;
        let mut compose = compose_for(
            &self.project,
            secure,
            &dir,
            (&images.redis, &images.backend),
            self.port,
        )?;
        if let Some(subnet) = &self.internal_subnet {
            compose = compose.var(
                const { variable("SEALCACHE_INTERNAL_SUBNET") },
                subnet.clone(),
            );
        }
        let _ = compose.run(&["down", "--remove-orphans"]);
        if self.observability {
            let images = crate::images::observability_images()?;
            println!("✅ Observability images: {}", images.join(", "));
            compose = compose.var(
                const { variable("SEALCACHE_OTLP_ENDPOINT") },
                "http://otel-collector:4318",
            );
            compose.run(&["--profile", "observability", "up", "-d"])?;
            println!(
                "✅ Observability: Prometheus http://127.0.0.1:9090, Grafana http://127.0.0.1:3000 (dashboard `sealcache`; admin password = the API key)"
            );
        } else {
            compose.run(&["up", "-d"])?;
        }
        println!(
            "✅ Networks: redis_internal (internal: true, no host address), frontend; via {}",
            compose.name()
        );
        // What runs from the directory, for `down` (and `status`) without flags.
        sealcache_ops::stack::ComposeRecord::new(self.project.clone(), vec![self.port])
            .write(&dir)?;
        wait_healthy(&compose, Duration::from_secs(120))?;
        println!("✅ Containers healthy");
        let checks = verify(&dir, secure);
        Ok(print_report(&checks, self.json, secure, self.port, &dir))
    }
}

/// The images (redis, backend) of compose project `project` when both its `redis` and `backend`
/// containers run healthy and the backend mounts its secrets from `dir`: a stack `secure-up`
/// leaves as it is.
fn healthy_stack(project: &str, dir: &Path) -> Option<(String, String)> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let secrets = dir.join(layout::SECRETS_DIR);
    let mut images = Vec::new();
    for service in ["redis", "backend"] {
        let filters = [
            format!("label=com.docker.compose.project={project}"),
            format!("label=com.docker.compose.service={service}"),
        ];
        let ids =
            crate::docker::docker(&["ps", "-q", "--filter", &filters[0], "--filter", &filters[1]])
                .ok()?;
        let mut ids = ids.split_whitespace();
        let (Some(id), None) = (ids.next(), ids.next()) else {
            return None;
        };
        let c = inspect(id).ok()?;
        if c["State"]["Health"]["Status"] != "healthy" {
            return None;
        }
        let from_dir = c["Mounts"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["Source"]
                    .as_str()
                    .is_some_and(|s| Path::new(s).starts_with(&secrets))
            })
        });
        if !from_dir {
            return None;
        }
        images.push(c["Config"]["Image"].as_str()?.to_owned());
    }
    let backend = images.pop()?;
    let redis = images.pop()?;
    Some((redis, backend))
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
    ready_or_failed(passed, &format!("http://127.0.0.1:{port}"), dir)
}

/// The last line of an up command: `✅ Ready: <urls>` and success when the verification
/// `passed`, else the stack left running for inspection and exit code 1.
pub(crate) fn ready_or_failed(passed: bool, urls: &str, dir: &Path) -> ExitCode {
    if passed {
        println!(
            "✅ Ready: {urls} — API key in {}",
            dir.join(layout::API_KEY).display()
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "❌ verification failed; the stack is left running for inspection (`cargo xtask down`)"
        );
        ExitCode::from(1)
    }
}

impl DownArgs {
    /// `down` of `project`.
    pub(crate) fn project(project: &str) -> Self {
        Self {
            volumes: true,
            dir: None,
            project: project.to_owned(),
        }
    }

    /// Stops what runs from `--dir` (without it, from both default directories) and removes
    /// compose project `--project`: `sealcache_ops::stack::down`, once for every stack.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dirs = match self.dir {
            Some(dir) => vec![dir],
            None => vec![
                crate::config::default_dir(),
                crate::cluster_stack::default_dir(),
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
                    crate::config::default_dir(),
                    crate::cluster_stack::default_dir(),
                ])
            })
            .unwrap_or_else(crate::config::default_dir);
        let status = sealcache_ops::status::status(&dir, self.port)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
            return Ok(ExitCode::SUCCESS);
        }
        sealcache_ops::status::status_lines(&status, &mut crate::progress::Printer);
        Ok(ExitCode::SUCCESS)
    }
}
