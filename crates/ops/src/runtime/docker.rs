//! Docker and compose, driven through argument arrays (no shell).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::error::{OpsError, Result, StepExt as _};

/// True when a Docker engine answers within a few seconds.
pub fn engine_answers() -> bool {
    let Ok(mut child) = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    for _ in 0..50 {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => return false,
        }
    }
    let _ = child.kill();
    false
}

/// Whether a `docker` client is installed (whatever its engine says).
pub(crate) fn cli_present() -> bool {
    Command::new("docker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `docker ARGS` and returns its output (non-zero exit is an error with stderr).
pub fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| OpsError::Command {
            program: format!("docker {}", args.first().unwrap_or(&"")),
            detail: format!("cannot run: {e}"),
        })?;
    check(&out, &format!("docker {}", args.join(" ")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(OpsError::Command {
        program: what.to_owned(),
        detail: format!(
            "failed ({}): {}",
            out.status,
            stderr.trim().lines().last().unwrap_or("")
        ),
    })
}

/// `docker inspect` of one object as JSON.
pub fn inspect(id: &str) -> Result<serde_json::Value> {
    let text = docker(&["inspect", id])?;
    let v: serde_json::Value =
        serde_json::from_str(&text).step(|| format!("docker inspect {id} printed no JSON"))?;
    v.get(0).cloned().ok_or_else(|| OpsError::Command {
        program: format!("docker inspect {id}"),
        detail: "returned nothing".to_owned(),
    })
}

/// What removing one compose project took away.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ProjectRemoved {
    /// The compose project name.
    pub project: String,
    /// Containers removed (with their anonymous volumes).
    pub containers: usize,
    /// Networks removed.
    pub networks: usize,
    /// Named volumes removed (only when asked for).
    pub volumes: usize,
}

/// Removes every container, network and (with `volumes`) volume labelled with compose project
/// `project`: independent of which compose file or directory started it.
///
/// # Errors
/// [`OpsError::Command`] when a `docker` command fails.
pub(crate) fn remove_project(project: &str, volumes: bool) -> Result<ProjectRemoved> {
    let label = format!("label=com.docker.compose.project={project}");
    let containers = docker(&["ps", "-aq", "--filter", &label])?;
    let ids: Vec<&str> = containers.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(&ids);
        docker(&args)?;
    }
    let networks = docker(&["network", "ls", "-q", "--filter", &label])?;
    for id in networks.split_whitespace() {
        docker(&["network", "rm", id])?;
    }
    let mut removed_volumes = 0;
    if volumes {
        let list = docker(&["volume", "ls", "-q", "--filter", &label])?;
        for id in list.split_whitespace() {
            docker(&["volume", "rm", id])?;
            removed_volumes += 1;
        }
    }
    Ok(ProjectRemoved {
        project: project.to_owned(),
        containers: ids.len(),
        networks: networks.split_whitespace().count(),
        volumes: removed_volumes,
    })
}
