//! `secure-up --local`: the same topology as local processes, without Docker.
//!
//! redis-server listens with TLS (client certificates required) on a loopback port only (`port 0`,
//! `tls-port`, `bind 127.0.0.1`), loads the generated ACL file, keeps nothing on disk; the server
//! runs from the release binary with the generated settings (host paths). Their pids are recorded in
//! `DIR/local/pids.json` (the directory is 0700); `down --dir DIR` stops exactly those processes,
//! after checking that each pid still runs the program it started.

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
    let conf = redis_conf(&template, &dir, &state, redis_port)
        .with_context(|| format!("cannot adapt {} to local processes", template_path.display()))?;
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
    let pids: Pids = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a pid record of secure-up --local", file.display()))?;
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
