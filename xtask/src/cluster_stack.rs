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
use crate::progress::workspace_root;
use crate::verify::{Check, check, print_checks};

/// The default directory of a cluster deployment, `deploy/generated-cluster` (git-ignored): never
/// the single-node one.
pub(crate) fn default_dir() -> PathBuf {
    workspace_root().join("deploy/generated-cluster")
}

// ---------------------------------------------------------------------------------------------
// config generate --cluster

/// `config generate --cluster`.
/// The cluster deployment `secure-up --cluster` generates into a missing `dir` (through
/// `sealcache_ops::config::generate`), then validates; whether it is acceptable.
fn generate_and_validate(dir: &Path, environment: Environment) -> anyhow::Result<bool> {
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
pub(crate) fn up(opts: &UpOptions) -> anyhow::Result<ExitCode> {
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
    let dir = opts.dir.clone().unwrap_or_else(default_dir);
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
        let ports = crate::cluster_local::up(&dir, opts.port)?;
        let checks = crate::verify::verify(&dir, true);
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
    let checks = crate::verify::verify(&dir, true);
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
    crate::deploy::ready_or_failed(passed, &urls.join(", "), dir)
}

// ---------------------------------------------------------------------------------------------
// status and down

// ---------------------------------------------------------------------------------------------
// cargo xtask test

/// A port `p` such that `p` and `p + 1` are free on 127.0.0.1 (the two backends' API ports).
fn free_port_pair() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free local port")?
            .port();
        if first < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", first + 1)).is_ok() {
            return Ok(first);
        }
    }
    bail!("cannot find two consecutive free local ports")
}

/// What `status --json` adds for the running stack of `dir`: two backends and every node with a
/// role (and a pid for local processes).
fn status_check(dir: &Path, local: bool) -> Check {
    match sealcache_ops::status::status(dir, None) {
        Ok(status) => {
            let backends = status.backends.clone().unwrap_or_default();
            let nodes = status
                .redis_nodes
                .as_ref()
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            let primaries = nodes.iter().filter(|n| n["role"] == "primary").count();
            let replicas = nodes.iter().filter(|n| n["role"] == "replica").count();
            let pids = nodes
                .iter()
                .all(|n| n["pid"].as_u64().is_some_and(|p| p > 0));
            check(
                "status_reports_cluster",
                backends.len() >= 2 && primaries == 3 && replicas == 3 && (pids || !local),
                format!(
                    "backends {backends:?}, redis_nodes: {primaries} primaries, {replicas} replicas{}",
                    if local && pids {
                        ", each with its pid"
                    } else {
                        ""
                    }
                ),
            )
        }
        Err(e) => check("status_reports_cluster", false, format!("{e:#}")),
    }
}

/// `secure-up --local --cluster`, verified, its status read, and stopped by pid: runs on every
/// machine (redis-server and redis-cli are installed by `cargo xtask test`).
pub(crate) fn test_local() -> anyhow::Result<()> {
    test_local_in(&crate::progress::target_dir().join("local-cluster-test"))
}

/// [`test_local`] with the deployment directory `dir` (removed afterwards).
fn test_local_in(dir: &Path) -> anyhow::Result<()> {
    println!(
        "▶ local cluster stack: secure-up --local --cluster, verify, status, rotate under load, down"
    );
    let started = Instant::now();
    let dir = dir.to_path_buf();
    let _ = crate::local::down(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        generate_and_validate(&dir, Environment::Production)?,
        "the generated cluster deployment {} is not acceptable",
        dir.display()
    );
    let port = free_port_pair()?;
    let outcome = crate::cluster_local::up(&dir, port).map(|ports| {
        let mut checks = crate::verify::verify(&dir, true);
        checks.push(status_check(&dir, true));
        checks.push(crate::verify::operator_command_verifies(&dir));
        // Then keys and passwords (cache_replication's and masterauth too) rotated under load on
        // both backends and all six nodes, as on the single-node stacks (rotate/load.rs).
        checks.extend(crate::rotate::verify_under_load(&dir, &ports));
        checks.push(crate::cluster_local::replicas_reauthenticate(&dir));
        checks.push(crate::cluster_local::rotation_refused_with_a_node_down(
            &dir,
        ));
        checks
    });
    let stopped = crate::local::down(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let checks = outcome?;
    print_checks(&checks);
    let stopped = stopped?;
    ensure!(
        stopped == 7,
        "down stopped {stopped} processes, not the 7 left running (6 nodes, 2 backends, one node killed by the last check)"
    );
    ensure!(
        checks.iter().all(|c| c.passed) && checks.len() >= 10,
        "the local cluster stack verification failed (see the ❌ lines above)"
    );
    println!(
        "✅ local cluster stack verified and stopped ({stopped} processes) in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `secure-up --cluster` against the real Docker engine when one answers (its own project, ports
/// and subnet; the images the single-node step built are reused), its status read, then removed.
pub(crate) fn test_compose() -> anyhow::Result<()> {
    if !engine_answers() {
        println!(
            "⏭  no Docker engine answers: the compose cluster stack verification is skipped on this machine"
        );
        return Ok(());
    }
    println!("▶ compose cluster stack: secure-up --cluster, verify, status, down");
    let started = Instant::now();
    let dir = crate::progress::target_dir().join("cluster-stack-test");
    let project = "sealcache-cluster-test".to_owned();
    let _ = crate::deploy::DownArgs::project(&project).run();
    let _ = std::fs::remove_dir_all(&dir);
    let opts = UpOptions {
        environment: Some(Environment::Production),
        dir: Some(dir.clone()),
        images: ImageMode::Auto,
        port: free_port_pair()?,
        project: project.clone(),
        local: false,
        json: false,
        internal_subnet: Some("172.30.238.0/24".to_owned()),
    };
    let outcome = up(&opts);
    let mut checks = vec![status_check(&dir, false)];
    // Keys and passwords (cache_replication's and masterauth too) rotated under load through both
    // backend containers and on all six node containers, as on the local cluster stack.
    if matches!(outcome, Ok(code) if code == ExitCode::SUCCESS) {
        checks.extend(crate::rotate::verify_under_load(
            &dir,
            &[opts.port, opts.port + 1],
        ));
    }
    // The crash-and-restart proof belongs to the tests, never to secure-up; it runs after the
    // rotation, whose reloads must leave the restart policy working (no `docker kill --signal`).
    let checks = crate::verify::with_crash_and_restart(
        checks,
        &outcome,
        &project,
        "backend-1",
        &dir,
        opts.port,
    );
    let _ = crate::deploy::DownArgs::project(&project).run();
    let _ = std::fs::remove_dir_all(&dir);
    print_checks(&checks);
    let passed = checks.iter().all(|c| c.passed);
    match outcome {
        Ok(code) if code == ExitCode::SUCCESS && passed => {
            println!(
                "✅ compose cluster stack verified and removed in {:.0}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Ok(_) => bail!("the compose cluster stack verification failed (see the ❌ lines above)"),
        Err(err) => Err(err.context("the compose cluster stack could not be brought up")),
    }
}

#[cfg(test)]
mod tests {
    /// What `cargo xtask test` runs on the local cluster stack, in a directory of its own:
    /// `cargo test -p xtask --bin xtask -- --ignored local_cluster_stack_with_rotation`
    /// (ignored by default: it builds the release server and starts 6 redis-server).
    #[test]
    #[ignore = "starts the local cluster stack (release build, redis-server); part of `cargo xtask test`"]
    fn local_cluster_stack_with_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        super::test_local_in(&tmp.path().join("local-cluster")).unwrap();
    }

    /// The compose cluster stack with its rotation under load, as `cargo xtask test` runs it:
    /// `cargo test -p xtask --bin xtask -- --ignored compose_cluster_stack_with_rotation`.
    #[test]
    #[ignore = "builds images and starts the compose cluster stack; part of `cargo xtask test`"]
    fn compose_cluster_stack_with_rotation() {
        super::test_compose().unwrap();
    }
}
