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

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use sealcache_config_gen::cluster_dir::{self, ClusterRecord};
use sealcache_config_gen::{SecretString, acl, layout};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext};
use sealcache_ops::stack::{NodeView, Redis, formed, node_view};

use crate::contract::variable;
use crate::deploy::UID;
use crate::docker::{engine_answers, inspect};
use crate::images::{ImageMode, prepare};
use crate::progress::{is_root, workspace_root};
use crate::verify::{Check, check, print_checks};
use sealcache_ops::runtime::compose::Compose;

/// The compose file of the cluster stack.
const COMPOSE_FILE: &str = "docker-compose.cluster.yml";
/// Which compose project and API ports a `secure-up --cluster` of this directory used.
/// Each node's cluster state (nodes.conf), mounted at /data.
const STATE_DIR: &str = "cluster-state";

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
    let last_port = opts
        .port
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
    let dir =
        std::fs::canonicalize(&dir).with_context(|| format!("{} does not exist", dir.display()))?;
    let options = sealcache_ops::up::UpOptions::new(opts.project.clone(), opts.port)
        .images(Some(images.redis.clone()), Some(images.backend.clone()))
        .internal_subnet(opts.internal_subnet.clone());
    let compose = sealcache_ops::up::project_of(&dir, &options, COMPOSE_FILE)?.var(
        const { variable("SEALCACHE_PORT_2") },
        last_port.to_string(),
    );
    let _ = compose.run(&["down", "--remove-orphans"]);
    fresh_state_dirs(&dir, &record)?;
    hand_to_containers(&dir)?;
    let mut args = vec!["up", "-d"];
    args.extend(record.nodes.iter().map(String::as_str));
    compose.run(&args)?;
    wait_healthy(&compose, &record.nodes)?;
    println!(
        "✅ Redis nodes healthy: {} on {}_redis_internal (internal: true, no host address), via {}",
        record.nodes.join(", "),
        compose.project(),
        compose.name()
    );
    let nodes = containers(&compose, &record)?;
    let first = nodes.first().context("no Redis node")?;
    let addresses: Vec<String> = nodes
        .iter()
        .map(|n| {
            let ip = n
                .ip
                .as_deref()
                .with_context(|| format!("{} has no address on the internal network", n.name))?;
            Ok(format!("{ip}:{}", layout::REDIS_PORT))
        })
        .collect::<anyhow::Result<_>>()?;
    create(&dir, &first.node, &addresses, record.replicas_per_primary)?;
    let formed = Instant::now();
    wait_formed(&dir, &nodes, &record)?;
    println!(
        "✅ Cluster formed over TLS as {} ({} primaries, {} replicas) in {:.1}s",
        acl::ADMIN_USER,
        record.primaries(),
        record.nodes.len() - record.primaries(),
        formed.elapsed().as_secs_f64()
    );
    let backends = backend_services(&record);
    let mut args = vec!["up", "-d"];
    args.extend(backends.iter().map(String::as_str));
    compose.run(&args)?;
    wait_healthy(&compose, &backends)?;
    println!("✅ Backends healthy: {}", backends.join(", "));
    let ports: Vec<u16> = (0..record.backends)
        .map(|b| opts.port + u16::try_from(b).unwrap_or(0))
        .collect();
    sealcache_ops::stack::ComposeRecord::new(opts.project.clone(), ports.clone()).write(&dir)?;
    let checks = crate::verify::verify(&dir, true);
    Ok(report(&checks, opts.json, &dir, &ports, started))
}

fn backend_services(record: &ClusterRecord) -> Vec<String> {
    (1..=record.backends)
        .map(|b| format!("backend-{b}"))
        .collect()
}

/// Empty per-node state directories (a new cluster each time: a node's nodes.conf from an earlier
/// stack names addresses that no longer exist).
fn fresh_state_dirs(dir: &Path, record: &ClusterRecord) -> anyhow::Result<()> {
    let state = dir.join(STATE_DIR);
    if state.exists() {
        std::fs::remove_dir_all(&state)
            .with_context(|| format!("cannot remove {}", state.display()))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for node in &record.nodes {
        builder
            .create(state.join(node))
            .with_context(|| format!("cannot create {}", state.join(node).display()))?;
    }
    Ok(())
}

/// Gives the containers' user the secret files and the nodes' state directories (0600/0700 stay);
/// the CA key stays root's.
fn hand_to_containers(dir: &Path) -> anyhow::Result<()> {
    if !is_root() {
        println!(
            "⚠️  not root: the containers read the secrets as their owner; run as root to hand them to uid {UID}"
        );
        return Ok(());
    }
    Ok(sealcache_ops::up::chown_to_containers(
        dir,
        &[layout::SECRETS_DIR, STATE_DIR],
    )?)
}

fn wait_healthy(compose: &Compose, services: &[String]) -> anyhow::Result<()> {
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    Ok(sealcache_ops::up::wait_healthy(
        compose,
        &services,
        &mut crate::progress::Printer,
    )?)
}

/// One node of the compose stack.
struct NodeContainer {
    name: String,
    ip: Option<String>,
    node: Redis,
}

fn containers(compose: &Compose, record: &ClusterRecord) -> anyhow::Result<Vec<NodeContainer>> {
    let network = format!("{}_redis_internal", compose.project());
    record
        .nodes
        .iter()
        .map(|name| {
            let id = compose.container(name)?;
            let v = inspect(&id)?;
            let ip = v["NetworkSettings"]["Networks"][&network]["IPAddress"]
                .as_str()
                .filter(|ip| !ip.is_empty())
                .map(str::to_owned);
            Ok(NodeContainer {
                name: name.clone(),
                node: Redis::Container {
                    id,
                    service: name.clone(),
                },
                ip,
            })
        })
        .collect()
}

fn wait_formed(dir: &Path, nodes: &[NodeContainer], record: &ClusterRecord) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views: Vec<NodeView> = nodes.iter().map(|n| node_view(dir, &n.node)).collect();
        if formed(&views, record) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the cluster did not become healthy within 60 s: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes: redis-cli as cache_admin, locally or inside a node's container

/// `redis-cli` with TLS for `node`, reading commands (and the password) from its standard input.
fn redis_cli(dir: &Path, node: &Redis) -> Command {
    match node {
        Redis::Local { port } => {
            let mut c = crate::rotate::local_cli(dir, *port, true);
            c.env_remove("REDISCLI_AUTH");
            c
        }
        Redis::Container { id, .. } => crate::rotate::container_cli(id, true),
    }
}

/// Runs `redis-cli` with `extra` arguments on `node`, writing `input` (which holds a secret) to
/// its standard input; returns whether it succeeded, and stdout and stderr.
fn run_cli(
    dir: &Path,
    node: &Redis,
    extra: &[String],
    input: &SecretString,
) -> anyhow::Result<(bool, String)> {
    let mut child = redis_cli(dir, node)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run redis-cli")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.expose_secret().as_bytes())
            .context("cannot talk to redis-cli")?;
    }
    let out = child.wait_with_output().context("redis-cli failed")?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Runs `command` (no secret in it) on `node` as `cache_admin` (`sealcache_ops::stack::admin`).
pub(crate) fn admin(dir: &Path, node: &Redis, command: &str) -> anyhow::Result<String> {
    Ok(sealcache_ops::stack::admin(dir, node, command)?)
}

fn admin_password(dir: &Path) -> anyhow::Result<SecretString> {
    Ok(sealcache_ops::stack::read_secret(
        dir,
        layout::ADMIN_PASSWORD,
    )?)
}

/// `redis-cli --cluster create ADDRESSES --cluster-replicas N` on `entry` as `cache_admin`
/// (`--askpass`: the password on standard input); retried after `CLUSTER RESET HARD` of every node.
pub(crate) fn create(
    dir: &Path,
    entry: &Redis,
    addresses: &[String],
    replicas: usize,
) -> anyhow::Result<()> {
    let password = SecretString::new(format!("{}\n", admin_password(dir)?.expose_secret()));
    let mut args: Vec<String> = [
        "--user",
        acl::ADMIN_USER,
        "--askpass",
        "--cluster",
        "create",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(addresses.iter().cloned());
    args.extend([
        "--cluster-replicas".to_owned(),
        replicas.to_string(),
        "--cluster-yes".to_owned(),
    ]);
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            let reset = SecretString::new(format!(
                "AUTH {} {}\nCLUSTER RESET HARD\n",
                acl::ADMIN_USER,
                admin_password(dir)?.expose_secret()
            ));
            for address in addresses {
                let (host, port) = address.rsplit_once(':').unwrap_or((address, "6379"));
                let _ = run_cli(
                    dir,
                    entry,
                    &[
                        "-h".to_owned(),
                        host.to_owned(),
                        "-p".to_owned(),
                        port.to_owned(),
                    ],
                    &reset,
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let (ok, text) = run_cli(dir, entry, &args, &password)?;
        if ok && text.contains("All 16384 slots covered") {
            return Ok(());
        }
        last = text;
    }
    bail!(
        "redis-cli --cluster create failed: {}",
        last.lines()
            .filter(|l| l.contains("ERR") || l.contains("Could not"))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

// ---------------------------------------------------------------------------------------------
// Checks both stacks share

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
