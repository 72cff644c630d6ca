//! `down`, once for every stack: stops what runs from a deployment directory, whatever its
//! runtime (local processes, compose) and topology (one node, a cluster).
//!
//! Local processes are the recorded pids, each signalled only while it is still the process the
//! record names ([`crate::runtime::recorded_process_runs`]: its program, started before the
//! record was written; a recycled pid or another user's process is never touched). All are sent
//! SIGTERM, then waited for together; one still running after 10 s gets SIGKILL, and one that
//! survives that is an error (the record is kept). Compose projects are found by what they
//! mount (every container, running or stopped, with a mount from the directory's secrets) and by
//! the directory's compose record; such a project is removed (by its label, with its networks
//! and, when asked, its volumes) only when every one of its containers mounts from the directory.
//! A project the caller names is removed by name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::record::ComposeRecord;
use super::targets::containers_using;
use crate::error::{OpsError, Result, io, refuse};
use crate::report::{Progress, ProgressExt as _};
use crate::runtime::docker::{self, ProjectRemoved};
use crate::runtime::{
    LOCAL_CLUSTER_STATE_DIR, LOCAL_STATE_DIR, LocalCluster, LocalPids, PIDS_FILE,
    local_cluster_state_dir, local_state_dir, recorded_process_runs, terminate,
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
/// [{"project", "containers", "networks", "volumes"}], "skipped": [project, ...], "docker":
/// "answered" | "not_answering" | "absent"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DownReport {
    /// The deployment directory.
    pub dir: PathBuf,
    /// Local processes stopped (those of `secure-up --local [--cluster]`).
    pub processes: Vec<StoppedProcess>,
    /// Compose projects removed.
    pub projects: Vec<ProjectRemoved>,
    /// Compose projects that mount the directory but also run containers that do not: not
    /// removed (remove them by name if they are this deployment's).
    pub skipped: Vec<String>,
    /// `answered`; `not_answering` when a Docker client is installed but no engine answers, or
    /// `absent` without one (then nothing of compose was looked at).
    pub docker: &'static str,
}

impl DownReport {
    /// Nothing was running.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.skipped.is_empty()
            && self.projects.iter().all(|p| p.containers == 0)
    }
}

/// Stops the local processes that run from `dir` (`secure-up --local [--cluster]`), each only
/// while it is still the recorded process, and removes their records; the processes stopped.
///
/// # Errors
/// [`OpsError::Input`] for a record that cannot be read; [`OpsError::Unhealthy`] for a process
/// that survives SIGKILL (its record is kept); [`OpsError::Command`] when one cannot be signalled.
pub fn stop_local(dir: &Path) -> Result<Vec<StoppedProcess>> {
    let mut processes = Vec::new();
    let single = local_state_dir(dir).join(PIDS_FILE);
    if let Some(pids) = read_record::<LocalPids>(dir, &format!("{LOCAL_STATE_DIR}/{PIDS_FILE}"))? {
        stop(
            &[
                (pids.server, "sealcache-server"),
                (pids.redis, "redis-server"),
            ],
            &single,
            &mut processes,
        )?;
        std::fs::remove_file(&single).map_err(io("remove", &single))?;
    }
    let cluster = local_cluster_state_dir(dir).join(PIDS_FILE);
    if let Some(record) =
        read_record::<LocalCluster>(dir, &format!("{LOCAL_CLUSTER_STATE_DIR}/{PIDS_FILE}"))?
    {
        let all: Vec<(u32, &'static str)> = record
            .backends
            .iter()
            .map(|b| (b.pid, "sealcache-server"))
            .chain(record.nodes.iter().map(|n| (n.pid, "redis-server")))
            .collect();
        stop(&all, &cluster, &mut processes)?;
        std::fs::remove_file(&cluster).map_err(io("remove", &cluster))?;
    }
    Ok(processes)
}

/// Stops everything that runs from `dir` (and the compose projects `options` names).
///
/// # Errors
/// [`OpsError::Input`] for a record that cannot be read; [`OpsError::Command`] when a process
/// cannot be signalled or a `docker` command fails; [`OpsError::Refused`] when the directory
/// records a compose stack but the Docker engine does not answer (it cannot be removed, and is
/// never reported gone).
pub fn down(dir: &Path, options: &DownOptions) -> Result<DownReport> {
    let processes = stop_local(dir)?;
    let recorded = ComposeRecord::read(dir)?;
    if !docker::engine_answers() {
        let cli = docker::cli_present();
        if let Some(record) = recorded.as_ref().filter(|_| cli) {
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
            skipped: Vec::new(),
            docker: if cli { "not_answering" } else { "absent" },
        });
    }
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut found: BTreeSet<String> = BTreeSet::new();
    found.extend(recorded.map(|r| r.project));
    for v in containers_using(dir, true)? {
        if let Some(project) = v["Config"]["Labels"]["com.docker.compose.project"].as_str() {
            found.insert(project.to_owned());
        }
    }
    let mut removed = Vec::new();
    let mut skipped = Vec::new();
    for project in &options.projects {
        removed.push(docker::remove_project(project, options.volumes)?);
    }
    for project in found.iter().filter(|p| !options.projects.contains(p)) {
        if project_runs_from(project, &canonical)? {
            removed.push(docker::remove_project(project, options.volumes)?);
        } else {
            skipped.push(project.clone());
        }
    }
    ComposeRecord::remove(dir)?;
    Ok(DownReport {
        dir: dir.to_path_buf(),
        processes,
        projects: removed,
        skipped,
        docker: "answered",
    })
}

/// Reports what `down` did, one line per local stack and per compose project.
pub fn down_lines(report: &DownReport, progress: &mut dyn Progress) {
    let dir = report.dir.display();
    if report.is_empty() {
        progress.info(format!("nothing of ours was running from {dir}"));
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

/// Stops every `(pid, program)` of `record` that is still the recorded process: SIGTERM to all,
/// one wait of [`STOP_WAIT`], SIGKILL to the survivors.
fn stop(
    all: &[(u32, &'static str)],
    record: &Path,
    stopped: &mut Vec<StoppedProcess>,
) -> Result<()> {
    let ours: Vec<(u32, &'static str)> = all
        .iter()
        .copied()
        .filter(|(pid, program)| recorded_process_runs(*pid, program, record))
        .collect();
    let mut signalled = Vec::new();
    for &(pid, program) in &ours {
        if terminate(pid, program, Duration::ZERO)? {
            signalled.push((pid, program));
        }
    }
    let still = |list: &[(u32, &'static str)]| -> Vec<(u32, &'static str)> {
        list.iter()
            .copied()
            .filter(|(pid, program)| recorded_process_runs(*pid, program, record))
            .collect()
    };
    let deadline = Instant::now() + STOP_WAIT;
    while !still(&signalled).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (pid, program) in still(&signalled) {
        kill(pid, program)?;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !still(&signalled).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some((pid, program)) = still(&signalled).first() {
        return Err(OpsError::Unhealthy {
            target: format!("{program} (pid {pid})"),
            detail: format!(
                "still runs after SIGTERM and SIGKILL: {} is kept",
                record.display()
            ),
        });
    }
    stopped.extend(
        signalled
            .into_iter()
            .map(|(pid, program)| StoppedProcess { program, pid }),
    );
    Ok(())
}

/// SIGKILL to `pid` (it ignored SIGTERM); one that has ended meanwhile is no error.
fn kill(pid: u32, program: &str) -> Result<()> {
    crate::runtime::send_signal(pid, rustix::process::Signal::KILL, "KILL", program).map(|_| ())
}

/// Whether every container of compose project `project` (running or stopped) mounts something
/// from `dir`: the project runs from this directory and nothing else.
pub(crate) fn project_runs_from(project: &str, dir: &Path) -> Result<bool> {
    let label = format!("label=com.docker.compose.project={project}");
    let listed = docker::docker(&["ps", "-aq", "--filter", &label])?;
    for id in listed.split_whitespace() {
        let v = docker::inspect(id)?;
        let mounted = v["Mounts"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["Source"]
                    .as_str()
                    .is_some_and(|s| Path::new(s).starts_with(dir))
            })
        });
        if !mounted {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes compose project `project` by name (its containers, networks and, with `volumes`, its
/// volumes), whatever it mounts.
///
/// # Errors
/// [`OpsError::Refused`] when no Docker engine answers; [`OpsError::Command`] when a `docker`
/// command fails.
pub fn remove_project(project: &str, volumes: bool) -> Result<ProjectRemoved> {
    if !docker::engine_answers() {
        refuse!("the Docker engine does not answer: compose project {project} was not removed");
    }
    docker::remove_project(project, volumes)
}

/// Reports one removed compose project.
pub fn project_lines(removed: &ProjectRemoved, progress: &mut dyn Progress) {
    if removed.containers + removed.networks + removed.volumes > 0 {
        progress.ok(format!(
            "compose project {} removed: {} container(s), {} network(s), {} volume(s)",
            removed.project, removed.containers, removed.networks, removed.volumes
        ));
    }
}

/// The pid record `rel` below `dir` (`None`: there is none), read without following a link below
/// `dir`: a linked state directory or record is an error, never a record to act on (or remove).
fn read_record<T: DeserializeOwned>(dir: &Path, rel: &str) -> Result<Option<T>> {
    let path = dir.join(rel);
    if let Some(state) = path.parent()
        && std::fs::symlink_metadata(state).is_ok_and(|m| m.file_type().is_symlink())
    {
        refuse!(
            "{} is a link: a local stack's state directory is never followed, so no record there is acted on; remove the link, then run again",
            state.display()
        );
    }
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &path)(e)),
        Ok(_) => {}
    }
    let text = crate::runtime::read_below(dir, rel)?;
    serde_json::from_str(&text)
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

    #[test]
    fn a_process_started_after_its_record_was_written_is_not_the_recorded_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = local_cluster_state_dir(dir.path());
        std::fs::create_dir_all(&state).unwrap();
        let record = state.join(PIDS_FILE);
        // `redis-server` in its command line, as a recycled pid's process might have.
        // Working in the state directory, as a local redis-server does (its `dir`).
        let spawn = || {
            std::process::Command::new("sh")
                .args(["-c", "sleep 30", "redis-server"])
                .current_dir(&state)
                .spawn()
                .unwrap()
        };
        let write = |pid: u32| {
            std::fs::write(
                &record,
                format!(r#"{{"nodes": [{{"pid": {pid}, "port": 1, "cluster_port": 2}}], "backends": []}}"#),
            )
            .unwrap();
        };
        // The record is older than the process: not ours, never signalled.
        let mut recycled = spawn();
        write(recycled.id());
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&record)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        let report = down(dir.path(), &DownOptions::default()).unwrap();
        assert!(report.processes.is_empty(), "{report:?}");
        assert!(
            recycled.try_wait().unwrap().is_none(),
            "a recycled pid was signalled"
        );
        recycled.kill().unwrap();
        recycled.wait().unwrap();
        // Recorded after it started, but working elsewhere (another deployment's, or the
        // original of a copied directory): not ours.
        let mut elsewhere = std::process::Command::new("sh")
            .args(["-c", "sleep 30", "redis-server"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        write(elsewhere.id());
        let report = down(dir.path(), &DownOptions::default()).unwrap();
        assert!(report.processes.is_empty(), "{report:?}");
        assert!(
            elsewhere.try_wait().unwrap().is_none(),
            "another directory's process was signalled"
        );
        elsewhere.kill().unwrap();
        elsewhere.wait().unwrap();
        // Recorded after it started, in this directory: ours, stopped, and reported.
        let mut ours = spawn();
        std::thread::sleep(Duration::from_millis(50));
        write(ours.id());
        let report = down(dir.path(), &DownOptions::default()).unwrap();
        assert_eq!(
            report.processes,
            [StoppedProcess {
                program: "redis-server",
                pid: ours.id()
            }]
        );
        assert!(ours.wait().is_ok());
        assert!(!record.exists());
    }
}
