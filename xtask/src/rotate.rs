//! `cargo xtask config rotate --stage add|promote|retire`: the deployment's files change in stages
//! (`sealcache_config_gen::rotation`), then every running process that uses the directory takes
//! them: Redis loads the ACL file (as `cache_admin`, whose current password stays valid throughout),
//! and each backend reloads its keyring on a signal and is checked to report the new key ids.
//!
//! Running processes are found from the directory itself: the local stack's pid record
//! (`secure-up --local`), and compose containers whose mounts come from it. The admin password
//! reaches `redis-cli` on its standard input, never on a command line or in an environment
//! variable.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use sealcache_config_gen::rotation::{self, RotateOptions, Stage, StageOutcome};
use sealcache_config_gen::{Keyring, SecretString, cluster_dir, layout};

use crate::verify::Check;

/// `--stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StageArg {
    /// A new key, decrypt-only everywhere, and new passwords accepted beside the old ones.
    Add,
    /// The new key seals, the old one only opens; clients switch to the new passwords.
    Promote,
    /// Keys demoted longer than the longest TTL ago and the old passwords are removed.
    Retire,
}

impl StageArg {
    fn stage(self) -> Stage {
        match self {
            StageArg::Add => Stage::Add,
            StageArg::Promote => Stage::Promote,
            StageArg::Retire => Stage::Retire,
        }
    }
}

/// Options of `config rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RotateArgs {
    /// The stage to run: add, then promote (once every backend holds the new key), then retire
    /// (after the longest TTL).
    #[arg(long, value_enum)]
    stage: StageArg,
    /// The deployment directory [default: deploy/generated].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// retire: drop decrypt-only keys even before the longest TTL has passed since their
    /// promotion (values they sealed become misses).
    #[arg(long)]
    force: bool,
    /// retire: how long a demoted key is kept, in seconds (the cache's longest TTL).
    #[arg(long, default_value_t = rotation::DEFAULT_LONGEST_TTL.as_secs())]
    longest_ttl: u64,
    /// Change the files only; reload no running process.
    #[arg(long)]
    no_reload: bool,
}

impl RotateArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.clone().unwrap_or_else(crate::config::default_dir);
        let opts = RotateOptions {
            force: self.force,
            longest_ttl: Duration::from_secs(self.longest_ttl),
            ..RotateOptions::default()
        };
        run_stage(&dir, self.stage.stage(), &opts, !self.no_reload)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// A Redis server that uses the directory.
#[derive(Debug, Clone)]
enum Redis {
    /// `secure-up --local`: redis-server on 127.0.0.1:`port` with the directory's files.
    Local { port: u16 },
    /// A compose container.
    Container { id: String },
}

impl std::fmt::Display for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redis::Local { port } => write!(f, "local redis-server on 127.0.0.1:{port}"),
            Redis::Container { id } => write!(f, "container {}", short(id)),
        }
    }
}

/// A backend that uses the directory.
#[derive(Debug, Clone)]
enum Backend {
    /// `secure-up --local [--cluster]`: the server's pid and API port.
    Local { pid: u32, port: u16 },
    /// A compose container and the host port its API is published on.
    Container { id: String, port: Option<u16> },
}

impl Backend {
    fn port(&self) -> Option<u16> {
        match self {
            Backend::Local { port, .. } => Some(*port),
            Backend::Container { port, .. } => *port,
        }
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local { pid, .. } => crate::local::signal_server(*pid, signal),
            // The same as `docker compose kill -s SIG<signal> backend`, for exactly the
            // containers that use this directory; `init: true` passes it on to the server.
            Backend::Container { id, .. } => {
                crate::docker::docker(&["kill", "--signal", signal, id])
                    .map(|_| ())
                    .with_context(|| format!("cannot signal container {}", short(id)))
            }
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local { pid, .. } => write!(f, "local sealcache-server (pid {pid})"),
            Backend::Container { id, .. } => write!(f, "container {}", short(id)),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The processes that use a deployment directory.
#[derive(Debug, Default)]
struct Targets {
    redis: Vec<Redis>,
    backends: Vec<Backend>,
    /// Processes started before the rotating secrets were mounted as directories.
    stale: Vec<String>,
}

/// Finds the local stack and the compose containers that use `dir` (canonical).
fn discover(dir: &Path) -> anyhow::Result<Targets> {
    let mut targets = Targets::default();
    if let Some(pids) = crate::local::running(dir) {
        let acl = crate::local::acl_file_in_use(dir);
        if acl.as_deref() != Some(dir.join(layout::USERS_ACL).as_path()) || pids.redis_port == 0 {
            targets.stale.push(format!(
                "the local stack (pids {} and {}): restart it with `cargo xtask down --dir {d}` and `cargo xtask secure-up --local --dir {d}`",
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
    if let Some(cluster) = crate::cluster_local::running(dir) {
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
    if !crate::docker::engine_answers() {
        return Ok(targets);
    }
    let secrets = dir.join(layout::SECRETS_DIR);
    let listed =
        crate::docker::docker(&["ps", "-q", "--filter", "label=com.docker.compose.service"])?;
    for id in listed.split_whitespace() {
        let Ok(v) = crate::docker::inspect(id) else {
            continue;
        };
        let mounts: Vec<(String, String)> = v["Mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["Source"].as_str().unwrap_or("").to_owned(),
                    m["Destination"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        if !mounts
            .iter()
            .any(|(s, _)| Path::new(s).starts_with(&secrets))
        {
            continue;
        }
        let id = v["Id"].as_str().unwrap_or(id).to_owned();
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
                "container {} ({kind}, project {}): re-create the stack (`cargo xtask down --project P` and `cargo xtask secure-up --dir {}`)",
                short(&id),
                v["Config"]["Labels"]["com.docker.compose.project"]
                    .as_str()
                    .unwrap_or("?"),
                dir.display()
            ));
            continue;
        }
        if kind == "redis" {
            targets.redis.push(Redis::Container { id });
        } else {
            let port = v["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
                .as_str()
                .and_then(|p| p.parse().ok());
            targets.backends.push(Backend::Container { id, port });
        }
    }
    Ok(targets)
}

/// Whether the deployment's Redis speaks TLS (its `.env`'s URL scheme).
fn uses_tls(dir: &Path) -> bool {
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
fn read_secret(dir: &Path, rel: &str) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(dir.join(rel))
        .with_context(|| format!("cannot read {}", dir.join(rel).display()))?;
    Ok(SecretString::new(text))
}

/// The lines of redis-cli's answer `text` after the first, the answer to `AUTH`, which must be
/// `OK`; otherwise an error `<failure()>: <the error code>`.
pub(crate) fn after_auth(
    text: &str,
    failure: impl FnOnce() -> String,
) -> anyhow::Result<std::str::Lines<'_>> {
    let mut lines = text.lines();
    let auth = lines.next().unwrap_or("").trim();
    ensure!(
        auth == "OK",
        "{}: {}",
        failure(),
        auth.split_whitespace().next().unwrap_or("no answer")
    );
    Ok(lines)
}

/// `redis-cli` for the Redis on 127.0.0.1:`port`, with the client certificate of `dir` when
/// `tls`, and no history file.
pub(crate) fn local_cli(dir: &Path, port: u16, tls: bool) -> Command {
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
pub(crate) fn container_cli(id: &str, tls: bool) -> Command {
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
fn redis_cli(
    dir: &Path,
    redis: &Redis,
    user: &str,
    password: &SecretString,
    command: &str,
) -> anyhow::Result<String> {
    let tls = uses_tls(dir);
    let mut cmd = match redis {
        Redis::Local { port } => local_cli(dir, *port, tls),
        Redis::Container { id } => container_cli(id, tls),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run redis-cli for {redis}"))?;
    let input = SecretString::new(format!(
        "AUTH {user} {}\n{command}\n",
        password.expose_secret().trim()
    ));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.expose_secret().as_bytes())
            .with_context(|| format!("cannot talk to redis-cli for {redis}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("redis-cli for {redis} failed"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = after_auth(&text, || format!("{user} cannot authenticate to {redis}"))?;
    let reply: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    if let Some(err) = reply.iter().find(|l| is_error(l)) {
        let verb: String = command
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        bail!("{redis} refused `{verb}`: {}", err.trim());
    }
    Ok(reply.join("\n"))
}

fn admin(dir: &Path, redis: &Redis, command: &str) -> anyhow::Result<String> {
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
fn apply_acl(dir: &Path, redis: &Redis) -> anyhow::Result<&'static str> {
    let file = std::fs::read_to_string(dir.join(layout::USERS_ACL))
        .with_context(|| format!("cannot read {}", dir.join(layout::USERS_ACL).display()))?;
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
        ensure!(reply.trim() == "OK", "{redis}: ACL LOAD answered {reply}");
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
        ensure!(
            live.get(user) == Some(should),
            "{redis} does not hold the passwords of users.acl for {user} after {how}"
        );
    }
    Ok(how)
}

/// Tells `redis` the directory's replication password (`CONFIG SET masterauth`; the command, with
/// the password, goes to redis-cli's standard input) and checks that it holds it: a replica
/// that reconnects after the old password's removal authenticates with the new one.
fn set_masterauth(dir: &Path, redis: &Redis) -> anyhow::Result<()> {
    let password = read_secret(dir, cluster_dir::REPLICATION_PASSWORD)?;
    let password = password.expose_secret().trim();
    let command = SecretString::new(format!("CONFIG SET masterauth {password}"));
    let reply = admin(dir, redis, command.expose_secret())?;
    ensure!(
        reply.trim() == "OK",
        "{redis}: CONFIG SET masterauth failed"
    );
    let got = SecretString::new(admin(dir, redis, "CONFIG GET masterauth")?);
    ensure!(
        got.expose_secret().lines().nth(1).map(str::trim) == Some(password),
        "{redis} does not hold the new masterauth"
    );
    Ok(())
}

/// Waits until the backend on `port` reports the keyring file's key ids.
fn wait_for_keys(port: u16, api_key: &str, ring: &Keyring) -> anyhow::Result<()> {
    let mut want = ring.decrypt_only_ids();
    want.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        match crate::verify::backend_status(port, api_key) {
            Ok(v) => {
                let primary = v["primary_key_id"].as_u64();
                let mut others: Vec<u32> = v["decrypt_only_key_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()))
                    .collect();
                others.sort_unstable();
                if primary == Some(u64::from(ring.primary_id())) && others == want {
                    return Ok(());
                }
                last = format!("primary {primary:?}, decrypt-only {others:?}");
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "the backend on port {port} did not take the keyring (primary {}, decrypt-only {want:?}); it reports {last}: its log says why (a refused keyring keeps the running one)",
        ring.primary_id()
    )
}

fn describe(outcome: &StageOutcome) {
    let env = outcome.environment;
    match outcome.stage {
        Stage::Add if outcome.repeated => println!(
            "✅ Stage add already done (key {:?} staged): reloading again",
            outcome.added_key_id
        ),
        Stage::Add => {
            println!(
                "✅ Key {} added decrypt-only; key {} still seals",
                outcome.added_key_id.unwrap_or(0),
                outcome.primary_key_id
            );
            println!(
                "✅ New passwords for the Redis users ({}-bit, environment {env} as recorded in the directory) staged under {}; users.acl accepts old and new",
                sealcache_config_gen::password::required_bits(env),
                layout::PENDING_DIR
            );
        }
        Stage::Promote if outcome.repeated => {
            println!("✅ Stage promote already done: reloading again");
        }
        Stage::Promote => {
            println!(
                "✅ Key {} seals; keys {:?} open only",
                outcome.primary_key_id, outcome.decrypt_only_key_ids
            );
            if outcome.passwords_switched {
                println!("✅ Clients' password files switched to the new passwords");
            }
            if outcome.masterauth_switched {
                println!(
                    "✅ cache_replication's password switched; {} holds the new masterauth",
                    cluster_dir::CLUSTER_CONF
                );
            }
        }
        Stage::Retire => {
            if outcome.retired_key_ids.is_empty() {
                println!("✅ No key retired");
            } else {
                println!(
                    "✅ Keys {:?} retired{}",
                    outcome.retired_key_ids,
                    if outcome.forced {
                        " (forced: values they sealed are misses now)"
                    } else {
                        ""
                    }
                );
            }
            for (id, left) in &outcome.kept_key_ids {
                match left {
                    Some(s) => println!(
                        "⏳ Key {id} kept: promoted less than the longest TTL ago ({s} s left); run retire again later, or --force"
                    ),
                    None => println!(
                        "⏳ Key {id} kept: no promotion time is recorded for it; retire it with --force once the longest TTL has passed"
                    ),
                }
            }
            if outcome.acl_changed {
                println!("✅ Old password hashes removed from users.acl");
            }
        }
    }
}

/// Runs `stage` on `dir` and, with `reload`, makes every process that uses the directory take it.
pub(crate) fn run_stage(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    reload: bool,
) -> anyhow::Result<StageOutcome> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("{} does not exist", dir.display()))?;
    let targets = if reload {
        discover(&dir)?
    } else {
        Targets::default()
    };
    if !targets.stale.is_empty() {
        bail!(
            "a running stack mounts {}'s secrets as single files (from before rotation support), so it would never see a rotation: {}",
            dir.display(),
            targets.stale.join("; ")
        );
    }
    // A cluster stack must be whole: a stopped node container is not even listed (docker ps), so
    // the running nodes and backends are counted against the directory's record.
    if reload
        && !(targets.redis.is_empty() && targets.backends.is_empty())
        && let Some(record) = cluster_dir::cluster_record(&dir)?
    {
        ensure!(
            targets.redis.len() == record.nodes.len() && targets.backends.len() == record.backends,
            "{} records {} nodes and {} backends, but {} nodes and {} backends run: nothing was changed; bring the stack back whole and run the stage again",
            dir.display(),
            record.nodes.len(),
            record.backends,
            targets.redis.len(),
            targets.backends.len()
        );
    }
    // Every Redis that uses the directory must answer its admin before a file changes: a stage
    // that could not reach a node would leave the files ahead of the running servers.
    for redis in &targets.redis {
        admin(&dir, redis, "PING").with_context(|| {
            format!(
                "{redis} does not answer as cache_admin: nothing was changed; bring it back (or take it out of the stack) and run the stage again"
            )
        })?;
    }
    let moved = rotation::upgrade_layout(&dir)?;
    if !moved.is_empty() {
        println!(
            "✅ Layout upgraded: {} moved into mounted directories",
            moved.join(", ")
        );
    }
    let outcome = rotation::rotate_stage(&dir, stage, opts)
        .with_context(|| format!("cannot run stage {} in {}", stage.as_str(), dir.display()))?;
    describe(&outcome);
    if !reload {
        println!("ℹ️  --no-reload: no running process was told");
        return Ok(outcome);
    }
    if targets.redis.is_empty() && targets.backends.is_empty() {
        println!(
            "ℹ️  No running stack uses {}: nothing to reload",
            dir.display()
        );
        return Ok(outcome);
    }
    if outcome.acl_changed || outcome.repeated || stage == Stage::Retire {
        for redis in &targets.redis {
            let how = apply_acl(&dir, redis)?;
            println!("✅ {redis}: holds the passwords of users.acl ({how})");
        }
    }
    if stage == Stage::Promote && cluster_dir::cluster_record(&dir)?.is_some() {
        for redis in &targets.redis {
            set_masterauth(&dir, redis)?;
            println!("✅ {redis}: masterauth set to cache_replication's new password");
        }
        let rewritten = crate::cluster_local::rewrite_masterauth(&dir)?;
        if rewritten > 0 {
            println!("✅ masterauth rewritten in the local nodes' {rewritten} configuration files");
        }
    }
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING))
        .context("cannot read the rotated keyring")?;
    // Retiring keys is decided here, from the promotion times of rotation.json; the backends'
    // own live-key check only knows their start time, so they reload without it (SIGUSR1).
    let signal = if stage == Stage::Retire && !outcome.retired_key_ids.is_empty() {
        "USR1"
    } else {
        "HUP"
    };
    let api_key = crate::verify::api_key(&dir);
    for backend in &targets.backends {
        backend.signal(signal)?;
        match backend.port() {
            Some(port) => {
                wait_for_keys(port, &api_key, &ring)?;
                println!(
                    "✅ {backend}: SIG{signal}, now seals with key {} and opens {:?}",
                    ring.primary_id(),
                    ring.decrypt_only_ids()
                );
            }
            None => println!(
                "⚠️  {backend}: SIG{signal} sent; its API is not published, so the new key ids were not checked"
            ),
        }
    }
    if stage == Stage::Promote && outcome.passwords_switched {
        println!(
            "ℹ️  Backends keep their authenticated Redis connections and use the new password for every new one (re-read on the SIGHUP above)"
        );
    }
    Ok(outcome)
}

/// Requests against the API while a rotation runs: each stores a new entry and reads it back.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    /// `workers` threads, spread over the backends on `ports`.
    fn start(ports: &[u16], api_key: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers.max(ports.len()))
            .map(|w| {
                let port = ports[w % ports.len()];
                let stop = stop.clone();
                let key = api_key.to_owned();
                std::thread::spawn(move || {
                    let (mut done, mut failed) = (0u64, Vec::new());
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let text = format!("rotation load {w} {n}");
                        let store = serde_json::json!({"text": text, "operation": "qa", "response": {"n": n}}).to_string();
                        let lookup = serde_json::json!({"text": text, "operation": "qa"}).to_string();
                        let stored = crate::http::request(port, "PUT", "/v1/cache/entries", Some(&key), Some(&store));
                        let found = crate::http::request(port, "POST", "/v1/cache/lookup", Some(&key), Some(&lookup));
                        match (&stored, &found) {
                            (Ok((201, _)), Ok((200, body))) if body.contains("\"hit\":true") => {}
                            _ => failed.push(format!(
                                "store {:?}, lookup {:?}",
                                stored.as_ref().map(|r| r.0).map_err(ToString::to_string),
                                found.as_ref().map(|r| (r.0, r.1.contains("\"hit\":true"))).map_err(ToString::to_string)
                            )),
                        }
                        done += 1;
                    }
                    (done, failed)
                })
            })
            .collect();
        Self { stop, workers }
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = (0, Vec::new());
        for w in self.workers {
            match w.join() {
                Ok((done, failed)) => {
                    total.0 += done;
                    total.1.extend(failed);
                }
                Err(_) => total.1.push("a load worker panicked".to_owned()),
            }
        }
        total
    }
}

fn entry(port: u16, api_key: &str, i: usize, store: bool) -> bool {
    let text = format!("written before the rotation {i}");
    if store {
        let body =
            serde_json::json!({"text": text, "operation": "summarize", "response": {"i": i}})
                .to_string();
        matches!(
            crate::http::request(port, "PUT", "/v1/cache/entries", Some(api_key), Some(&body)),
            Ok((201, _))
        )
    } else {
        let body = serde_json::json!({"text": text, "operation": "summarize"}).to_string();
        matches!(crate::http::request(port, "POST", "/v1/cache/lookup", Some(api_key), Some(&body)), Ok((200, b)) if b.contains("\"hit\":true"))
    }
}

/// `cargo xtask test`'s rotation check on a running stack (local or compose, one node or a
/// cluster) whose backends listen on `ports`: under concurrent store/lookup load on every backend,
/// keys and passwords go through add → promote → retire --force; no request may fail, no
/// `unknown_key_id` event may occur on any backend, entries written (through the first backend)
/// before stay readable (through the last) after the promotion, and every Redis node accepts
/// exactly the new passwords.
pub(crate) fn verify_under_load(dir: &Path, ports: &[u16]) -> Vec<Check> {
    let mut checks = Vec::new();
    let check = |name: &'static str, passed: bool, detail: String| Check {
        name,
        passed,
        detail,
    };
    let (Some(&port), Some(&last)) = (ports.first(), ports.last()) else {
        return vec![check(
            "rotation_stages_reloaded",
            false,
            "no backend".to_owned(),
        )];
    };
    let api_key = crate::verify::api_key(dir);
    let old_app = SecretString::new(
        std::fs::read_to_string(dir.join(layout::APP_PASSWORD)).unwrap_or_default(),
    );
    let before = (0..20).filter(|i| entry(port, &api_key, *i, true)).count();
    let load = Load::start(ports, &api_key, 2);
    std::thread::sleep(Duration::from_millis(500));
    let stages = (|| -> anyhow::Result<(usize, u32)> {
        let opts = RotateOptions::default();
        let added = run_stage(dir, Stage::Add, &opts, true)?;
        std::thread::sleep(Duration::from_millis(300));
        run_stage(dir, Stage::Promote, &opts, true)?;
        std::thread::sleep(Duration::from_millis(300));
        let readable = (0..20).filter(|i| entry(last, &api_key, *i, false)).count();
        let forced = RotateOptions {
            force: true,
            ..RotateOptions::default()
        };
        run_stage(dir, Stage::Retire, &forced, true)?;
        std::thread::sleep(Duration::from_millis(500));
        Ok((readable, added.added_key_id.unwrap_or(0)))
    })();
    let (requests, failed) = load.finish();
    match &stages {
        Ok(_) => checks.push(check(
            "rotation_stages_reloaded",
            true,
            "add → promote → retire --force: every Redis and backend took each stage".to_owned(),
        )),
        Err(e) => checks.push(check("rotation_stages_reloaded", false, format!("{e:#}"))),
    }
    checks.push(check(
        "rotation_under_load_no_failed_request",
        failed.is_empty() && requests > 0,
        format!(
            "{requests} store+lookup pairs during the rotation, {} failed{}",
            failed.len(),
            failed
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        ),
    ));
    if let Ok((readable, new_key)) = stages {
        checks.push(check(
            "rotation_old_entries_readable",
            readable == before && before == 20,
            format!("{readable} of {before} entries stored before the rotation read back after the promotion"),
        ));
        let statuses: Result<Vec<serde_json::Value>, String> = ports
            .iter()
            .map(|p| {
                crate::verify::backend_status(*p, &api_key).map_err(|e| format!("port {p}: {e}"))
            })
            .collect();
        match statuses {
            Ok(all) => {
                let sum = |name: &str| -> u64 {
                    all.iter()
                        .map(|v| v["security_events_by_type"][name].as_u64().unwrap_or(0))
                        .sum()
                };
                let (unknown, failed_open) = (sum("unknown_key_id"), sum("decrypt_failed"));
                checks.push(check(
                    "rotation_no_unknown_key_id",
                    unknown == 0 && failed_open == 0,
                    format!(
                        "unknown_key_id {unknown}, decrypt_failed {failed_open} ({} backend(s))",
                        all.len()
                    ),
                ));
                let keys: Vec<(u64, usize)> = all
                    .iter()
                    .map(|v| {
                        (
                            v["primary_key_id"].as_u64().unwrap_or(0),
                            v["decrypt_only_key_ids"].as_array().map_or(0, Vec::len),
                        )
                    })
                    .collect();
                checks.push(check(
                    "rotation_new_key_seals_alone",
                    keys.iter().all(|k| *k == (u64::from(new_key), 0)),
                    format!("(primary_key_id, decrypt-only keys) per backend: {keys:?}"),
                ));
            }
            Err(e) => checks.push(check("rotation_no_unknown_key_id", false, e)),
        }
    }
    // Every Redis as a rotation finds it: the local stack's, or the compose stack's containers.
    let redis = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| discover(&d).ok())
        .map(|t| t.redis)
        .filter(|r| !r.is_empty());
    let passwords = redis.map(|redis| -> anyhow::Result<String> {
        for redis in &redis {
            for (user, file) in rotation::USERS {
                redis_cli(dir, redis, user, &read_secret(dir, file)?, "PING")?;
            }
            let refused = redis_cli(
                dir,
                redis,
                sealcache_config_gen::acl::APP_USER,
                &old_app,
                "PING",
            )
            .is_err();
            ensure!(refused, "{redis}: cache_app's old password is still accepted");
        }
        Ok(format!(
            "on {} Redis node(s), the new passwords of all 4 users authenticate; cache_app's old one is refused",
            redis.len()
        ))
    });
    match passwords {
        Some(Ok(detail)) => checks.push(check("rotation_passwords", true, detail)),
        Some(Err(e)) => checks.push(check("rotation_passwords", false, format!("{e:#}"))),
        None => checks.push(check(
            "rotation_passwords",
            false,
            "no running Redis uses the directory".to_owned(),
        )),
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cargo xtask test` runs on its local stack, on its own:
    /// `cargo test -p xtask --bin xtask -- --ignored rotation_under_load`
    /// (ignored by default: it builds the release server and starts redis-server).
    #[test]
    #[ignore = "starts the local stack (release build, redis-server); part of `cargo xtask test`"]
    fn rotation_under_load_on_the_local_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("local-rotation");
        crate::local::tests::write_production_deployment(&dir);
        let port = crate::local::free_port().unwrap();
        let outcome = crate::local::up(&dir, port).map(|port| verify_under_load(&dir, &[port]));
        let _ = crate::local::down(&std::fs::canonicalize(&dir).unwrap());
        let checks = outcome.unwrap();
        crate::verify::print_checks(&checks);
        assert!(checks.iter().all(|c| c.passed) && checks.len() >= 6);
    }
}
