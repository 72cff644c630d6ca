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

use crate::http::request;
use crate::progress::{cargo, on_path, step};

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
    let dir = std::fs::canonicalize(dir)?;
    down(&dir)?;
    let state = state_dir(&dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)?;
    let redis_port = free_port()?;
    let s = |rel: &str| dir.join(rel).to_string_lossy().into_owned();
    let conf = format!(
        "bind 127.0.0.1\nprotected-mode yes\nport 0\ntls-port {redis_port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients yes\ntls-protocols \"TLSv1.2 TLSv1.3\"\naclfile {}\nsave \"\"\nappendonly no\ndir {}\nmaxmemory 192mb\nmaxmemory-policy allkeys-lru\ndaemonize no\nlogfile {}\n",
        s("secrets/tls/redis.crt"),
        s("secrets/tls/redis.key"),
        s("secrets/tls/ca.crt"),
        s("secrets/users.acl"),
        state.display(),
        state.join("redis.log").display(),
    );
    std::fs::write(state.join("redis.conf"), conf)?;
    let redis = Command::new("redis-server")
        .arg(state.join("redis.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start redis-server")?;

    step(
        "cargo build --release -p sealcache-server",
        cargo().args(["build", "--release", "--locked", "-p", "sealcache-server"]),
    )?;
    let binary = crate::progress::target_dir().join("release/sealcache-server");
    let log = std::fs::File::create(state.join("server.log"))?;
    let server = Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("ENVIRONMENT", "production".to_owned()),
            ("REDIS_URL", format!("rediss://localhost:{redis_port}/0")),
            ("REDIS_USERNAME", "cache_app".to_owned()),
            ("REDIS_PASSWORD_FILE", s("secrets/redis_app_password")),
            ("REDIS_MONITOR_USERNAME", "cache_monitor".to_owned()),
            (
                "REDIS_MONITOR_PASSWORD_FILE",
                s("secrets/redis_monitor_password"),
            ),
            ("REDIS_TLS_CA_PATH", s("secrets/tls/ca.crt")),
            ("REDIS_TLS_CERT_PATH", s("secrets/tls/client.crt")),
            ("REDIS_TLS_KEY_PATH", s("secrets/tls/client.key")),
            (
                "REDIS_ENCRYPTION_KEYS_FILE",
                s("secrets/encryption_keyring"),
            ),
            ("API_KEY_FILE", s("secrets/api_key")),
            ("SEALCACHE_LISTEN", format!("127.0.0.1:{port}")),
            ("SEALCACHE_LOG_FORMAT", "json".to_owned()),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start sealcache-server")?;
    let pids = Pids {
        redis: redis.id(),
        server: server.id(),
        port,
    };
    std::fs::write(state.join("pids.json"), serde_json::to_vec_pretty(&pids)?)?;

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
    let pids: Pids = serde_json::from_slice(&text)?;
    let mut stopped = 0;
    for (pid, program) in [
        (pids.server, "sealcache-server"),
        (pids.redis, "redis-server"),
    ] {
        // A recycled pid runs something else: never signal it.
        if cmdline(pid).contains(program) {
            let status = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
            if status.success() {
                stopped += 1;
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while cmdline(pid).contains(program) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    std::fs::remove_file(&file)?;
    Ok(stopped)
}
