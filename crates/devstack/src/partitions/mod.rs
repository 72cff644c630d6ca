//! `cargo xtask partitions [--json]`: the distributed stack on three hosts (network namespaces),
//! cut apart in four ways while verifying clients on every host record every answer.
//!
//! * `net`: the hosts, sealed off (checked with `ip route get`; refuses to run otherwise), and
//!   the faults (DROP rules inside a host).
//! * `stack`: a generated cluster deployment, two Redis Cluster nodes per host (a primary and
//!   another shard's replica), one `sealcache-server` per host.
//! * `agent`: the verifying client (`cargo xtask partitions-agent`, run inside a host).
//! * `scenarios`: `isolate_host`, `isolate_bus`, `pause_primary`,
//!   `kill_backend_during_invalidation`.
//! * `judge`: wrong answers, stale answers beyond the coherence bound, lost acknowledged writes,
//!   the longest call.
//!
//! Everything runs as root (namespaces, iptables). Every process is a child of this one and is
//! killed by pid, and every namespace deleted, when the harness is dropped: on success, on an
//! error, on a panic. The guarantee tested is written in docs/deployment.md ("Partitions: what
//! holds"); the figures are in docs/benchmarks.md.

mod agent;
mod judge;
mod net;
mod scenarios;
mod stack;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub use agent::AgentArgs;
use agent::Record;
use net::{HOSTS, Net};
use stack::{API_PORT, Procs, Stack};

/// Options of `cargo xtask partitions`.
#[derive(Debug, clap::Args)]
pub struct PartitionsArgs {
    /// Print a JSON array, one object per scenario (progress goes to standard error).
    #[arg(long)]
    json: bool,
    /// Run only this scenario (repeatable; default: all four).
    #[arg(long = "scenario", value_parser = scenarios::NAMES)]
    only: Vec<String>,
    /// Run this `sealcache-server` binary instead of building the release one (to compare builds).
    #[arg(long, hide = true)]
    server: Option<PathBuf>,
}

/// Prints a progress line: to standard error in `--json` mode (standard output is the JSON).
macro_rules! say {
    ($json:expr, $($arg:tt)*) => {
        if $json { eprintln!($($arg)*) } else { println!($($arg)*) }
    };
}
pub(crate) use say;

/// The running harness. Field order is drop order: processes first, then the namespaces.
#[derive(Debug)]
pub(crate) struct Harness {
    pub(crate) procs: Procs,
    pub(crate) net: Net,
    pub(crate) stack: Stack,
    /// A copy of this xtask binary: the verifying clients run it inside the hosts.
    agent: PathBuf,
    pub(crate) json: bool,
}

impl PartitionsArgs {
    /// Runs the partition harness (`cargo xtask partitions`).
    ///
    /// # Errors
    /// A host, the stack or a scenario that cannot be set up.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let started = Instant::now();
        let json = self.json;
        if !crate::progress::is_root() {
            bail!(
                "cargo xtask partitions needs root (network namespaces, iptables): run it as root"
            );
        }
        for program in [
            "ip",
            "iptables",
            "redis-server",
            "redis-cli",
            "timeout",
            "kill",
        ] {
            if !crate::progress::on_path(program) {
                bail!(
                    "{program} is not installed: apt-get install iproute2 iptables redis-server redis-tools coreutils procps"
                );
            }
        }
        let server = match self.server {
            Some(path) => path,
            None => build_server(json)?,
        };
        let up = Instant::now();
        let root = crate::progress::target_dir().join("partitions");
        say!(
            json,
            "▶ three hosts: network namespaces on one bridge, sealed off"
        );
        // The namespaces first: their guard removes an aborted run's leftovers (processes inside
        // them included) before anything else starts.
        let net = Net::create()?;
        let stack = Stack::generate(&root, &server)?;
        // The verifying clients run a copy of this binary: the shared target directory's
        // `xtask` may be rebuilt while the scenarios run (in `cargo xtask test` the workspace
        // tests and clippy rebuild it before this step, which unlinks the file this process was
        // started from), so the copy is taken from the running image, which outlives its path.
        let agent = {
            let copy = stack.state.join("xtask-agent");
            copy_running_image(&copy)?;
            copy
        };
        let mut harness = Harness {
            procs: Procs::default(),
            net,
            stack,
            agent,
            json,
        };
        say!(
            json,
            "✅ hosts {} (10.213.7.0/24, no default route, 192.0.2.1 unreachable in every namespace)",
            (0..HOSTS).map(net::host_ip).collect::<Vec<_>>().join(", ")
        );
        harness.start()?;
        say!(
            json,
            "✅ stack up in {:.1}s: 6 TLS nodes (each host a primary and another shard's replica), 3 backends",
            up.elapsed().as_secs_f64()
        );
        let mut outcomes = Vec::new();
        for name in scenarios::NAMES {
            if !self.only.is_empty() && !self.only.iter().any(|o| o == name) {
                continue;
            }
            say!(json, "▶ {name}");
            let outcome =
                scenarios::run(&mut harness, name).with_context(|| format!("scenario {name}"))?;
            outcome.print(json);
            outcomes.push(outcome);
        }
        drop(harness);
        let passed = outcomes.iter().all(scenarios::Outcome::passed);
        if json {
            let array: Vec<scenarios::Summary> =
                outcomes.iter().map(scenarios::Outcome::json).collect();
            println!("{}", serde_json::to_string_pretty(&array)?);
        } else if passed {
            println!(
                "✅ partitions: every scenario held ({:.0}s)",
                started.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "❌ partitions: a scenario did not hold ({:.0}s)",
                started.elapsed().as_secs_f64()
            );
        }
        if json {
            eprintln!("partitions took {:.0}s", started.elapsed().as_secs_f64());
        }
        Ok(if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// The step of `cargo xtask test`: every scenario must hold. Needs root (CI runs as root); skipped
/// with a note otherwise.
pub fn test() -> anyhow::Result<()> {
    if !crate::progress::is_root() {
        println!("⏭  not root: the partition scenarios (network namespaces) are skipped");
        return Ok(());
    }
    println!("▶ partitions: three hosts cut apart four ways (cargo xtask partitions)");
    let args = PartitionsArgs {
        json: false,
        only: Vec::new(),
        server: None,
    };
    if args.run()? == ExitCode::SUCCESS {
        Ok(())
    } else {
        bail!("a partition scenario did not hold (see the ❌ lines above)")
    }
}

/// The release build every stack shares ([`crate::local::RELEASE_BUILD`]: built alone, the server
/// was a second release tree, 5 minutes cold), its output on standard error; the binary.
fn build_server(json: bool) -> anyhow::Result<PathBuf> {
    say!(
        json,
        "▶ cargo build --release -p sealcache-server -p sealcache-cli"
    );
    let status = crate::progress::cargo()
        .args(crate::local::RELEASE_BUILD)
        .stdout(Stdio::null())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p sealcache-server -p sealcache-cli failed");
    }
    Ok(crate::progress::target_dir().join("release/sealcache-server"))
}

impl Harness {
    /// Forms the cluster and starts the backends, waiting until each serves its L1.
    fn start(&mut self) -> anyhow::Result<()> {
        self.stack.start_cluster(&mut self.procs)?;
        for host in 0..HOSTS {
            self.stack.start_backend(&mut self.procs, host)?;
        }
        for host in 0..HOSTS {
            self.wait_backend(host, Duration::from_secs(60))?;
        }
        Ok(())
    }

    /// `partitions-agent` inside host `host`.
    pub(crate) fn agent(&self, host: usize) -> std::process::Command {
        let mut cmd = Net::exec(host, &self.agent);
        cmd.arg("partitions-agent");
        cmd
    }

    /// One call from inside host `host` to its backend: the record and the answer's body.
    pub(crate) fn call(
        &self,
        host: usize,
        method: &str,
        path: &str,
        body: Option<&str>,
        invalidates: Option<&str>,
    ) -> anyhow::Result<(Record, String)> {
        let mut cmd = self.call_command(host, method, path, body, invalidates);
        let text = net::run(&mut cmd)?;
        parse_call(&text)
    }

    pub(crate) fn call_command(
        &self,
        host: usize,
        method: &str,
        path: &str,
        body: Option<&str>,
        invalidates: Option<&str>,
    ) -> std::process::Command {
        let mut cmd = self.agent(host);
        cmd.args(["call", "--host", &host.to_string()])
            .args(["--port", &API_PORT.to_string()])
            .arg("--api-key-file")
            .arg(self.stack.api_key_file())
            .args(["--method", method, "--path", path]);
        if let Some(b) = body {
            cmd.args(["--body", b]);
        }
        if let Some(op) = invalidates {
            cmd.args(["--invalidates", op]);
        }
        cmd
    }

    /// The backend of `host` as its security status reports it: (Redis reachable, L1 served,
    /// every node's `cluster_state` ok).
    pub(crate) fn backend_state(&self, host: usize) -> (bool, bool, bool) {
        let health = self
            .call(host, "GET", "/health", None, None)
            .is_ok_and(|(r, body)| r.status == 200 && body.contains("connected"));
        let status = self
            .call(host, "GET", "/internal/cache/security-status", None, None)
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .unwrap_or_default();
        (
            health,
            status["l1_coherence"]["subscribed"] == true,
            status["cluster"]["cluster_state"] == "ok",
        )
    }

    /// Waits until host `host`'s backend reaches Redis, serves its L1 and sees the cluster ok.
    pub(crate) fn wait_backend(&self, host: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.backend_state(host);
            if state == (true, true, true) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the backend of host {} is not ready after {timeout:?} (reachable, L1, cluster ok: {state:?}); its log is {}",
                    host + 1,
                    self.stack.backend_log(host).display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The record and body `partitions-agent call` printed.
pub(crate) fn parse_call(text: &str) -> anyhow::Result<(Record, String)> {
    let mut lines = text.lines();
    let record: Record = serde_json::from_str(lines.next().unwrap_or_default())
        .context("partitions-agent call printed no record")?;
    Ok((record, lines.next().unwrap_or_default().to_owned()))
}

/// The running executable's image: readable while the process lives, even after the file it was
/// started from has been replaced or removed (`current_exe` then names a path ending in
/// ` (deleted)`).
const RUNNING_IMAGE: &str = "/proc/self/exe";

/// Copies this process's own executable to `dest` and makes it executable.
fn copy_running_image(dest: &std::path::Path) -> anyhow::Result<()> {
    std::fs::copy(RUNNING_IMAGE, dest).with_context(|| {
        format!(
            "cannot copy {RUNNING_IMAGE} to {} for the clients",
            dest.display()
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod running_image_tests {
    use std::process::Command;

    /// Set in the child the test starts; the child removes its own file first.
    const CHILD: &str = "XTASK_TEST_DELETED_SELF_COPY_TO";

    /// The failure CI hit: the workspace tests rebuilt `target/debug/xtask` while `cargo xtask
    /// test` ran, and copying the path `current_exe` names failed. The child here runs from a
    /// file it deletes before copying itself.
    #[test]
    fn copies_itself_after_its_file_is_gone() {
        if let Some(dest) = std::env::var_os(CHILD) {
            let me = std::env::current_exe().unwrap();
            std::fs::remove_file(&me).unwrap();
            assert!(
                std::fs::metadata(&me).is_err(),
                "the child's file is still there"
            );
            super::copy_running_image(std::path::Path::new(&dest)).unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("xtask-child");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        let dest = dir.path().join("copy");
        let status = Command::new(&exe)
            .args([
                "--exact",
                "partitions::running_image_tests::copies_itself_after_its_file_is_gone",
                "--test-threads=1",
            ])
            .env(CHILD, &dest)
            .status()
            .unwrap();
        assert!(status.success(), "child failed: {status}");
        assert!(!exe.exists(), "the child did not remove its own file");
        let copied = std::fs::metadata(&dest).unwrap();
        let original = std::fs::metadata(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(copied.len(), original.len());
    }
}
