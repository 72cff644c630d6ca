//! `secure-up --local`: the same topology as local processes, without Docker.
//!
//! redis-server runs the containers' configuration (deploy/redis/redis.conf: TLS with client
//! certificates required, no plaintext port, the generated ACL file, nothing on disk), adapted to a
//! local process: it binds 127.0.0.1 only, on a free TLS port, and reads the deployment
//! directory's files. The server runs from the release binary with the deployment's `.env`, its
//! secret paths mapped to the directory's files. Nothing is written twice: paths, users and
//! variables are the generated deployment's. The pids are recorded in `DIR/local/pids.json` (the
//! directory is 0700); `down --dir DIR` stops exactly those processes, after checking that each
//! pid still runs the program it started.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use sealcache_config_gen::layout;

use crate::contract::{REDIS_URL, SEALCACHE_LISTEN, SEALCACHE_LOG_FORMAT, host_path};
use crate::http::request;
use crate::progress::{cargo, on_path, step, workspace_root};

/// The containers' Redis configuration, which the local one is made from.
const REDIS_CONF: &str = "deploy/redis/redis.conf";

/// What `down` needs to stop a local stack.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Pids {
    redis: u32,
    server: u32,
    port: u16,
}

fn state_dir(dir: &Path) -> PathBuf {
    dir.join("local")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `path` quoted for redis.conf (which splits arguments like a shell: `"..."` with backslash
/// escapes).
fn quoted(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The local Redis configuration: the containers' `template` (deploy/redis/redis.conf) line by
/// line, so TLS, ACL, memory and persistence settings stay the same, except where a local process
/// must differ: it binds 127.0.0.1 only, its TLS port is `redis_port`, its secret files are those
/// of `dir` (the containers' `/run/secrets/...` paths mapped back), and its working directory and
/// log are in `state`.
fn redis_conf(template: &str, dir: &Path, state: &Path, redis_port: u16) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len() + 512);
    for line in template.lines() {
        let trimmed = line.trim();
        let (directive, args) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        let args = args.trim();
        let local = match directive {
            _ if trimmed.is_empty() || trimmed.starts_with('#') => line.to_owned(),
            "bind" => "bind 127.0.0.1".to_owned(),
            "tls-port" => format!("tls-port {redis_port}"),
            "dir" => format!("dir {}", quoted(state)?),
            "logfile" => format!("logfile {}", quoted(&state.join("redis.log"))?),
            _ if args.starts_with(layout::CONTAINER_SECRETS) => {
                let path = host_path(dir, args)
                    .with_context(|| format!("`{directive}` names {args}, outside the layout"))?;
                format!("{directive} {}", quoted(&path)?)
            }
            _ => line.to_owned(),
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
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in vars {
        let value = if value.starts_with(layout::CONTAINER_SECRETS) {
            let path = host_path(dir, &value)
                .with_context(|| format!("{name} names {value}, outside the layout"))?;
            path.to_str()
                .with_context(|| format!("{} is not UTF-8", path.display()))?
                .to_owned()
        } else {
            value
        };
        out.insert(name, value);
    }
    let url = out
        .get(REDIS_URL)
        .with_context(|| format!("no {REDIS_URL}"))?;
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("{REDIS_URL} has no scheme"))?;
    let database = rest.split_once('/').map_or("0", |(_, db)| db);
    let url = format!("{scheme}://localhost:{redis_port}/{database}");
    out.insert(REDIS_URL.to_owned(), url);
    out.insert(SEALCACHE_LISTEN.to_owned(), format!("127.0.0.1:{port}"));
    out.insert(SEALCACHE_LOG_FORMAT.to_owned(), "json".to_owned());
    Ok(out)
}

/// Starts Redis and the server; returns the API port.
pub(crate) fn up(dir: &Path, port: u16) -> anyhow::Result<u16> {
    if !on_path("redis-server") {
        bail!(
            "neither a Docker engine nor redis-server is available: install docker.io and docker-compose, or redis-server (apt-get install redis-server)"
        );
    }
    let dir = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot open the deployment directory {}", dir.display()))?;
    down(&dir)?;
    let state = state_dir(&dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let redis_port = free_port().context("cannot find a free local port for Redis")?;
    let template_path = workspace_root().join(REDIS_CONF);
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read {}", template_path.display()))?;
    let conf = redis_conf(&template, &dir, &state, redis_port).with_context(|| {
        format!(
            "cannot adapt {} to local processes",
            template_path.display()
        )
    })?;
    let conf_path = state.join("redis.conf");
    std::fs::write(&conf_path, conf)
        .with_context(|| format!("cannot write {}", conf_path.display()))?;
    let redis = Command::new("redis-server")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start redis-server")?;

    let env_path = dir.join(layout::ENV_FILE);
    let env = server_env(
        sealcache_config_gen::read_env_file(&env_path)?,
        &dir,
        redis_port,
        port,
    )
    .with_context(|| format!("cannot adapt {} to local processes", env_path.display()))?;
    step(
        "cargo build --release -p sealcache-server",
        cargo().args(["build", "--release", "--locked", "-p", "sealcache-server"]),
    )?;
    let binary = crate::progress::target_dir().join("release/sealcache-server");
    let log_path = state.join("server.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let server = Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let pids = Pids {
        redis: redis.id(),
        server: server.id(),
        port,
    };
    let pids_path = state.join("pids.json");
    std::fs::write(&pids_path, serde_json::to_vec_pretty(&pids)?)
        .with_context(|| format!("cannot write {}", pids_path.display()))?;

    let started = Instant::now();
    loop {
        if matches!(request(port, "GET", "/health", None, None), Ok((200, ref b)) if b.contains("connected"))
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the local stack did not become healthy; logs in {}",
                state.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "✅ Local processes: redis-server (pid {}, TLS on 127.0.0.1:{redis_port} only), sealcache-server (pid {})",
        pids.redis, pids.server
    );
    Ok(port)
}

/// Verifies the local stack through its API (TLS, ACL user, isolation, production readiness, store/lookup).
pub(crate) fn verify(dir: &Path, port: u16) -> Vec<crate::verify::Check> {
    let mut checks = Vec::new();
    let key = crate::verify::api_key(dir);
    match crate::verify::backend_status(port, &key) {
        Ok(v) => {
            for c in v["checks"].as_array().into_iter().flatten() {
                let name: &'static str = match c["name"].as_str().unwrap_or("") {
                    "tls_negotiated" => "tls_negotiated",
                    "acl_user" => "acl_user",
                    "default_user_disabled" => "default_user_disabled",
                    "network_isolated" => "network_isolated",
                    _ => continue,
                };
                checks.push(crate::verify::Check {
                    name,
                    passed: c["passed"] == true,
                    detail: c["detail"].as_str().unwrap_or("").to_owned(),
                });
            }
            let level = v["security_level"].as_str().unwrap_or("").to_owned();
            checks.push(crate::verify::Check {
                name: "backend_security_level",
                passed: level == "production_ready",
                detail: format!("security_level={level}"),
            });
        }
        other => checks.push(crate::verify::Check {
            name: "backend_security_status",
            passed: false,
            detail: format!("{other:?}"),
        }),
    }
    checks.push(crate::verify::end_to_end(port, &key));
    checks
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Stops the processes a local stack in `dir` started (and only those). Returns how many.
pub(crate) fn down(dir: &Path) -> anyhow::Result<usize> {
    let file = state_dir(dir).join("pids.json");
    let Ok(text) = std::fs::read(&file) else {
        return Ok(0);
    };
    let pids: Pids = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a pid record of secure-up --local",
            file.display()
        )
    })?;
    let mut stopped = 0;
    for (pid, program) in [
        (pids.server, "sealcache-server"),
        (pids.redis, "redis-server"),
    ] {
        // A recycled pid runs something else: never signal it.
        if cmdline(pid).contains(program) {
            let status = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .with_context(|| format!("cannot run kill -TERM {pid} ({program})"))?;
            if status.success() {
                stopped += 1;
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while cmdline(pid).contains(program) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use sealcache_config_gen::{OTHER_VARIABLES, VARIABLES, acl};

    use super::*;

    fn deployment() -> tempfile::TempDir {
        let detected = sealcache_env_detect::EnvironmentDetector::new(
            sealcache_env_detect::MapSource::new().var("ENVIRONMENT", "production"),
        )
        .detect(sealcache_env_detect::FeatureContext::SecurityEnforcement);
        let config =
            sealcache_config_gen::SecureConfigGenerator::generate_for_environment(&detected, None)
                .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        sealcache_config_gen::write_deployment(
            &config,
            &tmp.path().join("d"),
            &sealcache_config_gen::DeploymentOptions::default(),
        )
        .unwrap();
        tmp
    }

    #[test]
    fn the_local_redis_conf_is_the_containers_one_on_loopback_with_host_paths() {
        let template = include_str!("../../deploy/redis/redis.conf");
        let dir = Path::new("/srv/deploy x");
        let conf = redis_conf(template, dir, &dir.join("local"), 40123).unwrap();
        for line in [
            "bind 127.0.0.1",
            "port 0",
            "tls-port 40123",
            "tls-auth-clients yes",
            "aclfile \"/srv/deploy x/secrets/users.acl\"",
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
