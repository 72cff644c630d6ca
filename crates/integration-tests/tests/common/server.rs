//! Shared fixtures of the server's tests and load benchmark: a generated production deployment, a
//! TLS + mTLS + ACL redis-server running it, and the server binary started from it.
//!
//! The binary is the `sealcache-server` package's own `[[bin]]`, built by cargo on first use (see
//! [`server_binary`]): a test of another package has no `CARGO_BIN_EXE_sealcache-server`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sealcache_config_gen::{DeploymentOptions, SecureConfigGenerator, layout, write_deployment};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};
use sealcache_testkit::{RedisOptions, RedisServer, TlsFiles, free_port};

/// A generated production deployment and the redis-server running it.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub redis: RedisServer,
}

impl Stack {
    pub fn start() -> Self {
        let info = EnvironmentDetector::new(MapSource::new()).detect(FeatureContext::Default);
        let config =
            SecureConfigGenerator::generate_for_environment(&info, Some(Environment::Production))
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_deployment(&config, dir.path(), &DeploymentOptions::default()).unwrap();
        let d = dir.path();
        let redis = RedisServer::start(RedisOptions {
            acl_file: Some(d.join(layout::USERS_ACL)),
            tls: Some(TlsFiles {
                ca: d.join(layout::CA_CERT),
                cert: d.join(layout::SERVER_CERT),
                key: d.join(layout::SERVER_KEY),
                require_client_certs: true,
            }),
            ..RedisOptions::default()
        });
        Self { dir, redis }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }

    pub fn secret(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap()
    }

    /// The server's variables for this deployment (host paths), listening on `listen`.
    pub fn server_env(&self, redis_url: &str, listen: &str) -> Vec<(String, String)> {
        [
            ("ENVIRONMENT", "production".to_owned()),
            ("REDIS_URL", redis_url.to_owned()),
            ("REDIS_USERNAME", "cache_app".to_owned()),
            ("REDIS_PASSWORD_FILE", self.file(layout::APP_PASSWORD)),
            ("REDIS_TLS_CA_PATH", self.file(layout::CA_CERT)),
            ("REDIS_TLS_CERT_PATH", self.file(layout::CLIENT_CERT)),
            ("REDIS_TLS_KEY_PATH", self.file(layout::CLIENT_KEY)),
            (
                "REDIS_ENCRYPTION_KEYS_FILE",
                self.file(layout::ENCRYPTION_KEYRING),
            ),
            ("API_KEY_FILE", self.file(layout::API_KEY)),
            ("SEALCACHE_LISTEN", listen.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The server's variables for this deployment's keyring and API key on the Redis Cluster
    /// `cluster` (its seeds, app password, CA and client certificate), listening on `listen`.
    pub fn cluster_server_env(
        &self,
        cluster: &sealcache_testkit::RedisCluster,
        listen: &str,
    ) -> Vec<(String, String)> {
        let password = self.path().join("cluster_app_password");
        std::fs::write(&password, cluster.app_password()).unwrap();
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut vars: Vec<(String, String)> = self
            .server_env(&self.redis_url(), listen)
            .into_iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "REDIS_URL"
                        | "REDIS_PASSWORD_FILE"
                        | "REDIS_TLS_CA_PATH"
                        | "REDIS_TLS_CERT_PATH"
                        | "REDIS_TLS_KEY_PATH"
                )
            })
            .collect();
        vars.extend([
            (
                "REDIS_CLUSTER_NODES".to_owned(),
                cluster.seed_urls().join(","),
            ),
            ("REDIS_PASSWORD_FILE".to_owned(), path(password)),
            ("REDIS_TLS_CA_PATH".to_owned(), path(cluster.ca_cert())),
            (
                "REDIS_TLS_CERT_PATH".to_owned(),
                path(cluster.client_cert()),
            ),
            ("REDIS_TLS_KEY_PATH".to_owned(), path(cluster.client_key())),
        ]);
        vars
    }

    /// The URL of this stack's redis-server.
    pub fn redis_url(&self) -> String {
        format!("rediss://localhost:{}/0", self.redis.port())
    }

    /// A connection as `cache_admin` (reads and writes bytes behind the server's back).
    pub fn admin(&self) -> redis::Connection {
        let d = self.dir.path();
        sealcache_testkit::tls_client(
            self.redis.port(),
            "cache_admin",
            &self.secret(layout::ADMIN_PASSWORD),
            &d.join(layout::CA_CERT),
            &d.join(layout::CLIENT_CERT),
            &d.join(layout::CLIENT_KEY),
        )
        .get_connection()
        .unwrap()
    }
}

/// The server binary, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `sealcache-server` binary, built once per test process by `cargo build --bin
/// sealcache-server --manifest-path crates/server/Cargo.toml` with this test's profile (cargo finds
/// it up to date in a second when it is), so a test never runs a stale binary.
pub fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/Cargo.toml");
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .args(["build", "--quiet", "--bin", "sealcache-server"])
            .args([
                "--message-format",
                "json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest);
        // `<target>/<profile dir>/deps/<this test>`: `debug` is the dev profile, `release` the
        // release (and bench) profile, any other directory a custom profile of that name.
        let exe = std::env::current_exe().unwrap();
        match exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
        {
            Some("debug") | None => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(profile) => {
                cargo.args(["--profile", profile]);
            }
        }
        let out = cargo.stderr(Stdio::inherit()).output().unwrap();
        assert!(
            out.status.success(),
            "cargo could not build sealcache-server"
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| {
                m["reason"] == "compiler-artifact" && m["target"]["name"] == "sealcache-server"
            })
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo built no sealcache-server executable")
    })
}

/// Starts the server with exactly `vars` (plus PATH) and waits until `/health` answers 200.
///
/// A port from `free_port` is only free when it is looked at: before the server binds it, an
/// outgoing connection of this or another test may take it as its ephemeral port. A server that
/// exits at start because its address is in use is started again on another port (up to three
/// times); any other early exit fails with the server's output.
pub fn start_server(vars: &[(String, String)], log: Option<&Path>) -> Server {
    let mut vars = vars.to_vec();
    for attempt in 0..3 {
        match try_start_server(&vars, log) {
            Ok(server) => return server,
            Err(output) if attempt < 2 && output.contains("in use") => {
                if let Some((_, listen)) = vars.iter_mut().find(|(k, _)| k == "SEALCACHE_LISTEN")
                    && let Some((host, _)) = listen.rsplit_once(':')
                {
                    *listen = format!("{host}:{}", free_port());
                }
            }
            Err(output) => panic!("{output}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// One start: the server once healthy, or why it exited (its status and output).
fn try_start_server(vars: &[(String, String)], log: Option<&Path>) -> Result<Server, String> {
    let port = vars
        .iter()
        .find(|(k, _)| k == "SEALCACHE_LISTEN")
        .and_then(|(_, v)| v.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(free_port);
    // Without a log file, the output still goes to a file, read when the server exits early.
    let scratch = tempfile::NamedTempFile::new().unwrap();
    let err_path = log.map_or_else(|| scratch.path().to_path_buf(), Path::to_path_buf);
    let stdout = match log {
        Some(path) => Stdio::from(std::fs::File::create(path.with_extension("out")).unwrap()),
        None => Stdio::null(),
    };
    let stderr = Stdio::from(std::fs::File::create(&err_path).unwrap());
    let mut child = Command::new(server_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    // Each probe is short: something else holding the port may accept and never answer.
    let probe = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    loop {
        if probe
            .get(format!("{base}/health"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let output = std::fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!("server exited with {status}:\n{output}"));
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server { child, base, port })
}

/// The shared benchmark corpus.
pub fn corpus() -> Vec<serde_json::Value> {
    let path: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/corpus.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
