//! `status [--json]` of a stack: the backend's live security status (typed, from
//! `sealcache-api`), compared with the deployment directory (the rotation's view), and one
//! verdict.

use std::path::Path;

use sealcache_api::{SecurityLevel, SecurityStatus, SecurityStatusResponse};
use sealcache_config_gen::layout;
use serde::{Deserialize, Serialize};

use crate::error::{OpsError, Result};
use crate::report::{Mark, Progress, ProgressExt as _};
use crate::rotate::{RotationReport, report, report_lines};
use crate::stack::{Backend, Redis, discover, node_view};

/// The verdict while the running system disagrees with the deployment directory.
pub const ROTATION_INCOMPLETE: &str = "rotation_incomplete";

/// The JSON of `status --json`: a backend's security status (its fields at the top level), the
/// running system compared with the deployment directory, and the verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StackStatus {
    /// One backend's `GET /internal/cache/security-status`.
    #[serde(flatten)]
    pub backend: SecurityStatusResponse,
    /// Cluster stacks: every backend's API (`http://127.0.0.1:PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<String>>,
    /// Cluster stacks: every Redis node as the stack's record lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_nodes: Option<serde_json::Value>,
    /// The running system compared with the directory (`None`, `null` in JSON: the directory
    /// holds no deployment).
    pub rotation: Option<RotationReport>,
    /// [`ROTATION_INCOMPLETE`] while the running system disagrees with the directory, else the
    /// backend's `security_level`.
    pub verdict: String,
}

impl StackStatus {
    /// The status of a stack whose backend reported `backend`, compared as `rotation`.
    #[must_use]
    pub fn new(backend: SecurityStatusResponse, rotation: Option<RotationReport>) -> Self {
        let verdict = match &rotation {
            Some(r) if !r.agrees => ROTATION_INCOMPLETE.to_owned(),
            _ => backend.status.security_level.as_str().to_owned(),
        };
        Self {
            backend,
            backends: None,
            redis_nodes: None,
            rotation,
            verdict,
        }
    }

    /// The same status with a cluster stack's backends and Redis nodes.
    #[must_use]
    pub fn with_cluster(mut self, backends: Vec<String>, redis_nodes: serde_json::Value) -> Self {
        self.backends = Some(backends);
        self.redis_nodes = Some(redis_nodes);
        self
    }

    /// The running system disagrees with the directory (a rotation not complete).
    #[must_use]
    pub fn disagrees(&self) -> bool {
        self.rotation.as_ref().is_some_and(|r| !r.agrees)
    }
}

/// The backend's `GET /internal/cache/security-status` on 127.0.0.1:`port`, typed, or why it
/// could not be read (not 200, not the status JSON).
///
/// # Errors
/// A description of the failure (never the key).
pub fn backend_status(port: u16, key: &str) -> std::result::Result<SecurityStatusResponse, String> {
    match crate::runtime::request(
        port,
        "GET",
        "/internal/cache/security-status",
        Some(key),
        None,
    ) {
        Ok((200, body)) => {
            serde_json::from_str(&body).map_err(|e| format!("not a security status: {e}"))
        }
        Ok((status, _)) => Err(format!("status {status}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The status of the stack that runs from `dir`, whatever its runtime and topology: the security
/// status of its first backend (or of the backend on 127.0.0.1:`port` when given), compared with
/// `dir`; for a cluster deployment also every backend's API and every Redis node's role.
///
/// # Errors
/// No backend of `dir` runs and no `port` was given ([`OpsError::Unhealthy`]); the API key cannot
/// be read ([`OpsError::Io`]); the backend does not answer 200 with its status
/// ([`OpsError::Unhealthy`]); the running processes cannot be found or compared (see [`report`]).
pub fn status(dir: &Path, port: Option<u16>) -> Result<StackStatus> {
    let targets = discover(dir)?;
    let ports: Vec<u16> = targets.backends.iter().filter_map(Backend::port).collect();
    let Some(port) = port.or_else(|| ports.first().copied()) else {
        return Err(OpsError::Unhealthy {
            target: format!("the stack of {}", dir.display()),
            detail: "no backend of this directory runs with a published port (start it with `sealcache up`, or pass --port)".to_owned(),
        });
    };
    let key_path = dir.join(layout::API_KEY);
    // No link followed, no FIFO waited on (the backend container may write `secrets/`).
    let key = crate::runtime::read_below(dir, layout::API_KEY).map_err(|e| OpsError::Step {
        step: format!("cannot read the API key {}", key_path.display()),
        cause: Box::new(e),
    })?;
    let backend = backend_status(port, key.trim()).map_err(|detail| OpsError::Unhealthy {
        target: format!("the backend on 127.0.0.1:{port}"),
        detail,
    })?;
    let report = report(dir).map_err(|e| {
        e.in_step(format!(
            "cannot compare the running stack with {}",
            dir.display()
        ))
    })?;
    let status = StackStatus::new(backend, report);
    if sealcache_config_gen::cluster_dir::cluster_record(dir)?.is_none() {
        return Ok(status);
    }
    // A cluster: every backend, every node as it reports itself (`pid` for local processes).
    let pids: Vec<(u16, u32)> = crate::runtime::local_cluster_running(dir)
        .map(|c| c.nodes.iter().map(|n| (n.port, n.pid)).collect())
        .unwrap_or_default();
    let nodes = targets
        .redis
        .iter()
        .map(|redis| {
            let view = node_view(dir, redis);
            let mut node = serde_json::json!({"address": view.address, "role": view.role});
            if let Redis::Local { port } = redis
                && let Some((_, pid)) = pids.iter().find(|(p, _)| p == port)
            {
                node["pid"] = (*pid).into();
            }
            node
        })
        .collect();
    let backends = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    Ok(status.with_cluster(backends, serde_json::Value::Array(nodes)))
}

/// Reports the lines of a cluster stack's backends and nodes (nothing for one node).
pub fn cluster_lines(status: &StackStatus, progress: &mut dyn Progress) {
    if let Some(backends) = &status.backends {
        progress.ok(format!("backends: {}", backends.join(", ")));
    }
    for n in status
        .redis_nodes
        .as_ref()
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let mark = if n["role"] == "down" {
            Mark::Failed
        } else {
            Mark::Ok
        };
        progress.mark(
            mark,
            format!(
                "redis node {} {}{}",
                n["address"].as_str().unwrap_or(""),
                n["role"].as_str().unwrap_or(""),
                n["pid"]
                    .as_u64()
                    .map_or_else(String::new, |p| format!(" (pid {p})"))
            ),
        );
    }
}

/// Reports the security level and the checks of `status`, then the rotation lines and the
/// verdict.
pub fn status_lines(status: &StackStatus, progress: &mut dyn Progress) {
    security_lines(&status.backend.status, status.disagrees(), progress);
    cluster_lines(status, progress);
    report_lines(status, progress);
}

/// Reports the security level and the checks of a backend's security status (`disagrees`: the
/// running system disagrees with the deployment directory, so the backend's own level is not
/// the verdict).
pub fn security_lines(status: &SecurityStatus, disagrees: bool, progress: &mut dyn Progress) {
    let level = status.security_level;
    if level == SecurityLevel::Development {
        progress.warn("DEVELOPMENT MODE: not for production");
    }
    progress.mark(
        match (level == SecurityLevel::ProductionReady, disagrees) {
            (_, true) => Mark::Failed,
            (true, false) => Mark::Ok,
            (false, false) => Mark::Warning,
        },
        format!(
            "security_level: {level} (\"{}\" {}){}",
            status.environment,
            status.confidence,
            if disagrees {
                ", the backend's own view: the running system disagrees with the deployment directory (rotation, below)"
            } else {
                ""
            }
        ),
    );
    for c in &status.checks {
        progress.mark(
            if c.passed { Mark::Ok } else { Mark::Failed },
            format!("{}: {}", c.name, c.detail),
        );
    }
}

/// The checks of `status` that did not pass, as `; failing: name (detail), ...` (empty when all
/// passed): why a level is not `production_ready`.
#[must_use]
pub fn failing_checks(status: &SecurityStatus) -> String {
    let failing: Vec<String> = status
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            format!(
                "{}{} ({})",
                c.name,
                if c.observed { "" } else { ", not observed" },
                c.detail
            )
        })
        .collect();
    if failing.is_empty() {
        String::new()
    } else {
        format!("; failing: {}", failing.join(", "))
    }
}
