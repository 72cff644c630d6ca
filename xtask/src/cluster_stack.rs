//! The Redis Cluster stack: `config generate --cluster`, `secure-up --cluster` (compose, or local
//! processes with `--local`: see `cluster_local.rs`). `status` and `down` are `sealcache_ops`'s,
//! one for every stack.
//!
//! The compose stack is deploy/docker-compose.cluster.yml: six Redis nodes on the internal network
//! (no published port), two backend replicas publishing their API on 127.0.0.1:PORT and PORT+1.
//! The nodes start first; xtask then forms the cluster from inside `redis-node-1` with
//! `redis-cli --cluster create` as `cache_admin` (the password on redis-cli's standard input,
//! `--askpass`: never on a command line, in an environment variable or in `docker inspect`),
//! waits for `cluster_state:ok` on every node, and starts the backends. Both stacks are verified
//! with the single-node stack's ✅ lines plus the cluster's: `cluster_state:ok` on every node,
//! replicas linked, each backend's view of the cluster and L1 coherence, and cross-replica
//! invalidation (a change made through one backend is seen through the other within 1 s).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use sealcache_config_gen::cluster_dir;
use sealcache_config_gen::layout;
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext};

use crate::docker::engine_answers;
use crate::images::{ImageMode, prepare};
use crate::verify::{Check, print_checks};

// ---------------------------------------------------------------------------------------------
// config generate --cluster

/// `config generate --cluster`.
/// The cluster deployment `secure-up --cluster` generates into a missing `dir` (through
/// `sealcache_ops::config::generate`), then validates; whether it is acceptable.
pub(crate) fn generate_and_validate(dir: &Path, environment: Environment) -> anyhow::Result<bool> {
    let mut opts = sealcache_ops::config::GenerateOptions::new(dir);
    opts.environment = Some(environment);
    opts.cluster = true;
    let verdict = sealcache_ops::config::generate(&opts, &mut crate::progress::Printer)?;
    Ok(verdict == sealcache_ops::config::Verdict::Acceptable)
}

// ---------------------------------------------------------------------------------------------
// secure-up --cluster

/// What `secure-up --cluster` was given.
#[derive(Debug, Clone)]
pub(crate) struct UpOptions {
    pub(crate) environment: Option<Environment>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) images: ImageMode,
    pub(crate) port: u16,
    pub(crate) project: String,
    pub(crate) local: bool,
    pub(crate) json: bool,
    pub(crate) internal_subnet: Option<String>,
}

/// `secure-up --cluster [--local]`.
pub(crate) fn secure_up(opts: &UpOptions) -> anyhow::Result<ExitCode> {
    let detected = EnvironmentDetector::default().detect(FeatureContext::SecurityEnforcement);
    let environment = match opts.environment {
        Some(Environment::Development) => {
            bail!("secure-up does not deploy a development configuration: use `cargo xtask dev-up`")
        }
        Some(e) => {
            println!("✅ Environment: {e} (given explicitly)");
            e
        }
        None => {
            // As the single-node stack: nothing declared (or development) deploys the strict
            // configuration, recorded as production.
            let e = match detected.environment() {
                Environment::Development | Environment::Unknown => Environment::Production,
                other => other,
            };
            println!(
                "✅ Environment: {e} (detected {} at {:.0} % by {})",
                detected.environment(),
                detected.confidence() * 100.0,
                detected.detected_by()
            );
            e
        }
    };
    let dir = opts
        .dir
        .clone()
        .unwrap_or_else(crate::progress::default_cluster_dir);
    if dir.join(layout::ENV_FILE).exists() {
        let recorded = sealcache_config_gen::rotation::recorded_environment(&dir)?;
        ensure!(
            recorded != Environment::Development,
            "{} was generated for development: secure-up never deploys it (use another --dir)",
            dir.display()
        );
        ensure!(
            cluster_dir::cluster_record(&dir)?.is_some(),
            "{} holds a single-node deployment: generate a cluster one with `cargo xtask config generate --cluster --out DIR` (or use another --dir)",
            dir.display()
        );
        println!(
            "✅ Configuration: using {} (existing cluster deployment, not overwritten)",
            dir.display()
        );
        let verdict = sealcache_ops::config::validate_dir_report(
            &dir,
            environment,
            &mut crate::progress::Printer,
        );
        if verdict != sealcache_ops::config::Verdict::Acceptable {
            return Ok(ExitCode::from(1));
        }
    } else if !generate_and_validate(&dir, environment)? {
        return Ok(ExitCode::from(1));
    }
    let record = crate::cluster_local::record(&dir)?;
    ensure!(
        record.backends >= 2,
        "{} records {} backend(s); the cluster stack runs at least 2",
        dir.display(),
        record.backends
    );
    opts.port
        .checked_add(u16::try_from(record.backends - 1).unwrap_or(u16::MAX))
        .context("--port leaves no room for the other backends")?;

    if opts.local || !engine_answers() {
        if !opts.local {
            println!(
                "⚠️  no Docker engine answers: running the same topology as local processes (--local)"
            );
        }
        let started = Instant::now();
        let ports = crate::cluster_local::start(&dir, opts.port)?;
        let checks = crate::verify::verify_printed(&dir, true);
        return Ok(report(&checks, opts.json, &dir, &ports, started));
    }

    let started = Instant::now();
    let images = prepare(opts.images)?;
    println!(
        "✅ Images: redis={} backend={} ({})",
        images.redis, images.backend, images.origin
    );
    let options = sealcache_ops::up::UpOptions::new(opts.project.clone(), opts.port)
        .images(Some(images.redis), Some(images.backend))
        .internal_subnet(opts.internal_subnet.clone());
    let (_, ports) =
        sealcache_ops::up::compose_cluster(&dir, &options, &mut crate::progress::Printer)?;
    let checks = crate::verify::verify_printed(&dir, true);
    Ok(report(&checks, opts.json, &dir, &ports, started))
}

fn report(checks: &[Check], json: bool, dir: &Path, ports: &[u16], started: Instant) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(checks).unwrap_or_default()
        );
    }
    print_checks(checks);
    let passed = checks.iter().all(|c| c.passed);
    if passed {
        println!(
            "✅ Cluster stack verified in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    crate::verify::ready_or_failed(passed, &urls.join(", "), dir)
}
