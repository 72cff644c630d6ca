//! The processes that use a deployment directory (the local stacks' pid records, compose
//! containers whose mounts come from it), and how a rotation talks to them: `redis-cli` as
//! `cache_admin` (the password on its standard input), signals to the backends.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{OpsError, Result, StepExt as _, ensure_healthy, refuse};
use crate::runtime::{self, docker};
use sealcache_config_gen::rotation;
use sealcache_config_gen::{SecretString, cluster_dir, layout};

/// A Redis server that uses the directory.
#[derive(Debug, Clone)]
pub enum Redis {
    /// `secure-up --local`: redis-server on 127.0.0.1:`port` with the directory's files.
    Local {
        /// Its TLS port.
        port: u16,
    },
    /// A compose container.
    Container {
        /// The container id.
        id: String,
        /// Its compose service (`redis`, `redis-node-N`).
        service: String,
    },
    /// A Redis reached over the network by name, from inside the backend container of a
    /// compose deployment (`REDIS_URL`'s host and port): administered with redis-rs, since the
    /// image holds no `redis-cli` and no Docker.
    Network {
        /// Its host name (the compose service, `redis`).
        host: String,
        /// Its port.
        port: u16,
    },
}

impl std::fmt::Display for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redis::Local { port } => write!(f, "local redis-server on 127.0.0.1:{port}"),
            Redis::Container { id, .. } => write!(f, "container {}", short(id)),
            Redis::Network { host, port } => write!(f, "redis-server at {host}:{port}"),
        }
    }
}

/// A backend that uses the directory.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `secure-up --local [--cluster]`: the server's pid and API port.
    Local {
        /// The server's pid.
        pid: u32,
        /// Its API port.
        port: u16,
    },
    /// A compose container and the host port its API is published on.
    Container {
        /// The container id.
        id: String,
        /// The host port its API is published on.
        port: Option<u16>,
    },
}

impl Backend {
    /// Its API port on the host (`None`: not published).
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        match self {
            Backend::Local { port, .. } => Some(*port),
            Backend::Container { port, .. } => *port,
        }
    }

    /// Sends `signal` (`HUP`, `USR1`) to it.
    ///
    /// # Errors
    /// The process no longer runs the server, or the signal cannot be sent.
    pub fn signal(&self, signal: &str) -> Result<()> {
        match self {
            Backend::Local { pid, .. } => runtime::signal_server(*pid, signal),
            // Sent from inside the container to its PID 1 (the `init: true` init, which passes it
            // on to the server), never with `docker kill --signal`: the engine marks a container
            // it signals as stopped by hand, and `restart: unless-stopped` then no longer restarts
            // it after a crash (moby/moby#41302). `sh` is in every image the backend runs on
            // (Debian slim or the local debootstrap base); `kill` is its builtin.
            Backend::Container { id, .. } => docker::docker(&container_signal_command(id, signal))
                .map(|_| ())
                .step(|| format!("cannot signal container {}", short(id))),
        }
    }
}

/// The `docker` arguments that deliver `signal` (a name such as `HUP`, never user input) to a
/// container's PID 1 from inside it.
fn container_signal_command<'a>(id: &'a str, signal: &'a str) -> [&'a str; 7] {
    ["exec", id, "sh", "-c", "kill -s \"$1\" 1", "sh", signal]
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local { pid, .. } => write!(f, "sealcache-server (pid {pid})"),
            Backend::Container { id, .. } => write!(f, "container {}", short(id)),
        }
    }
}

pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The processes that use a deployment directory.
#[derive(Debug, Default)]
pub struct Targets {
    /// The Redis servers.
    pub redis: Vec<Redis>,
    /// The backends.
    pub backends: Vec<Backend>,
    /// Processes started before the rotating secrets were mounted as directories.
    pub stale: Vec<String>,
    /// Recorded processes of a stack that runs only in part (what is down, and what to do).
    pub down: Vec<String>,
}

impl Targets {
    /// No process uses the directory.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.redis.is_empty() && self.backends.is_empty()
    }
}

/// Finds the local stack and the compose containers that use `dir` (resolved to its canonical
/// path when it exists).
///
/// # Errors
/// [`OpsError::Refused`] when Docker is installed but its engine does not answer, or a container
/// cannot be inspected (fail closed: a stack that cannot be seen is never taken for none).
pub fn discover(dir: &Path) -> Result<Targets> {
    // Compose mounts name absolute paths: a relative or linked directory is resolved first.
    let canonical = std::fs::canonicalize(dir);
    let dir = canonical.as_deref().unwrap_or(dir);
    // Inside the deployment's own backend container: no Docker, the neighbours by name.
    if let Some(targets) = super::in_container::targets(dir)? {
        return Ok(targets);
    }
    let mut targets = Targets::default();
    // `secure-up --local`: both processes, or neither (a stack running in part refuses).
    if let Some((pids, redis_runs, server_runs)) = runtime::local_recorded(dir)
        && redis_runs != server_runs
    {
        let (down, pid) = if redis_runs {
            ("sealcache-server", pids.server)
        } else {
            ("redis-server", pids.redis)
        };
        targets.down.push(format!(
            "the local stack's {down} (pid {pid}) is not running: bring the stack back whole (`sealcache down --dir {d}`, then `sealcache up --local --dir {d}`)",
            d = dir.display()
        ));
    }
    if let Some(pids) = runtime::local_running(dir) {
        let acl = runtime::acl_file_in_use(dir);
        if acl.as_deref() != Some(dir.join(layout::USERS_ACL).as_path()) || pids.redis_port == 0 {
            targets.stale.push(format!(
                "the local stack (pids {} and {}): restart it with `sealcache down --dir {d}` and `sealcache up --local --dir {d}`",
                pids.redis,
                pids.server,
                d = dir.display()
            ));
        } else {
            targets.redis.push(Redis::Local {
                port: pids.redis_port,
            });
            targets.backends.push(Backend::Local {
                pid: pids.server,
                port: pids.port,
            });
        }
    }
    // `secure-up --local --cluster`: every node and every backend.
    if let Some(cluster) = runtime::local_cluster_running(dir) {
        targets
            .redis
            .extend(cluster.nodes.iter().map(|n| Redis::Local { port: n.port }));
        targets
            .backends
            .extend(cluster.backends.iter().map(|b| Backend::Local {
                pid: b.pid,
                port: b.port,
            }));
    }
    if !docker::engine_answers() {
        // Fail closed: with Docker installed but its engine not answering (no permission on its
        // socket, another context, down, or slow), a compose stack that uses the directory
        // cannot be seen, and a stage would record itself complete without reloading it.
        if docker::cli_present() && targets.redis.is_empty() && targets.backends.is_empty() {
            refuse!(
                "the Docker engine does not answer (no permission on its socket, another context, or it is down), so whether a compose stack uses {} cannot be told: nothing was changed; fix access to Docker and run again (a rotation can change the files alone with --no-reload)",
                dir.display()
            );
        }
        // Without Docker at all (a container, a host without it), a directory that records a
        // compose project cannot be seen either: never taken for a stack that runs nowhere.
        if targets.is_empty()
            && let Some(record) = super::record::ComposeRecord::read(dir)?
        {
            refuse!(
                "{} records compose project {}, which cannot be seen from here (no Docker): nothing was changed; run where `docker` answers, or inside the stack's backend (`docker compose exec backend sealcache ...`)",
                dir.display(),
                record.project
            );
        }
        return Ok(targets);
    }
    for v in containers_using(dir, false)? {
        let mounts = mounts(&v);
        let id = v["Id"].as_str().unwrap_or_default().to_owned();
        let service = v["Config"]["Labels"]["com.docker.compose.service"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        // The single-node services, and the cluster's `redis-node-N` and `backend-N`.
        let numbered = |prefix: &str| {
            service
                .strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        let base = if numbered("redis-node-") {
            "redis"
        } else if numbered("backend-") {
            "backend"
        } else {
            service.as_str()
        };
        let (sub, kind) = match base {
            "redis" => (layout::REDIS_SECRETS_DIR, "redis"),
            "backend" => (layout::BACKEND_SECRETS_DIR, "backend"),
            _ => continue,
        };
        let mounted = mounts
            .iter()
            .any(|(s, d)| Path::new(s) == dir.join(sub) && *d == layout::container_path(sub));
        if !mounted {
            targets.stale.push(format!(
                "container {} ({kind}, project {}): re-create the stack (`sealcache down --dir {d}` and `sealcache up --dir {d}`)",
                short(&id),
                v["Config"]["Labels"]["com.docker.compose.project"]
                    .as_str()
                    .unwrap_or("?"),
                d = dir.display()
            ));
            continue;
        }
        if kind == "redis" {
            targets.redis.push(Redis::Container { id, service });
        } else {
            let port = v["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
                .as_str()
                .and_then(|p| p.parse().ok());
            targets.backends.push(Backend::Container { id, port });
        }
    }
    // In a stable order (`docker ps` lists newest first): backends by port, nodes by name.
    targets.backends.sort_by_key(Backend::port);
    targets.redis.sort_by_key(|r| match r {
        Redis::Local { port } => (String::new(), *port),
        Redis::Container { service, .. } => (service.clone(), 0),
        Redis::Network { host, port } => (host.clone(), *port),
    });
    Ok(targets)
}

/// A container's mounts, `(source, destination)`.
fn mounts(v: &serde_json::Value) -> Vec<(String, String)> {
    v["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["Source"].as_str().unwrap_or("").to_owned(),
                m["Destination"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The `docker inspect` documents of the compose containers that mount something from `dir`'s
/// secrets: the running ones, or with `all` the stopped ones too.
///
/// # Errors
/// [`OpsError::Command`] when Docker does not answer; a container that cannot be inspected might
/// be one of this directory's, so it is an error too (never skipped).
pub(crate) fn containers_using(dir: &Path, all: bool) -> Result<Vec<serde_json::Value>> {
    let canonical = std::fs::canonicalize(dir);
    let dir = canonical.as_deref().unwrap_or(dir);
    let secrets = dir.join(layout::SECRETS_DIR);
    let ps = if all { "-aq" } else { "-q" };
    let listed = docker::docker(&["ps", ps, "--filter", "label=com.docker.compose.service"])?;
    let mut found = Vec::new();
    for id in listed.split_whitespace() {
        let v = docker::inspect(id).step(|| {
            format!(
                "cannot inspect container {id}: nothing was changed; run again once Docker answers"
            )
        })?;
        if mounts(&v)
            .iter()
            .any(|(s, _)| Path::new(s).starts_with(&secrets))
        {
            found.push(v);
        }
    }
    Ok(found)
}

/// Whether the deployment's Redis speaks TLS (its `.env`'s URL scheme).
pub(crate) fn uses_tls(dir: &Path) -> bool {
    sealcache_config_gen::read_env_file(&dir.join(layout::ENV_FILE))
        .ok()
        .and_then(|v| v.get("REDIS_URL").cloned())
        .is_none_or(|url| url.starts_with("rediss://"))
}

/// A reply line that is an error.
fn is_error(line: &str) -> bool {
    let word = line.split_whitespace().next().unwrap_or("");
    word.starts_with("ERR")
        || matches!(
            word,
            "WRONGPASS" | "NOAUTH" | "NOPERM" | "WRONGTYPE" | "LOADING" | "READONLY"
        )
}

/// The secret file `rel` of `dir`.
pub fn read_secret(dir: &Path, rel: &str) -> Result<SecretString> {
    // No link below `dir` is followed: the backend container may write `secrets/`.
    let text = runtime::read_below(dir, rel)
        .step(|| format!("cannot read {}", dir.join(rel).display()))?;
    Ok(SecretString::new(text))
}

/// The lines of redis-cli's answer `text` after the first, the answer to `AUTH`, which must be
/// `OK`; otherwise an error `<failure()>: <the error code>`.
pub fn after_auth(text: &str, failure: impl FnOnce() -> String) -> Result<std::str::Lines<'_>> {
    let mut lines = text.lines();
    let auth = lines.next().unwrap_or("").trim();
    ensure_healthy!(
        auth == "OK",
        failure(),
        "{}",
        auth.split_whitespace().next().unwrap_or("no answer")
    );
    Ok(lines)
}

/// `redis-cli` for the Redis on 127.0.0.1:`port`, with the client certificate of `dir` when
/// `tls`, and no history file.
pub fn local_cli(dir: &Path, port: u16, tls: bool) -> Command {
    let mut c = Command::new("redis-cli");
    if tls {
        c.arg("--tls")
            .arg("--cacert")
            .arg(dir.join(layout::CA_CERT))
            .arg("--cert")
            .arg(dir.join(layout::CLIENT_CERT))
            .arg("--key")
            .arg(dir.join(layout::CLIENT_KEY));
    }
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .env("REDISCLI_HISTFILE", "/dev/null");
    c
}

/// `redis-cli` inside the container `id` (its own 127.0.0.1:6379), with the mounted client
/// certificate when `tls`, and no history file.
pub fn container_cli(id: &str, tls: bool) -> Command {
    let mut c = Command::new("docker");
    c.args([
        "exec",
        "-i",
        "-e",
        "REDISCLI_HISTFILE=/dev/null",
        id,
        "redis-cli",
    ]);
    if tls {
        c.args([
            "--tls",
            "--cacert",
            &layout::container_path(layout::CA_CERT),
            "--cert",
            &layout::container_path(layout::CLIENT_CERT),
            "--key",
            &layout::container_path(layout::CLIENT_KEY),
        ]);
    }
    c.args(["-h", "127.0.0.1", "-p", &layout::REDIS_PORT.to_string()]);
    c
}

/// Runs `command` (no secret in it) on `redis` as `user` with `password`: `redis-cli` reads
/// `AUTH` and the command from its standard input. Returns the reply (without `AUTH`'s).
pub fn redis_cli(
    dir: &Path,
    redis: &Redis,
    user: &str,
    password: &SecretString,
    command: &str,
) -> Result<String> {
    let tls = uses_tls(dir);
    let text = match redis {
        Redis::Local { port } => {
            spawn_cli(local_cli(dir, *port, tls), redis, user, password, command)?
        }
        Redis::Container { id, .. } => {
            spawn_cli(container_cli(id, tls), redis, user, password, command)?
        }
        Redis::Network { host, port } => {
            super::network::run(dir, host, *port, tls, user, password, command)?
        }
    };
    let lines = after_auth(&text, || format!("{user} cannot authenticate to {redis}"))?;
    let reply: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    if let Some(err) = reply.iter().find(|l| is_error(l)) {
        let verb: String = command
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        return Err(OpsError::Unhealthy {
            target: redis.to_string(),
            detail: format!("refused `{verb}`: {}", err.trim()),
        });
    }
    Ok(reply.join("\n"))
}

/// Runs `redis-cli` as `cmd`, `AUTH` and `command` on its standard input: its standard output.
fn spawn_cli(
    mut cmd: Command,
    redis: &Redis,
    user: &str,
    password: &SecretString,
    command: &str,
) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .step(|| format!("cannot run redis-cli for {redis}"))?;
    let input = SecretString::new(format!(
        "AUTH {user} {}\n{command}\n",
        password.expose_secret().trim()
    ));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.expose_secret().as_bytes())
            .step(|| format!("cannot talk to redis-cli for {redis}"))?;
    }
    let out = child
        .wait_with_output()
        .step(|| format!("redis-cli for {redis} failed"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `command` (no secret in it) on `redis` as `cache_admin`, with the directory's admin
/// password ([`redis_cli`]).
///
/// # Errors
/// As [`redis_cli`]; [`OpsError::Io`] when the admin password cannot be read.
pub fn admin(dir: &Path, redis: &Redis, command: &str) -> Result<String> {
    redis_cli(
        dir,
        redis,
        sealcache_config_gen::acl::ADMIN_USER,
        &read_secret(dir, layout::ADMIN_PASSWORD)?,
        command,
    )
}

/// Makes `redis` hold exactly the password hashes of the directory's `users.acl`, and checks it.
/// Redis 7.2 and later: `ACL LOAD` (it disconnects only clients of deleted users). Redis 7.0's
/// `ACL LOAD` disconnects every client, which would fail requests in flight, so there the changed
/// hashes are applied with `ACL SETUSER` (the file stays what a restart loads).
pub(crate) fn apply_acl(dir: &Path, redis: &Redis) -> Result<&'static str> {
    let file = runtime::read_below(dir, layout::USERS_ACL)
        .step(|| format!("cannot read {}", dir.join(layout::USERS_ACL).display()))?;
    let want = rotation::acl_hashes(&file);
    let info = admin(dir, redis, "INFO server")?;
    let version: Vec<u32> = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
        .unwrap_or("0")
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    let how = if version.as_slice() >= [7, 2].as_slice() {
        let reply = admin(dir, redis, "ACL LOAD")?;
        ensure_healthy!(reply.trim() == "OK", redis, "ACL LOAD answered {reply}");
        "ACL LOAD"
    } else {
        let live = rotation::acl_hashes(&admin(dir, redis, "ACL LIST")?);
        for (user, should) in &want {
            let have = live.get(user).cloned().unwrap_or_default();
            for hash in should.difference(&have) {
                admin(dir, redis, &format!("ACL SETUSER {user} #{hash}"))?;
            }
            for hash in have.difference(should) {
                admin(dir, redis, &format!("ACL SETUSER {user} !{hash}"))?;
            }
        }
        "ACL SETUSER (Redis before 7.2 disconnects every client on ACL LOAD)"
    };
    let live = rotation::acl_hashes(&admin(dir, redis, "ACL LIST")?);
    for (user, should) in &want {
        ensure_healthy!(
            live.get(user) == Some(should),
            redis,
            "does not hold the passwords of users.acl for {user} after {how}"
        );
    }
    Ok(how)
}

/// Tells `redis` the directory's replication password (`CONFIG SET masterauth`; the command, with
/// the password, goes to redis-cli's standard input) and checks that it holds it: a replica
/// that reconnects after the old password's removal authenticates with the new one.
pub(crate) fn set_masterauth(dir: &Path, redis: &Redis) -> Result<()> {
    let password = read_secret(dir, cluster_dir::REPLICATION_PASSWORD)?;
    let password = password.expose_secret().trim();
    let command = SecretString::new(format!("CONFIG SET masterauth {password}"));
    let reply = admin(dir, redis, command.expose_secret())?;
    ensure_healthy!(reply.trim() == "OK", redis, "CONFIG SET masterauth failed");
    let got = SecretString::new(admin(dir, redis, "CONFIG GET masterauth")?);
    ensure_healthy!(
        got.expose_secret().lines().nth(1).map(str::trim) == Some(password),
        redis,
        "does not hold the new masterauth"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::container_signal_command;

    #[test]
    fn a_container_is_signalled_from_inside_never_with_docker_kill() {
        let args = container_signal_command("abc123", "HUP");
        assert_eq!(args[..2], ["exec", "abc123"]);
        assert!(!args.contains(&"kill") && !args.contains(&"--signal"));
        assert_eq!(
            args[args.len() - 1],
            "HUP",
            "the signal is an argument, not shell text"
        );
    }
}
