//! `up --local`: a deployment directory's topology as local processes, without Docker, for a
//! host that has `redis-server` (and, for a cluster, `redis-cli`) and a `sealcache-server` binary.
//!
//! redis-server runs the containers' configuration (the embedded `redis/redis.conf`: TLS with
//! client certificates required, no plaintext port, the generated ACL file, nothing on disk),
//! adapted to a local process: it binds 127.0.0.1 only, on a free TLS port, and reads the
//! deployment directory's files. The server runs with the deployment's `.env`, its secret paths
//! mapped to the directory's files. Nothing is written twice: paths, users and variables are the
//! generated deployment's. The pids are recorded in `DIR/local/pids.json` (the directory is
//! 0700); `down` stops exactly those processes, after checking that each pid still runs the
//! program it started. The cluster ([`local_cluster`]) is the same, node by node.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealcache_config_gen::layout;

use crate::error::{OpsError, Result, io, refuse};
use crate::report::{Progress, ProgressExt as _};
use crate::runtime::{LocalPids, local_state_dir};

/// `REDIS_URL`.
const REDIS_URL: &str = "REDIS_URL";
/// `SEALCACHE_LISTEN`.
pub(super) const SEALCACHE_LISTEN: &str = "SEALCACHE_LISTEN";
/// `SEALCACHE_LOG_FORMAT`.
pub(super) const SEALCACHE_LOG_FORMAT: &str = "SEALCACHE_LOG_FORMAT";
/// Longest wait for a local backend to answer healthy.
const BACKEND_HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// What a local stack runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LocalOptions {
    /// The API port on 127.0.0.1 (a cluster's backends: this one, the next, ...).
    pub port: u16,
    /// The `sealcache-server` binary the backends run.
    pub server_binary: PathBuf,
}

impl LocalOptions {
    /// Backends of `server_binary` with the API on 127.0.0.1:`port`.
    #[must_use]
    pub fn new(port: u16, server_binary: impl Into<PathBuf>) -> Self {
        Self {
            port,
            server_binary: server_binary.into(),
        }
    }
}

/// The `sealcache-server` binary beside the running program, else the one on `PATH`.
#[must_use]
pub fn default_server_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("sealcache-server")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("sealcache-server"))
}

/// Whether `program` is an executable file in a directory of `PATH`.
#[must_use]
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            std::fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The host file of a container secret path (`/run/secrets/...` → `dir/secrets/...`); `None`
/// for a path outside the layout (or one that climbs out of it).
#[must_use]
pub fn host_path(dir: &Path, container: &str) -> Option<PathBuf> {
    let inner = container
        .strip_prefix(layout::CONTAINER_SECRETS)?
        .strip_prefix('/')?;
    (!inner.is_empty() && !inner.split('/').any(|c| c == ".." || c == "."))
        .then(|| dir.join(layout::SECRETS_DIR).join(inner))
}

/// `value` of the variable `name` with a container secret path mapped to the file of `dir`; any
/// other value as it is.
///
/// # Errors
/// [`OpsError::Input`] for a secret path outside the layout, or a directory path that is not
/// UTF-8.
pub fn host_value(dir: &Path, name: &str, value: String) -> Result<String> {
    if !value.starts_with(layout::CONTAINER_SECRETS) {
        return Ok(value);
    }
    let path = host_path(dir, &value).ok_or_else(|| OpsError::Input {
        what: name.to_owned(),
        reason: format!("names {value}, outside the layout"),
    })?;
    utf8(&path).map(str::to_owned)
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| OpsError::Input {
        what: path.display().to_string(),
        reason: "is not UTF-8".to_owned(),
    })
}

/// `path` quoted for redis.conf (which splits arguments like a shell: `"..."` with backslash
/// escapes).
///
/// # Errors
/// [`OpsError::Input`] for a path that is not UTF-8 or holds a control character.
pub fn quoted(path: &Path) -> Result<String> {
    let text = utf8(path)?;
    // redis.conf is read line by line: a newline in a path would start a directive of its own.
    if text.chars().any(char::is_control) {
        return Err(OpsError::Input {
            what: path.display().to_string(),
            reason: "holds a control character (a newline would start a redis.conf directive)"
                .to_owned(),
        });
    }
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// A local TCP port free at the time of asking.
///
/// # Errors
/// [`OpsError::System`] when no port can be bound.
pub fn free_port() -> Result<u16> {
    Ok(free_ports(1)?.first().copied().unwrap_or_default())
}

/// `count` local TCP ports free at the time of asking, all different (held open together).
///
/// # Errors
/// [`OpsError::System`] when they cannot be bound.
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The embedded template `name` (a path under `compose/`, as under the repository's `deploy/`).
pub(super) fn template(name: &str) -> Result<&'static str> {
    crate::templates::FILES
        .iter()
        .find(|(path, _)| *path == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| OpsError::Input {
            what: name.to_owned(),
            reason: "is no embedded template".to_owned(),
        })
}

/// The local Redis configuration: the containers' `template` line by line, so TLS, ACL, memory
/// and persistence settings stay the same, except where a local process must differ: it binds
/// 127.0.0.1 only, its TLS port is `redis_port`, its secret files are those of `dir` (the
/// containers' `/run/secrets/...` paths mapped back), and its working directory and log are in
/// `state`.
fn redis_conf(template: &str, dir: &Path, state: &Path, redis_port: u16) -> Result<String> {
    // The template's comments describe the containers: left out.
    let mut out = String::from(
        "# Generated by `sealcache up --local` from the containers' redis.conf: bind, tls-port,\n\
         # the secret files, dir and logfile adapted to a local process; everything else as there.\n",
    );
    for line in template.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (directive, args) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        let args = args.trim();
        let local = match directive {
            "bind" => "bind 127.0.0.1".to_owned(),
            "tls-port" => format!("tls-port {redis_port}"),
            "dir" => format!("dir {}", quoted(state)?),
            "logfile" => format!("logfile {}", quoted(&state.join("redis.log"))?),
            _ if args.starts_with(layout::CONTAINER_SECRETS) => {
                let path = host_path(dir, args).ok_or_else(|| OpsError::Input {
                    what: format!("redis.conf `{directive}`"),
                    reason: format!("names {args}, outside the layout"),
                })?;
                format!("{directive} {}", quoted(&path)?)
            }
            _ => trimmed.to_owned(),
        };
        out.push_str(&local);
        out.push('\n');
    }
    Ok(out)
}

/// The server's variables: the deployment's `.env` (what compose hands the backend with
/// `env_file`), with the containers' secret paths mapped to the files of `dir`, `REDIS_URL`
/// pointing at the local Redis on `redis_port` (same scheme and database), the API on
/// 127.0.0.1:`port`, and JSON logs as in the compose file.
fn server_env(
    vars: BTreeMap<String, String>,
    dir: &Path,
    redis_port: u16,
    port: u16,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in vars {
        refuse_loader_variable(dir, &name)?;
        let value = host_value(dir, &name, value)?;
        out.insert(name, value);
    }
    let no_url = |reason: &str| OpsError::Input {
        what: format!("{}'s {REDIS_URL}", dir.join(layout::ENV_FILE).display()),
        reason: reason.to_owned(),
    };
    let url = out.get(REDIS_URL).ok_or_else(|| no_url("is not set"))?;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| no_url("has no scheme"))?;
    let database = rest.split_once('/').map_or("0", |(_, db)| db);
    let url = format!("{scheme}://localhost:{redis_port}/{database}");
    out.insert(REDIS_URL.to_owned(), url);
    out.insert(SEALCACHE_LISTEN.to_owned(), format!("127.0.0.1:{port}"));
    out.insert(SEALCACHE_LOG_FORMAT.to_owned(), "json".to_owned());
    Ok(out)
}

/// Variables that change how a program is loaded or where the C library reads code and data
/// from: glibc's list of variables it ignores in privileged programs, plus `MALLOC_*` and `PATH`.
const PROCESS_VARIABLES: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "NIS_PATH",
    "NLSPATH",
    "PATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
];

/// Refuses a `.env` variable that changes how a program is loaded or runs (`LD_PRELOAD`, any
/// `LD_*` or `MALLOC_*`, [`PROCESS_VARIABLES`]): the server holds every secret, and no setting
/// needs one.
pub(super) fn refuse_loader_variable(dir: &Path, name: &str) -> Result<()> {
    if name.starts_with("LD_") || name.starts_with("MALLOC_") || PROCESS_VARIABLES.contains(&name) {
        refuse!(
            "{}'s .env sets {name}, which changes how the server is loaded: remove it; nothing was started",
            dir.display()
        );
    }
    Ok(())
}

/// Refuses an API port that something already listens on: the backend started here would fail
/// to bind it, and whatever answers there must never be taken for it.
pub(super) fn refuse_taken_port(port: u16) -> Result<()> {
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        refuse!(
            "127.0.0.1:{port} is in use: choose another --port (or stop what listens there); nothing was started"
        );
    }
    Ok(())
}

/// Whether the process `pid` holds a socket listening on 127.0.0.1:`port` (its descriptors
/// against the kernel's table of TCP sockets): the backend answering there is the one started
/// here, not a process that took the port first.
fn listens_on(pid: u32, port: u16) -> bool {
    // /proc/net/tcp: `sl local_address rem_address st ... inode`; 0100007F is 127.0.0.1 and
    // state 0A is LISTEN.
    let local = format!("0100007F:{port:04X}");
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
                .then(|| fields.get(9).map(|i| format!("socket:[{i}]")))
                .flatten()
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// A new, empty directory `path` of mode 0700 in place of whatever was there: a directory (and
/// what it held) or a link is removed, never followed, so that nothing written below it can land
/// elsewhere, and no file in it predates this start.
///
/// # Errors
/// [`OpsError::Io`] naming the path.
pub(super) fn fresh_private_dir(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            std::fs::remove_dir_all(path).map_err(io("remove", path))?;
        }
        Ok(_) => std::fs::remove_file(path).map_err(io("remove", path))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", path)(e)),
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(io("create", path))
}

/// Stops the local stack already running from `dir`, saying so.
pub(super) fn stop_running(dir: &Path, progress: &mut dyn Progress) -> Result<()> {
    let stopped = crate::stack::stop_local(dir)?;
    if !stopped.is_empty() {
        progress.info(format!(
            "the local stack already running from {} was stopped first ({} processes)",
            dir.display(),
            stopped.len()
        ));
    }
    Ok(())
}

/// Stops `children` (processes this start spawned, after a failure): SIGKILL and reaped.
pub(super) fn stop_children(children: &mut [std::process::Child]) {
    for child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Starts `redis-server` on the configuration file `conf_path`, its standard streams closed.
///
/// # Errors
/// [`OpsError::Command`] when it cannot be started.
pub fn spawn_redis(conf_path: &Path) -> Result<std::process::Child> {
    Command::new("redis-server")
        .arg(conf_path)
        // Its own process group: a Ctrl-C or hangup aimed at the command that started it (a
        // deploy script) does not take the stack down.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| OpsError::Command {
            program: format!("redis-server {}", conf_path.display()),
            detail: format!("cannot start ({e})"),
        })
}

/// Starts the server `binary` with only `PATH` and `env`, its output appended to a new
/// `log_path`.
///
/// # Errors
/// [`OpsError::Io`] for the log file, [`OpsError::Command`] when it cannot be started.
pub fn spawn_server(
    binary: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    log_path: &Path,
) -> Result<std::process::Child> {
    let log = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(log_path)
        .map_err(io("create", log_path))?;
    let out = log.try_clone().map_err(io("reopen", log_path))?;
    Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(log)
        .spawn()
        .map_err(|e| OpsError::Command {
            program: binary.display().to_string(),
            detail: format!("cannot start ({e})"),
        })
}

/// Waits until the backend `server` (started here) on 127.0.0.1:`port` answers `/health` with
/// Redis connected; a server that exits meanwhile fails at once, with its exit status and the
/// last line of its log (`log`).
///
/// # Errors
/// [`OpsError::Unhealthy`] when it exits, or after [`BACKEND_HEALTHY_WITHIN`], naming the log.
pub(super) fn wait_backend(server: &mut std::process::Child, port: u16, log: &Path) -> Result<()> {
    let deadline = Instant::now() + BACKEND_HEALTHY_WITHIN;
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            let last = std::fs::read_to_string(log)
                .ok()
                .and_then(|text| {
                    text.lines()
                        .last()
                        .map(|l| l.chars().take(400).collect::<String>())
                })
                .unwrap_or_default();
            return Err(OpsError::Unhealthy {
                target: format!("the backend for 127.0.0.1:{port}"),
                detail: format!(
                    "exited ({status}) before it answered; last log line: {last} (log: {})",
                    log.display()
                ),
            });
        }
        // Only the process started here is asked, and only once it holds the port.
        if listens_on(server.id(), port)
            && matches!(crate::runtime::request(port, "GET", "/health", None, None), Ok((200, ref b)) if b.contains("connected"))
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(OpsError::Unhealthy {
                target: format!("the backend on 127.0.0.1:{port}"),
                detail: format!(
                    "not healthy within {} s; log: {}",
                    BACKEND_HEALTHY_WITHIN.as_secs(),
                    log.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes `pids` as the local stack's record in `state`.
pub(super) fn record(state: &Path, pids: &impl serde::Serialize) -> Result<()> {
    let path = state.join("pids.json");
    let text = serde_json::to_vec_pretty(pids)?;
    super::local_cluster::write_private(&path, &text)
}

/// Creates the empty log `path` (mode 0600) that redis-server then appends to, so that it is
/// never created with the process's umask.
pub(super) fn private_log(path: &Path) -> Result<()> {
    super::local_cluster::write_private(path, b"")
}

/// Starts the single-node deployment of `dir` as local processes (a running one of `dir` is
/// stopped first) and waits until the backend is healthy.
///
/// # Errors
/// [`OpsError::Refused`] without `redis-server` or for a `.env` that sets a loader variable
/// (`LD_*`); [`OpsError::Io`], [`OpsError::Input`] for the directory; [`OpsError::Command`] when a
/// process cannot start; [`OpsError::Unhealthy`] when the backend exits or does not become
/// healthy. On any failure after the first process started, what this start spawned is stopped
/// (its logs stay in `DIR/local/`).
pub fn local(dir: &Path, options: &LocalOptions, progress: &mut dyn Progress) -> Result<LocalPids> {
    if !on_path("redis-server") {
        refuse!(
            "redis-server is not installed (apt-get install redis-server): nothing was started"
        );
    }
    let dir = std::fs::canonicalize(dir).map_err(io("open the deployment directory", dir))?;
    // Everything that can be refused is, before anything starts.
    crate::runtime::refuse_shared_directory(&dir)?;
    let vars = sealcache_config_gen::read_env_file(&dir.join(layout::ENV_FILE))?;
    let redis_port = free_port()?;
    let env = server_env(vars, &dir, redis_port, options.port)?;
    let state = local_state_dir(&dir);
    let conf = redis_conf(template("redis/redis.conf")?, &dir, &state, redis_port)?;

    stop_running(&dir, progress)?;
    refuse_taken_port(options.port)?;
    fresh_private_dir(&state)?;
    let conf_path = state.join("redis.conf");
    super::local_cluster::write_private(&conf_path, conf.as_bytes())?;
    private_log(&state.join("redis.log"))?;
    let mut started = vec![spawn_redis(&conf_path)?];
    let log = state.join("server.log");
    let outcome = spawn_server(&options.server_binary, env, &log).and_then(|server| {
        started.push(server);
        let pids = LocalPids {
            redis: started.first().map_or(0, std::process::Child::id),
            server: started.last().map_or(0, std::process::Child::id),
            port: options.port,
            redis_port,
        };
        record(&state, &pids)?;
        if let Some(server) = started.last_mut() {
            wait_backend(server, options.port, &log)?;
        }
        Ok(pids)
    });
    match outcome {
        Ok(pids) => {
            progress.ok(format!(
                "Local processes: redis-server (pid {}, TLS on 127.0.0.1:{redis_port} only), sealcache-server (pid {}, http://127.0.0.1:{})",
                pids.redis, pids.server, pids.port
            ));
            Ok(pids)
        }
        Err(err) => {
            // Nothing this start spawned is left running (its logs stay in the state directory).
            stop_children(&mut started);
            let _ = std::fs::remove_file(state.join("pids.json"));
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sealcache_config_gen::{
        DeploymentOptions, EnvironmentDetector, FeatureContext, MapSource, OTHER_VARIABLES,
        SecureConfigGenerator, VARIABLES, acl, write_deployment,
    };

    use super::*;

    fn deployment() -> tempfile::TempDir {
        let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
            .detect(FeatureContext::SecurityEnforcement);
        let config = SecureConfigGenerator::generate_for_environment(&detected, None).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        write_deployment(
            &config,
            &tmp.path().join("d"),
            &DeploymentOptions::default(),
        )
        .unwrap();
        tmp
    }

    #[test]
    fn only_the_process_holding_the_port_listens_on_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listens_on(std::process::id(), port));
        assert!(
            !listens_on(1, port),
            "another process taken for the listener"
        );
        drop(listener);
        assert!(!listens_on(std::process::id(), port));
    }

    #[test]
    fn host_path_inverts_container_path() {
        let dir = Path::new("/deploy/x");
        for rel in layout::SECRET_FILES
            .iter()
            .filter(|r| r.starts_with(layout::SECRETS_DIR))
        {
            assert_eq!(
                host_path(dir, &layout::container_path(rel)),
                Some(dir.join(rel))
            );
        }
        assert_eq!(host_path(dir, "/run/secretsx/a"), None);
        assert_eq!(host_path(dir, "/run/secrets/../ca/ca.key"), None);
    }

    #[test]
    fn the_local_redis_conf_is_the_containers_one_on_loopback_with_host_paths() {
        let template = template("redis/redis.conf").unwrap();
        let dir = Path::new("/srv/deploy x");
        let conf = redis_conf(template, dir, &dir.join("local"), 40123).unwrap();
        for line in [
            "bind 127.0.0.1",
            "port 0",
            "tls-port 40123",
            "tls-auth-clients yes",
            "aclfile \"/srv/deploy x/secrets/redis/users.acl\"",
            "tls-key-file \"/srv/deploy x/secrets/tls/redis.key\"",
            "dir \"/srv/deploy x/local\"",
            "logfile \"/srv/deploy x/local/redis.log\"",
        ] {
            assert!(conf.lines().any(|l| l == line), "no `{line}` in\n{conf}");
        }
        // Everything else is the containers' configuration, line for line.
        for line in template.lines().filter(|l| {
            l.starts_with("tls-ciphers")
                || l.starts_with("tls-protocols")
                || l.starts_with("maxmemory")
                || l.starts_with("save")
        }) {
            assert!(conf.lines().any(|l| l == line), "`{line}` was lost");
        }
        assert!(!conf.contains(layout::CONTAINER_SECRETS) && !conf.contains("/data"));
        assert!(redis_conf("aclfile /run/secrets/../ca/ca.key\n", dir, dir, 1).is_err());
    }

    #[test]
    fn the_server_gets_the_deployments_env_with_host_paths() {
        let tmp = deployment();
        let dir = tmp.path().join("d");
        let vars = sealcache_config_gen::read_env_file(&dir.join(layout::ENV_FILE)).unwrap();
        let env = server_env(vars, &dir, 40123, 8123).unwrap();
        assert_eq!(env["REDIS_URL"], "rediss://localhost:40123/0");
        assert_eq!(env["SEALCACHE_LISTEN"], "127.0.0.1:8123");
        assert_eq!(env["REDIS_USERNAME"], acl::APP_USER);
        assert_eq!(env["REDIS_MONITOR_USERNAME"], acl::MONITOR_USER);
        for (rel, name) in [
            (layout::APP_PASSWORD, "REDIS_PASSWORD_FILE"),
            (layout::MONITOR_PASSWORD, "REDIS_MONITOR_PASSWORD_FILE"),
            (layout::CA_CERT, "REDIS_TLS_CA_PATH"),
            (layout::CLIENT_CERT, "REDIS_TLS_CERT_PATH"),
            (layout::CLIENT_KEY, "REDIS_TLS_KEY_PATH"),
            (layout::ENCRYPTION_KEYRING, "REDIS_ENCRYPTION_KEYS_FILE"),
            (layout::API_KEY, "API_KEY_FILE"),
        ] {
            assert_eq!(Path::new(&env[name]), dir.join(rel), "{name}");
        }
        for (name, value) in &env {
            assert!(
                VARIABLES.contains(&name.as_str()) || OTHER_VARIABLES.contains(&name.as_str()),
                "{name} is read by nothing"
            );
            assert!(!value.starts_with(layout::CONTAINER_SECRETS), "{name}");
        }
    }
}
