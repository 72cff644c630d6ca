//! `up` of a compose Redis Cluster stack (`docker-compose.cluster.yml`): the nodes on the internal
//! network (no published port), the cluster formed from inside the first node as `cache_admin`,
//! then the backends on `port`, `port + 1`, ...

use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sealcache_config_gen::cluster_dir::{self, ClusterRecord};
use sealcache_config_gen::{acl, layout};

use super::{UpOptions, UpOutcome, chown_to_containers, project_of, wait_healthy};
use crate::error::{OpsError, Result, io};
use crate::report::{Progress, ProgressExt as _};
use crate::runtime::compose::Compose;
use crate::runtime::docker::inspect;
use crate::stack::{ComposeRecord, NodeView, Redis, form_cluster, formed, node_view};

/// The embedded compose file of a cluster.
pub const CLUSTER_COMPOSE_FILE: &str = "docker-compose.cluster.yml";
/// The nodes' state directories (their `nodes.conf`) under the deployment directory.
pub const CLUSTER_STATE_DIR: &str = "cluster-state";
/// Longest wait for the cluster to report itself formed.
const FORMED_WITHIN: Duration = Duration::from_secs(60);

/// One node container: its service, address on the internal network, and how to reach it.
struct NodeContainer {
    service: String,
    ip: Option<String>,
    redis: Redis,
}

/// Brings up the compose cluster stack of `dir` (a cluster deployment directory): nodes, the
/// cluster formed, then the backends. Returns the backends' ports with the outcome.
///
/// # Errors
/// [`OpsError::NotADeployment`] when `dir` holds no cluster deployment; [`OpsError::Input`] for
/// fewer than two backends or ports that do not fit; as [`super::compose`] otherwise, and
/// [`OpsError::Unhealthy`] when the cluster does not form.
pub fn compose_cluster(
    dir: &Path,
    options: &UpOptions,
    progress: &mut dyn Progress,
) -> Result<(UpOutcome, Vec<u16>)> {
    let dir = std::fs::canonicalize(dir).map_err(io("open", dir))?;
    crate::runtime::refuse_shared_directory(&dir)?;
    super::check_project_name(&options.project)?;
    let Some(record) = cluster_dir::cluster_record(&dir)? else {
        return Err(OpsError::NotADeployment {
            path: dir,
            missing: cluster_dir::CLUSTER_RECORD,
        });
    };
    if record.backends < 2 {
        return Err(OpsError::Input {
            what: dir.display().to_string(),
            reason: format!(
                "records {} backend(s); the cluster stack runs at least 2",
                record.backends
            ),
        });
    }
    let ports: Vec<u16> = (0..record.backends)
        .map(|b| {
            u16::try_from(b)
                .ok()
                .and_then(|b| options.port.checked_add(b))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| OpsError::Input {
            what: "--port".to_owned(),
            reason: "leaves no room for the other backends".to_owned(),
        })?;
    let backends: Vec<String> = (1..=record.backends)
        .map(|b| format!("backend-{b}"))
        .collect();
    let services: Vec<&str> = record
        .nodes
        .iter()
        .chain(&backends)
        .map(String::as_str)
        .collect();
    if super::healthy_services(&options.project, &dir, &services) {
        progress.ok(format!(
            "Cluster stack {} already runs healthy from {}: nothing changed (no container recreated; `down` first to redeploy)",
            options.project,
            dir.display()
        ));
        let ports = ComposeRecord::read(&dir)?.map_or(ports, |r| r.backends);
        return Ok((UpOutcome::AlreadyRunning, ports));
    }
    if options.observability {
        return Err(OpsError::InvalidOption {
            option: "--observability",
            reason: "the cluster's compose file has no observability profile",
        });
    }
    super::before_creating(&dir, options)?;
    let last = ports.last().copied().unwrap_or(options.port);
    let compose =
        project_of(&dir, options, CLUSTER_COMPOSE_FILE)?.var("SEALCACHE_PORT_2", last.to_string());
    let _ = compose.run(&["down", "--remove-orphans"]);
    super::ports_free(&ports)?;
    fresh_state_dirs(&dir, &record)?;
    if rustix::process::geteuid().is_root() {
        super::hand_over_secrets(&dir, super::CONTAINER_UID, super::CONTAINER_UID)?;
        chown_to_containers(&dir, &[CLUSTER_STATE_DIR])?;
    } else {
        progress.warn(format!(
            "not root: the containers read the secrets as their owner; run as root to hand them to uid {}",
            super::CONTAINER_UID
        ));
    }
    // Recorded before anything is created, so that `down --dir` finds whatever a failure leaves.
    ComposeRecord::new(options.project.clone(), ports.clone()).write(&dir)?;
    let mut args = vec!["up", "-d"];
    args.extend(record.nodes.iter().map(String::as_str));
    super::created_or_removed(&compose, compose.run(&args))?;
    let nodes: Vec<&str> = record.nodes.iter().map(String::as_str).collect();
    wait_healthy(&compose, &nodes, progress)?;
    progress.ok(format!(
        "Redis nodes healthy: {} on {}_redis_internal (internal: true, no host address), via {}",
        record.nodes.join(", "),
        compose.project(),
        compose.name()
    ));
    let containers = containers(&compose, &record)?;
    let entry = containers.first().ok_or_else(|| OpsError::Unhealthy {
        target: format!("compose project {}", compose.project()),
        detail: "no Redis node".to_owned(),
    })?;
    let addresses = containers
        .iter()
        .map(|n| {
            n.ip.as_deref()
                .map(|ip| format!("{ip}:{}", layout::REDIS_PORT))
                .ok_or_else(|| OpsError::Unhealthy {
                    target: n.service.clone(),
                    detail: "has no address on the internal network".to_owned(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    form_cluster(&dir, &entry.redis, &addresses, record.replicas_per_primary)?;
    let started = Instant::now();
    wait_formed(&dir, &containers, &record)?;
    progress.ok(format!(
        "Cluster formed over TLS as {} ({} primaries, {} replicas) in {:.1}s",
        acl::ADMIN_USER,
        record.primaries(),
        record.nodes.len() - record.primaries(),
        started.elapsed().as_secs_f64()
    ));
    let backends: Vec<String> = (1..=record.backends)
        .map(|b| format!("backend-{b}"))
        .collect();
    let mut args = vec!["up", "-d"];
    args.extend(backends.iter().map(String::as_str));
    compose.run(&args)?;
    let services: Vec<&str> = backends.iter().map(String::as_str).collect();
    wait_healthy(&compose, &services, progress)?;
    progress.ok(format!("Backends healthy: {}", backends.join(", ")));
    Ok((UpOutcome::Started, ports))
}

/// Empty per-node state directories (a new cluster each time: a node's `nodes.conf` from an
/// earlier stack names addresses that no longer exist).
fn fresh_state_dirs(dir: &Path, record: &ClusterRecord) -> Result<()> {
    let state = dir.join(CLUSTER_STATE_DIR);
    if state.exists() {
        std::fs::remove_dir_all(&state).map_err(io("remove", &state))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for node in &record.nodes {
        let path = state.join(node);
        builder.create(&path).map_err(io("create", &path))?;
    }
    Ok(())
}

/// The node containers of `record`, with their addresses on the internal network.
fn containers(compose: &Compose, record: &ClusterRecord) -> Result<Vec<NodeContainer>> {
    let network = format!("{}_redis_internal", compose.project());
    record
        .nodes
        .iter()
        .map(|service| {
            let id = compose.container(service)?;
            let v = inspect(&id)?;
            let ip = v["NetworkSettings"]["Networks"][&network]["IPAddress"]
                .as_str()
                .filter(|ip| !ip.is_empty())
                .map(str::to_owned);
            Ok(NodeContainer {
                service: service.clone(),
                ip,
                redis: Redis::Container {
                    id,
                    service: service.clone(),
                },
            })
        })
        .collect()
}

/// Waits until every node reports the cluster formed ([`formed`]).
fn wait_formed(dir: &Path, nodes: &[NodeContainer], record: &ClusterRecord) -> Result<()> {
    let started = Instant::now();
    loop {
        let views: Vec<NodeView> = nodes.iter().map(|n| node_view(dir, &n.redis)).collect();
        if formed(&views, record) {
            return Ok(());
        }
        if started.elapsed() > FORMED_WITHIN {
            return Err(OpsError::Unhealthy {
                target: format!("the cluster of {}", dir.display()),
                detail: format!(
                    "not formed within {} s: {}",
                    FORMED_WITHIN.as_secs(),
                    views
                        .iter()
                        .map(|v| format!("{} {}", v.address, v.role))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
