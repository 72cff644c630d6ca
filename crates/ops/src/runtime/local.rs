//! The local stacks' pid records (`secure-up --local [--cluster]`), as the operations find the
//! processes that use a deployment directory, and signals to their servers.

use std::path::{Path, PathBuf};

use sealcache_config_gen::{SecretString, cluster_dir};

use crate::error::{OpsError, Result};

/// The single-node local stack's state directory under the deployment directory.
pub const LOCAL_STATE_DIR: &str = "local";
/// The local cluster stack's state directory under the deployment directory.
pub const LOCAL_CLUSTER_STATE_DIR: &str = "local-cluster";
/// The pid record's file name in either state directory.
pub const PIDS_FILE: &str = "pids.json";

/// What `down` needs to stop a single-node local stack (and a rotation to reach it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LocalPids {
    /// redis-server's pid.
    pub redis: u32,
    /// sealcache-server's pid.
    pub server: u32,
    /// The API port.
    pub port: u16,
    /// Redis's TLS port (0 in records written before it was kept).
    #[serde(default)]
    pub redis_port: u16,
}

/// One local Redis node of a cluster stack.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LocalNode {
    /// Its pid.
    pub pid: u32,
    /// Its TLS port.
    pub port: u16,
    /// Its cluster bus port.
    pub cluster_port: u16,
}

/// One local backend of a cluster stack.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LocalBackend {
    /// Its pid.
    pub pid: u32,
    /// Its API port.
    pub port: u16,
}

/// Every process a local cluster stack started.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LocalCluster {
    /// The Redis nodes.
    pub nodes: Vec<LocalNode>,
    /// The backends.
    pub backends: Vec<LocalBackend>,
}

/// The single-node local stack's state directory of `dir`.
#[must_use]
pub fn local_state_dir(dir: &Path) -> PathBuf {
    dir.join(LOCAL_STATE_DIR)
}

/// The local cluster stack's state directory of `dir`.
#[must_use]
pub fn local_cluster_state_dir(dir: &Path) -> PathBuf {
    dir.join(LOCAL_CLUSTER_STATE_DIR)
}

/// The command line of process `pid` (empty when it does not run).
#[must_use]
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// When process `pid` started (its start in clock ticks after boot, `/proc/PID/stat` field 22,
/// and the boot time); `None` when it does not run or cannot be read.
#[must_use]
pub fn started_at(pid: u32) -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold spaces: fields count after its `)`.
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let proc_stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let since_boot = std::time::Duration::from_millis(ticks.saturating_mul(1000) / hz);
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(boot) + since_boot)
}

/// Whether `pid` is still the `program` that `record` (a pid record in a state directory of a
/// deployment directory, written after each process it names was started) recorded: it runs
/// `program`, it started before the record was last written, and it runs from that deployment
/// directory. A recycled pid (after a reboot, or another process that got the number since)
/// started later, and a process of another directory does not run from this one: neither is
/// ever taken for it.
#[must_use]
pub fn recorded_process_runs(pid: u32, program: &str, record: &Path) -> bool {
    // Boot time is known to the second: a little slack for a record written at once.
    const SLACK: std::time::Duration = std::time::Duration::from_secs(2);
    let written = std::fs::metadata(record).and_then(|m| m.modified()).ok();
    cmdline(pid).contains(program)
        && matches!((started_at(pid), written), (Some(start), Some(written)) if start <= written + SLACK)
        && record
            .parent()
            .and_then(Path::parent)
            .is_some_and(|dir| belongs_to(pid, program, dir))
}

/// Whether process `pid` runs from the deployment directory `dir`: a local `redis-server` works
/// in its state directory under `dir` (its `dir` setting), a local `sealcache-server` reads its
/// files from `dir` (paths in its environment). A copy of a directory (`cp -a` of a running one)
/// or a process of another deployment is never taken for this one's.
fn belongs_to(pid: u32, program: &str, dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    if program == "redis-server" {
        return std::fs::read_link(format!("/proc/{pid}/cwd"))
            .is_ok_and(|cwd| cwd.starts_with(&dir));
    }
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let prefix = format!("{}/", dir.display());
    environ
        .split(|&b| b == 0)
        .filter_map(|var| std::str::from_utf8(var).ok())
        .filter_map(|var| var.split_once('=').map(|(_, value)| value))
        .any(|value| value.starts_with(&prefix))
}

/// The single-node local stack `dir` records, and whether its Redis and its server still run the
/// programs they started: a stack with one of them dead is still recorded (a rotation must refuse
/// it rather than take it for no stack).
#[must_use]
pub fn local_recorded(dir: &Path) -> Option<(LocalPids, bool, bool)> {
    let record = local_state_dir(dir).join(PIDS_FILE);
    // No link followed: a record reached through a linked `local/` is no record of this directory.
    let text = super::read_below(dir, &format!("{LOCAL_STATE_DIR}/{PIDS_FILE}")).ok()?;
    let pids: LocalPids = serde_json::from_str(&text).ok()?;
    let redis = recorded_process_runs(pids.redis, "redis-server", &record);
    let server = recorded_process_runs(pids.server, "sealcache-server", &record);
    Some((pids, redis, server))
}

/// The single-node local stack running from `dir`, when both recorded processes still run the
/// programs they started (a recycled pid is never taken for them).
#[must_use]
pub fn local_running(dir: &Path) -> Option<LocalPids> {
    match local_recorded(dir)? {
        (pids, true, true) => Some(pids),
        _ => None,
    }
}

/// The `aclfile` the local Redis of `dir` was started with (its generated redis.conf).
#[must_use]
pub fn acl_file_in_use(dir: &Path) -> Option<PathBuf> {
    let conf = super::read_below(dir, &format!("{LOCAL_STATE_DIR}/redis.conf")).ok()?;
    conf.lines().find_map(|l| {
        let path = l.strip_prefix("aclfile ")?.trim();
        let path = path
            .strip_prefix('"')
            .and_then(|p| p.strip_suffix('"'))
            .unwrap_or(path);
        Some(PathBuf::from(
            path.replace("\\\"", "\"").replace("\\\\", "\\"),
        ))
    })
}

/// The local cluster stack of `dir`, when any recorded process still runs the program it
/// started (a stack with a dead node is still a stack: status must show it, rotation must fail
/// on that node rather than skip the whole stack, and down must stop the rest).
#[must_use]
pub fn local_cluster_running(dir: &Path) -> Option<LocalCluster> {
    let record = local_cluster_state_dir(dir).join(PIDS_FILE);
    let text = super::read_below(dir, &format!("{LOCAL_CLUSTER_STATE_DIR}/{PIDS_FILE}")).ok()?;
    let cluster: LocalCluster = serde_json::from_str(&text).ok()?;
    (cluster
        .nodes
        .iter()
        .any(|n| recorded_process_runs(n.pid, "redis-server", &record))
        || cluster
            .backends
            .iter()
            .any(|b| recorded_process_runs(b.pid, "sealcache-server", &record)))
    .then_some(cluster)
}

/// Sends SIGTERM to `pid` when it still runs `program` (a recycled pid runs something else and is
/// never signalled), then waits up to `wait` for it to end. Returns whether it was signalled.
///
/// # Errors
/// [`OpsError::Command`] when the signal cannot be sent (a process that ended in the meantime is
/// no error: nothing is left to stop).
pub fn terminate(pid: u32, program: &str, wait: std::time::Duration) -> Result<bool> {
    if !cmdline(pid).contains(program) {
        return Ok(false);
    }
    // Gone in the meantime, or another user's process: nothing of ours to stop.
    if !send_signal(pid, rustix::process::Signal::TERM, "TERM", program)? {
        return Ok(false);
    }
    let deadline = std::time::Instant::now() + wait;
    while cmdline(pid).contains(program) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(true)
}

/// Sends `signal` (`HUP`, `USR1`) to the local server `pid`, after checking that the pid still
/// runs it.
///
/// # Errors
/// [`OpsError::Unhealthy`] when the pid runs another program; [`OpsError::Command`] when the
/// signal is not `HUP`, `USR1` or `TERM`, or cannot be sent.
pub fn signal_server(pid: u32, signal: &str) -> Result<()> {
    if !cmdline(pid).contains("sealcache-server") {
        return Err(OpsError::Unhealthy {
            target: format!("pid {pid}"),
            detail: "no longer runs sealcache-server".to_owned(),
        });
    }
    let sig = match signal {
        "HUP" => rustix::process::Signal::HUP,
        "USR1" => rustix::process::Signal::USR1,
        "TERM" => rustix::process::Signal::TERM,
        _ => {
            return Err(OpsError::Command {
                program: format!("kill -{signal} {pid}"),
                detail: "not a signal a backend takes".to_owned(),
            });
        }
    };
    if send_signal(pid, sig, signal, "sealcache-server")? {
        Ok(())
    } else {
        Err(OpsError::Unhealthy {
            target: format!("pid {pid}"),
            detail: "ended, or belongs to another user".to_owned(),
        })
    }
}

/// Sends `sig` (named `name`) to `pid`, which runs `program`: whether it was delivered. A
/// process that has ended (`ESRCH`) or belongs to another user (`EPERM`) is not delivered to:
/// `false`, never an error.
///
/// # Errors
/// [`OpsError::Command`] for any other failure, or a pid that is no process id.
pub(crate) fn send_signal(
    pid: u32,
    sig: rustix::process::Signal,
    name: &str,
    program: &str,
) -> Result<bool> {
    let failed = |detail: String| OpsError::Command {
        program: format!("kill -{name} {pid} ({program})"),
        detail,
    };
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| failed("not a process id".to_owned()))?;
    match rustix::process::kill_process(target, sig) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::SRCH | rustix::io::Errno::PERM) => Ok(false),
        Err(e) => Err(failed(format!("failed ({e})"))),
    }
}

/// Sets `masterauth` in the local cluster nodes' configuration files (made from `cluster.conf`
/// at `secure-up`) to the directory's replication password, so that none keeps the old one.
/// Returns how many files changed.
///
/// # Errors
/// An unreadable password or configuration file, or a failed replacement.
pub fn rewrite_masterauth(dir: &Path) -> Result<usize> {
    let state = local_cluster_state_dir(dir);
    let Ok(entries) = std::fs::read_dir(&state) else {
        return Ok(0);
    };
    let path = dir.join(cluster_dir::REPLICATION_PASSWORD);
    let password = std::fs::read_to_string(&path).map_err(crate::error::io("read", &path))?;
    let password = SecretString::new(password.trim().to_owned());
    let mut changed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("node-") && name.ends_with(".conf")) {
            continue;
        }
        let text = SecretString::new(
            std::fs::read_to_string(&path).map_err(crate::error::io("read", &path))?,
        );
        let new = sealcache_config_gen::rotation::with_masterauth(text.expose_secret(), &password);
        if new.as_str() != text.expose_secret() {
            sealcache_config_gen::rotation::replace_file(&path, new.as_bytes())?;
            changed += 1;
        }
    }
    Ok(changed)
}
