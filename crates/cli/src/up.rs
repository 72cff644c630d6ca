//! `sealcache up [--dir DIR] [--project P] [--port N] [--development] [--observability]
//! [--redis-image I] [--backend-image I] [--internal-subnet S] [--json]`, and
//! `sealcache up --local [--dir DIR] [--port N] [--server-binary PATH] [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use sealcache_ops::SecurityLevel;
use sealcache_ops::up::{self, UpOptions};
use sealcache_ops::verify::{self, VerifyOptions};

use crate::render::{Printer, checks_report};

/// Options of `up`: a compose stack (one node, or a cluster for a directory generated with
/// `--cluster`) from a generated deployment directory (`config generate`),
/// with images that exist on this host (`cargo xtask secure-up` builds them from a checkout);
/// with `--local`, the same topology as local processes (`redis-server`, `redis-cli` for a
/// cluster, and a `sealcache-server` binary), without Docker.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// The deployment directory [default: $SEALCACHE_DIR, else deploy/generated].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The compose project name.
    #[arg(long, default_value = up::DEFAULT_PROJECT)]
    project: String,
    /// The API's host port (127.0.0.1 only).
    #[arg(long, default_value_t = up::DEFAULT_PORT)]
    port: u16,
    /// The development stack (plaintext Redis; a directory generated for development).
    #[arg(long)]
    development: bool,
    /// Also the OpenTelemetry collector, Prometheus and Grafana (their images must exist).
    #[arg(long)]
    observability: bool,
    /// The Redis image [default: $SEALCACHE_REDIS_IMAGE, else redis:7.2.5-bookworm].
    #[arg(long)]
    redis_image: Option<String>,
    /// The backend image [default: $SEALCACHE_BACKEND_IMAGE, else sealcache-server:local].
    #[arg(long)]
    backend_image: Option<String>,
    /// The internal network's subnet, a free /24 [default: the compose file's, 172.30.231.0/24
    /// for one node, 172.30.232.0/24 for a cluster].
    #[arg(long)]
    internal_subnet: Option<String>,
    /// Run the topology as local processes instead of containers: redis-server on loopback
    /// TLS ports and sealcache-server, with the directory's files (no Docker needed).
    #[arg(long, conflicts_with_all = ["project", "development", "observability", "redis_image", "backend_image", "internal_subnet"])]
    local: bool,
    /// The sealcache-server binary of --local [default: the one beside `sealcache`, else on
    /// PATH].
    #[arg(long, requires = "local")]
    server_binary: Option<PathBuf>,
    /// Print the verification's checks as JSON (progress lines are not printed).
    #[arg(long)]
    json: bool,
}

impl UpArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(crate::default_dir);
        let mut printer = Printer::new(self.json);
        let (environment, cluster) = up::deployment_of(&dir)?;
        if self.local && environment == sealcache_ops::Environment::Development {
            anyhow::bail!(
                "{} was generated for development: `up --local` runs the hardened configuration only (generate the directory for another environment, or use `sealcache up --development` with Docker)",
                dir.display()
            );
        }
        if self.development != (environment == sealcache_ops::Environment::Development) {
            anyhow::bail!(
                "{} was generated for {environment}: {}",
                dir.display(),
                if self.development {
                    "--development runs only a directory generated for development"
                } else {
                    "a development directory is brought up only with --development (plaintext Redis)"
                }
            );
        }
        let verdict = sealcache_ops::config::validate_dir_report(&dir, environment, &mut printer);
        if verdict != sealcache_ops::config::Verdict::Acceptable {
            return Ok(ExitCode::from(verdict.exit_code()));
        }
        if self.local {
            let binary = self.server_binary.unwrap_or_else(up::default_server_binary);
            let options = up::LocalOptions::new(self.port, binary);
            let port = if cluster {
                up::local_cluster(&dir, &options, &mut printer)?
                    .backends
                    .first()
                    .map_or(self.port, |b| b.port)
            } else {
                up::local(&dir, &options, &mut printer)?.port
            };
            let checks = verify::verify(
                &dir,
                &VerifyOptions::new(SecurityLevel::ProductionReady),
                &mut printer,
            )?;
            return checks_report(&checks, self.json, &mut printer, |passed| {
                if passed {
                    format!(
                        "Ready: http://127.0.0.1:{port} (local processes; `sealcache down` stops them)"
                    )
                } else {
                    "the verification failed: the processes are left running for inspection"
                        .to_owned()
                }
            });
        }
        let options = UpOptions::new(self.project, self.port)
            .development(self.development)
            .observability(self.observability)
            .images(self.redis_image, self.backend_image)
            .internal_subnet(self.internal_subnet);
        if cluster {
            // Six nodes formed into a cluster, then the backends on --port, --port + 1, ...
            if self.development {
                anyhow::bail!("a cluster deployment has no development stack");
            }
            up::compose_cluster(&dir, &options, &mut printer)?;
        } else {
            up::compose(&dir, &options, &mut printer)?;
        }
        let want = if self.development {
            SecurityLevel::Development
        } else {
            SecurityLevel::ProductionReady
        };
        let checks = verify::verify(&dir, &VerifyOptions::new(want), &mut printer)?;
        // The port the stack answers on (a stack that already ran keeps its own).
        let port = sealcache_ops::stack::ComposeRecord::read(&dir)?
            .and_then(|r| r.backends.first().copied())
            .unwrap_or(options.port);
        checks_report(&checks, self.json, &mut printer, |passed| {
            if passed {
                format!("Ready: http://127.0.0.1:{port}")
            } else {
                "the verification failed: the stack is left running for inspection".to_owned()
            }
        })
    }
}
