//! `down`, once for every stack: stops what runs from a deployment directory, whatever its
//! runtime (local processes, compose) and topology (one node, a cluster).
//!
//! Local processes are the recorded pids, each signalled only while it still runs its program (a
//! recycled pid is never touched), then their record is removed. Compose stacks are found by what
//! they mount (every container, running or stopped, with a mount from the directory's secrets),
//! by the directory's compose record, and by the project names the caller adds; each such
//! project is removed by its label, with its networks and, when asked, its volumes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::record::ComposeRecord;
use super::targets::containers_using;
use crate::error::{OpsError, Result, io, refuse};
use crate::report::{Progress, ProgressExt as _};
use crate::runtime::docker::{self, ProjectRemoved};
use crate::runtime::{
    LocalCluster, LocalPids, PIDS_FILE, local_cluster_state_dir, local_state_dir, terminate,
};

/// How long a stopped process may take to end before `down` goes on.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What `down` is asked to remove beyond what the directory shows.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DownOptions {
    /// Also remove the compose projects' named volumes.
    pub volumes: bool,
    /// Compose projects to remove by name as well (`--project`), whatever they mount.
    pub projects: Vec<String>,
}

impl DownOptions {
    /// Removes `volumes` too, and the compose projects named `projects`.
    #[must_use]
    pub fn new(volumes: bool, projects: Vec<String>) -> Self {
        Self { volumes, projects }
    }
}

/// One local process `down` stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StoppedProcess {
    /// `sealcache-server` or `redis-server`.
    pub program: &'static str,
    /// Its pid.
    pub pid: u32,
}

/// What `down` did. JSON: `{"dir": ..., "processes": [{"program", "pid"}], "projects":
/// [{"project", "containers", "networks", "volumes"}], "docker": "answered" | "absent"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DownReport {
    /// The deployment directory.
    pub dir: PathBuf,
    /// Local processes stopped (those of `secure-up --local [--cluster]`).
    pub processes: Vec<StoppedProcess>,
    /// Compose projects removed.
    pub projects: Vec<ProjectRemoved>,
    /// `answered`, or `absent` when no Docker engine answers (nothing of compose was looked at).
    pub docker: &'static str,
}

impl DownReport {
    /// Nothing was running.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.projects.iter().all(|p| p.containers == 0)
    }
}

/// Stops everything that runs from `dir` (and the compose projects `options` names).
///
/// # Errors
/// [`OpsError::Input`] for a record that cannot be read; [`OpsError::Command`] when a process
/// cannot be signalled or a `docker` command fails; [`OpsError::Refused`] when the directory
/// records a compose stack but the Docker engine does not answer (it cannot be removed, and is
/// never reported gone).
pub fn down(dir: &Path, options: &DownOptions) -> Result<DownReport> {
    let mut processes = Vec::new();
    let single = local_state_dir(dir).join(PIDS_FILE);
    if let Some(pids) = read_record::<LocalPids>(&single)? {
        stop(
            &[
                (pids.server, "sealcache-server"),
                (pids.redis, "redis-server"),
            ],
            &mut processes,
        )?;
        std::fs::remove_file(&single).map_err(io("remove", &single))?;
    }
    let cluster = local_cluster_state_dir(dir).join(PIDS_FILE);
    if let Some(record) = read_record::<LocalCluster>(&cluster)? {
        let all: Vec<(u32, &'static str)> = record
            .backends
            .iter()
            .map(|b| (b.pid, "sealcache-server"))
            .chain(record.nodes.iter().map(|n| (n.pid, "redis-server")))
            .collect();
        stop(&all, &mut processes)?;
        std::fs::remove_file(&cluster).map_err(io("remove", &cluster))?;
    }

    let recorded = ComposeRecord::read(dir)?;
    if !docker::engine_answers() {
        if let Some(record) = recorded
            && docker::cli_present()
        {
            refuse!(
                "{} records compose project {} but the Docker engine does not answer (no permission on its socket, another context, or it is down): it was not removed; run again once Docker answers",
                dir.display(),
                record.project
            );
        }
        return Ok(DownReport {
            dir: dir.to_path_buf(),
            processes,
            projects: Vec::new(),
            docker: "absent",
        });
    }
    let mut projects: BTreeSet<String> = options.projects.iter().cloned().collect();
    projects.extend(recorded.map(|r| r.project));
    for v in containers_using(dir, true)? {
        if let Some(project) = v["Config"]["Labels"]["com.docker.compose.project"].as_str() {
            projects.insert(project.to_owned());
        }
    }
    let removed = projects
        .iter()
        .map(|p| docker::remove_project(p, options.volumes))
        .collect::<Result<Vec<_>>>()?;
    ComposeRecord::remove(dir)?;
    Ok(DownReport {
        dir: dir.to_path_buf(),
        processes,
        projects: removed,
        docker: "answered",
    })
}

/// Reports what `down` did, one line per local stack and per compose project.
pub fn down_lines(report: &DownReport, progress: &mut dyn Progress) {
    let dir = report.dir.display();
    if report.is_empty() {
        progress.info(format!("nothing was running from {dir}"));
    }
    if !report.processes.is_empty() {
        let pids: Vec<String> = report
            .processes
            .iter()
            .map(|p| format!("{} (pid {})", p.program, p.pid))
            .collect();
        progress.ok(format!("local stack of {dir} stopped: {}", pids.join(", ")));
    }
    for p in report
        .projects
        .iter()
        .filter(|p| p.containers + p.networks + p.volumes > 0)
    {
        progress.ok(format!(
            "compose project {} removed: {} container(s), {} network(s), {} volume(s)",
            p.project, p.containers, p.networks, p.volumes
        ));
    }
}

/// Signals every `(pid, program)` that still runs its program, then waits for them to end.
fn stop(all: &[(u32, &'static str)], stopped: &mut Vec<StoppedProcess>) -> Result<()> {
    for &(pid, program) in all {
        if terminate(pid, program, STOP_WAIT)? {
            stopped.push(StoppedProcess { program, pid });
        }
    }
    Ok(())
}

/// A pid record (`None`: there is none).
fn read_record<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| OpsError::Input {
            what: path.display().to_string(),
            reason: format!("not a pid record: {e}"),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn local_processes_are_stopped_only_while_they_run_their_program_and_the_record_goes() {
        let dir = tempfile::tempdir().unwrap();
        // A process that is not the recorded program (a recycled pid) is never signalled.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let state = local_state_dir(dir.path());
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join(PIDS_FILE),
            format!(
                r#"{{"redis": {0}, "server": {0}, "port": 1, "redis_port": 2}}"#,
                sleeper.id()
            ),
        )
        .unwrap();
        let report = down(dir.path(), &DownOptions::default()).unwrap();
        assert!(report.processes.is_empty(), "{report:?}");
        assert!(
            sleeper.try_wait().unwrap().is_none(),
            "the sleeper was signalled"
        );
        assert!(!state.join(PIDS_FILE).exists());
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        // A record that is not one is an error naming the file.
        std::fs::write(state.join(PIDS_FILE), "{}").unwrap();
        let err = down(dir.path(), &DownOptions::default()).unwrap_err();
        assert!(err.to_string().contains(PIDS_FILE), "{err}");
    }
}
