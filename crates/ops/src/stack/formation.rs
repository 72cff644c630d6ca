//! Forming a Redis Cluster from its nodes: `redis-cli --cluster create` as `cache_admin`, from
//! inside one node (compose) or on the host (local processes).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sealcache_config_gen::{SecretString, acl, layout};

use super::targets::{Redis, container_cli, local_cli, read_secret};
use crate::error::{OpsError, Result, StepExt as _};

/// `redis-cli` with TLS for `node`, reading commands (and the password) from its standard input.
fn cli(dir: &Path, node: &Redis) -> Command {
    match node {
        Redis::Local { port } => {
            let mut c = local_cli(dir, *port, true);
            c.env_remove("REDISCLI_AUTH");
            c
        }
        Redis::Container { id, .. } => container_cli(id, true),
        // Formation runs where `redis-cli` is (the host), never from inside a backend.
        Redis::Network { host, port } => {
            let mut c = local_cli(dir, *port, true);
            c.args(["-h", host]);
            c
        }
    }
}

/// Runs `redis-cli` with `extra` arguments on `node`, writing `input` (which holds a secret) to
/// its standard input; whether it succeeded, and its standard output and error.
fn run_cli(
    dir: &Path,
    node: &Redis,
    extra: &[String],
    input: &SecretString,
) -> Result<(bool, String)> {
    let mut child = cli(dir, node)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .step(|| format!("cannot run redis-cli for {node}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.expose_secret().as_bytes())
            .step(|| format!("cannot talk to redis-cli for {node}"))?;
    }
    let out = child
        .wait_with_output()
        .step(|| format!("redis-cli for {node} failed"))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// `redis-cli --cluster create ADDRESSES --cluster-replicas N` run on `entry` as `cache_admin`
/// (`--askpass`: the password on standard input, never on a command line); retried twice after
/// `CLUSTER RESET HARD` of every node.
///
/// # Errors
/// [`OpsError::Unhealthy`] with redis-cli's errors when the cluster is not formed;
/// [`OpsError::Io`] when the admin password cannot be read.
pub fn form_cluster(
    dir: &Path,
    entry: &Redis,
    addresses: &[String],
    replicas: usize,
) -> Result<()> {
    let admin = read_secret(dir, layout::ADMIN_PASSWORD)?;
    let password = SecretString::new(format!("{}\n", admin.expose_secret()));
    let mut args: Vec<String> = [
        "--user",
        acl::ADMIN_USER,
        "--askpass",
        "--cluster",
        "create",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(addresses.iter().cloned());
    args.extend([
        "--cluster-replicas".to_owned(),
        replicas.to_string(),
        "--cluster-yes".to_owned(),
    ]);
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            let reset = SecretString::new(format!(
                "AUTH {} {}\nCLUSTER RESET HARD\n",
                acl::ADMIN_USER,
                admin.expose_secret()
            ));
            for address in addresses {
                let (host, port) = address.rsplit_once(':').unwrap_or((address, "6379"));
                let to = ["-h", host, "-p", port].map(str::to_owned);
                let _ = run_cli(dir, entry, &to, &reset);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let (ok, text) = run_cli(dir, entry, &args, &password)?;
        if ok && text.contains("All 16384 slots covered") {
            return Ok(());
        }
        last = text;
    }
    Err(OpsError::Unhealthy {
        target: format!("the cluster of {}", dir.display()),
        detail: format!(
            "redis-cli --cluster create failed: {}",
            last.lines()
                .filter(|l| l.contains("ERR") || l.contains("Could not"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    })
}
