//! Test harness: real `redis-server` instances on free loopback ports.
//!
//! Variants: plain, password (`requirepass` through the config file), and TLS with client
//! certificates and an ACL file. Each server runs in its own temporary directory with no
//! persistence, and is killed when dropped. Secrets go through the config file and `REDISCLI_AUTH`,
//! never through a command line.
//!
//! [`cluster::RedisCluster`] runs a Redis Cluster of such servers (3 primaries, 3 replicas, TLS
//! everywhere, the ACL file config-gen renders for a cluster).
//!
//! [`otlp::receiver`] is a test OTLP/HTTP receiver that keeps what it is sent.
//!
//! `cargo xtask test` installs `redis-server` (Debian's, with TLS) when it is missing.

// The harness is test support: a server that cannot start is a failed test, so it panics with the
// server's log instead of returning errors every test would unwrap anyway.
#![allow(
    clippy::missing_panics_doc,
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod otlp;

pub use cluster::{ClusterOptions, NodeInfo, NodeRole, RedisCluster};
/// The signals [`send_signal`] sends (`Signal::HUP`, `Signal::STOP`, `Signal::CONT`, ...).
pub use rustix::process::Signal;

/// Sends `signal` to the process `pid` (a system call, no `kill` program).
///
/// # Errors
/// `pid` is no process id, or the kernel refused (no such process, not permitted).
pub fn send_signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("{pid} is not a process id")))?;
    rustix::process::kill_process(target, signal).map_err(std::io::Error::from)
}

/// TLS files for a server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate (verifies client certificates).
    pub ca: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Require client certificates (`tls-auth-clients yes`).
    pub require_client_certs: bool,
}

/// How to configure a server.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `aclfile` path.
    pub acl_file: Option<PathBuf>,
    /// `requirepass` (the password variant).
    pub password: Option<String>,
    /// TLS only (`port 0`, `tls-port`).
    pub tls: Option<TlsFiles>,
    /// Extra `directive value` lines.
    pub extra: Vec<String>,
}

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    options: RedisOptions,
}

/// Client credentials and certificates for [`RedisServer::cli`].
#[derive(Debug, Clone, Default)]
pub struct CliAuth {
    /// ACL user.
    pub user: Option<String>,
    /// Password (passed through `REDISCLI_AUTH`).
    pub password: Option<String>,
    /// CA to verify the server with (TLS).
    pub ca: Option<PathBuf>,
    /// Client certificate and key (TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl CliAuth {
    /// Adds these credentials to a `redis-cli` command: `--tls` and the certificates when `tls`,
    /// the user, and the password through `REDISCLI_AUTH` (never argv).
    pub fn apply(&self, cmd: &mut Command, tls: bool) {
        if tls {
            cmd.arg("--tls");
            if let Some(ca) = &self.ca {
                cmd.arg("--cacert").arg(ca);
            }
            if let Some((cert, key)) = &self.client_cert {
                cmd.arg("--cert").arg(cert).arg("--key").arg(key);
            }
        }
        if let Some(user) = &self.user {
            cmd.args(["--user", user]);
        }
        cmd.env_remove("REDISCLI_AUTH");
        if let Some(password) = &self.password {
            cmd.env("REDISCLI_AUTH", password);
        }
        cmd.arg("--no-auth-warning");
    }
}

/// A free TCP port on 127.0.0.1 (the listener is closed before returning).
#[must_use]
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

impl RedisServer {
    /// Starts a server; panics with the server's log when it does not come up within 10 s.
    #[must_use]
    pub fn start(options: RedisOptions) -> Self {
        Self::try_start(options).unwrap_or_else(|log| panic!("redis-server did not start:\n{log}"))
    }

    /// Starts a server (three free ports are tried: one can be taken before redis-server binds
    /// it); the last log when none came up. For a caller that has more to choose again on a
    /// failure (a cluster node's bus port), where [`RedisServer::start`] would panic.
    pub fn try_start(options: RedisOptions) -> Result<Self, String> {
        assert!(
            which("redis-server").is_some(),
            "redis-server is not installed: run `cargo xtask test` (installs it as root) or `apt-get install redis-server`"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            options,
        };
        let mut last_log = String::new();
        // A free port can be taken by someone else before redis-server binds it: try three.
        for _attempt in 0..3 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(log) => {
                    server.kill();
                    last_log = log;
                }
            }
        }
        Err(last_log)
    }

    fn config_text(&self) -> String {
        let dir = self.dir.path();
        let mut conf = vec![
            "bind 127.0.0.1".to_owned(),
            "protected-mode yes".to_owned(),
            "daemonize no".to_owned(),
            "save \"\"".to_owned(),
            "appendonly no".to_owned(),
            format!("dir {}", dir.display()),
            format!("logfile {}", dir.join("redis.log").display()),
        ];
        match &self.options.tls {
            Some(tls) => {
                conf.push("port 0".to_owned());
                conf.push(format!("tls-port {}", self.port));
                conf.push(format!("tls-cert-file {}", tls.cert.display()));
                conf.push(format!("tls-key-file {}", tls.key.display()));
                conf.push(format!("tls-ca-cert-file {}", tls.ca.display()));
                conf.push(format!(
                    "tls-auth-clients {}",
                    if tls.require_client_certs {
                        "yes"
                    } else {
                        "no"
                    }
                ));
                conf.push("tls-protocols \"TLSv1.2 TLSv1.3\"".to_owned());
            }
            None => conf.push(format!("port {}", self.port)),
        }
        if let Some(acl) = &self.options.acl_file {
            conf.push(format!("aclfile {}", acl.display()));
        }
        if let Some(password) = &self.options.password {
            conf.push(format!("requirepass {password}"));
        }
        conf.extend(self.options.extra.iter().cloned());
        conf.join("\n") + "\n"
    }

    fn spawn(&mut self) -> Result<(), String> {
        let conf = self.dir.path().join("redis.conf");
        std::fs::write(&conf, self.config_text()).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "redis-server exited with {status}:\n{}",
                    self.log()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
                && self.log().contains("Ready to accept")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server not ready after 10 s:\n{}",
            self.log()
        ))
    }

    /// The server's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// The port (TLS port for TLS servers).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT` or `rediss://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The process id, while the server runs (`None` once [`RedisServer::kill`]ed).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running (not killed, not exited).
    #[must_use]
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The server's working directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same configuration.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.spawn() {
            panic!("redis-server did not restart:\n{log}");
        }
    }

    /// Runs `redis-cli` against this server with `auth`, returning its output. The password goes
    /// through `REDISCLI_AUTH`, never argv.
    #[must_use]
    pub fn cli(&self, auth: &CliAuth, args: &[&str]) -> Output {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        auth.apply(&mut cmd, self.options.tls.is_some());
        cmd.args(args);
        cmd.stdin(Stdio::null());
        cmd.output()
            .expect("redis-cli (package redis-tools) must be installed")
    }

    /// Sends one inline command over a plain TCP connection and returns the first reply line
    /// (for plain servers; no client library needed).
    #[must_use]
    pub fn raw_command(&self, line: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A redis-rs client for a TLS server on `127.0.0.1:port` (name `localhost`), authenticating as
/// `user` with `password`, presenting `client_cert`/`client_key`, trusting only `ca`.
/// `CLIENT SETINFO` is not sent (the generated ACL does not allow it).
#[must_use]
pub fn tls_client(
    port: u16,
    user: &str,
    password: &str,
    ca: &Path,
    client_cert: &Path,
    client_key: &Path,
) -> redis::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let info =
        redis::IntoConnectionInfo::into_connection_info(format!("rediss://localhost:{port}/0"))
            .expect("URL");
    let settings = info
        .redis_settings()
        .clone()
        .set_username(user)
        .set_password(password)
        .set_skip_set_lib_name();
    redis::Client::build_with_tls(
        info.set_redis_settings(settings),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(client_cert).expect("client certificate"),
                client_key: std::fs::read(client_key).expect("client key"),
            }),
            root_cert: Some(std::fs::read(ca).expect("CA certificate")),
        },
    )
    .expect("TLS client")
}

/// stdout and stderr of a command as one string.
#[must_use]
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
