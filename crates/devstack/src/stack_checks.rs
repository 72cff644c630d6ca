//! The stacks' checks that only `cargo xtask test` makes, on stacks of their own: the operator
//! command (`sealcache up|verify|status|down`) on a running stack, the CLI from the backend
//! image, a crash and restart, `secure-up` again changes nothing, and the cluster stacks' runs
//! (rotation under load, a node down). Nothing but `test` imports this module.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use sealcache_env_detect::Environment;

use sealcache_ops::runtime::cmdline;
use sealcache_ops::stack::Redis;

use crate::docker::{docker, inspect};
use crate::verify::{Check, api_key, check, end_to_end, print_checks};

/// The checks of `cargo xtask test` that `secure-up` never makes: when `up` succeeded, the
/// `sealcache` operator command runs from the backend container of compose project `project`
/// (service `service`), then the crash-and-restart proof (`secure-up` does not harm what it
/// deploys): the server process is killed and must be replaced by the `unless-stopped` policy
/// and serve again; `checks` come back with both appended. For a single-node stack,
/// `secure_up_again` (`secure-up` on the same directory and project) must change nothing.
pub fn with_crash_and_restart(
    mut checks: Vec<Check>,
    up: &anyhow::Result<std::process::ExitCode>,
    project: &str,
    service: &str,
    dir: &Path,
    port: u16,
    secure_up_again: &dyn Fn() -> anyhow::Result<std::process::ExitCode>,
) -> Vec<Check> {
    if !matches!(up, Ok(code) if *code == std::process::ExitCode::SUCCESS) {
        return checks;
    }
    let filters = [
        format!("label=com.docker.compose.project={project}"),
        format!("label=com.docker.compose.service={service}"),
    ];
    let found = docker(&["ps", "-q", "--filter", &filters[0], "--filter", &filters[1]]);
    // A single-node stack: `secure-up` again on the healthy stack changes nothing.
    if matches!(
        sealcache_config_gen::cluster_dir::cluster_record(dir),
        Ok(None)
    ) {
        checks.push(secure_up_again_changes_nothing(project, secure_up_again));
    }
    if let Ok(id) = found.as_deref().map(str::trim)
        && dir.join(sealcache_config_gen::layout::CA_KEY).exists()
        && matches!(
            sealcache_config_gen::cluster_dir::cluster_record(dir),
            Ok(None)
        )
    {
        checks.push(ca_key_hidden_in_backend(id));
    }
    checks.push(match found.as_deref().map(str::trim) {
        Ok(id) if !id.is_empty() && !id.contains(char::is_whitespace) => cli_in_image(id),
        other => check(
            "sealcache_cli_in_image",
            false,
            format!("no single {service} container in project {project}: {other:?}"),
        ),
    });
    checks.push(match found.as_deref().map(str::trim) {
        Ok(id) if !id.is_empty() && !id.contains(char::is_whitespace) => {
            crash_and_restart(id, port, &api_key(dir))
        }
        other => check(
            "backend_restarts_after_crash",
            false,
            format!("no single {service} container in project {project}: {other:?}"),
        ),
    });
    checks
}

/// Kills the backend's server process from the host (a crash, not `docker stop`/`docker kill`,
/// which the restart policy deliberately ignores) and waits until the restart policy has brought
/// up a new one that serves the API again.
pub fn crash_and_restart(container: &str, port: u16, key: &str) -> Check {
    let outcome = (|| -> anyhow::Result<String> {
        let before = inspect(container)?;
        let restarts = before["RestartCount"].as_i64().unwrap_or(0);
        let init = before["State"]["Pid"].as_i64().unwrap_or(0);
        anyhow::ensure!(init > 0, "the backend has no process");
        // With `init: true` the server is the init process's child.
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default();
        let server = children
            .split_whitespace()
            .next()
            .map_or(init.to_string(), str::to_owned);
        let server: u32 = server
            .parse()
            .map_err(|_| anyhow::anyhow!("docker top named {server:?} as the server"))?;
        crate::local::signal(server, rustix::process::Signal::KILL)
            .map_err(|e| e.context(format!("kill -KILL {server}")))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let now = inspect(container)?;
            let restarted = now["RestartCount"].as_i64().unwrap_or(0) > restarts;
            if restarted && end_to_end(port, key).passed {
                return Ok(format!(
                    "server process killed; restarted by the `unless-stopped` policy (restart count {}) and serving again",
                    now["RestartCount"]
                ));
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "not serving again 90 s after the crash (restarted={restarted})"
            );
        }
    })();
    match outcome {
        Ok(detail) => check("backend_restarts_after_crash", true, detail),
        Err(e) => check("backend_restarts_after_crash", false, format!("{e:#}")),
    }
}

/// `secure-up` run again (`again`) on the healthy single-node stack of compose project
/// `project`: it succeeds, and every container of the project is the same one, started at the
/// same time (nothing recreated or restarted).
fn secure_up_again_changes_nothing(
    project: &str,
    again: &dyn Fn() -> anyhow::Result<std::process::ExitCode>,
) -> Check {
    let label = format!("label=com.docker.compose.project={project}");
    let started = || -> Option<Vec<String>> {
        let ids = docker(&["ps", "-q", "--filter", &label]).ok()?;
        let mut out: Vec<String> = ids
            .split_whitespace()
            .map(|id| {
                inspect(id).map_or_else(
                    |_| format!("{id}: not inspectable"),
                    |v| format!("{} {}", v["Id"], v["State"]["StartedAt"]),
                )
            })
            .collect();
        out.sort();
        Some(out)
    };
    let before = started();
    let again = again();
    let after = started();
    let same = before.is_some() && before == after;
    check(
        "secure_up_again_changes_nothing",
        matches!(again, Ok(ref code) if *code == std::process::ExitCode::SUCCESS) && same,
        format!(
            "secure-up again: {}; {} container(s) {}",
            match &again {
                Ok(code) if *code == std::process::ExitCode::SUCCESS => "verified".to_owned(),
                Ok(code) => format!("exit {code:?}"),
                Err(e) => format!("{e:#}"),
            },
            before.as_ref().map_or(0, Vec::len),
            if same {
                "unchanged (same ids, same start times)"
            } else {
                "changed"
            }
        ),
    )
}

/// The `sealcache` operator command, run inside the backend container `id` as its own user:
/// `config generate --dry-run` plans a production deployment in the container's tmpfs and
/// validates it (exit 0), with no file left behind and no secret printed.
fn cli_in_image(id: &str) -> Check {
    let out = docker(&[
        "exec",
        id,
        "sealcache",
        "config",
        "generate",
        "--environment",
        "production",
        "--out",
        "/tmp/sealcache-cli-check",
        "--dry-run",
    ]);
    let left = docker(&["exec", id, "ls", "/tmp/sealcache-cli-check"]).is_ok();
    match out {
        Ok(text) if text.contains("nothing was written") && !left => check(
            "sealcache_cli_in_image",
            true,
            format!(
                "`docker exec {} sealcache config generate --dry-run`: {} files planned, nothing written",
                short_id(id),
                text.matches("would write").count()
            ),
        ),
        Ok(text) => check(
            "sealcache_cli_in_image",
            false,
            format!(
                "unexpected output (left a directory: {left}): {}",
                text.lines().last().unwrap_or("")
            ),
        ),
        Err(e) => check("sealcache_cli_in_image", false, format!("{e:#}")),
    }
}

/// The deployment directory is mounted in the single-node backend for a rotation run inside it,
/// confined: its CA key is not there (`ca/` under the mount is an empty tmpfs the container's
/// user cannot even list), and the directory itself cannot be written, so nothing the host runs
/// as root (`compose/`, `.env`, the records) can be replaced from inside; its secrets can be
/// read (and the rotation under load proves them writable).
fn ca_key_hidden_in_backend(id: &str) -> Check {
    let mount = sealcache_ops::stack::CONTAINER_DEPLOYMENT_DIR;
    let listed = docker(&["exec", id, "ls", &format!("{mount}/ca")]);
    let read = docker(&["exec", id, "cat", &format!("{mount}/ca/ca.key")]);
    let planted = docker(&["exec", id, "touch", &format!("{mount}/planted")]);
    let swapped = docker(&[
        "exec",
        id,
        "mv",
        &format!("{mount}/compose"),
        &format!("{mount}/compose.moved"),
    ]);
    let secrets_readable = docker(&["exec", id, "ls", &format!("{mount}/secrets/backend")]);
    check(
        "ca_key_hidden_in_backend",
        listed.is_err()
            && read.is_err()
            && planted.is_err()
            && swapped.is_err()
            && secrets_readable.is_ok(),
        format!(
            "{mount}/ca listed: {}, ca.key read: {}, a file planted in {mount}: {}, {mount}/compose moved: {}, {mount}/secrets/backend listed: {}",
            listed.is_ok(),
            read.is_ok(),
            planted.is_ok(),
            swapped.is_ok(),
            secrets_readable.is_ok()
        ),
    )
}

/// The first 12 characters of a container id.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The operator command `sealcache` (the release build) on the running stack of `dir`: `verify
/// --json` passes every check (exit 0) and `status --json` reports `production_ready`, with
/// `redis_nodes` for a cluster deployment; the same library the checks above used, through the
/// binary an operator runs.
pub fn operator_command_verifies(dir: &Path) -> Check {
    let run = |args: &[&str]| run_operator_command(dir, args);
    let outcome = (|| -> anyhow::Result<(bool, String)> {
        let (verified, checks) = run(&["verify"])?;
        let (items, failed) = failed_checks(&checks);
        let (status_ok, status) = run(&["status"])?;
        let cluster = sealcache_config_gen::cluster_dir::cluster_record(dir)?.is_some();
        let nodes = status["redis_nodes"].as_array().map_or(0, Vec::len);
        let passed = verified
            && failed.is_empty()
            && items >= 5
            && status_ok
            && status["verdict"] == "production_ready"
            && (!cluster || nodes >= 6);
        Ok((
            passed,
            format!(
                "`sealcache verify --json`: {} of {items} checks passed{}; `sealcache status --json`: verdict {}{}",
                items - failed.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" (failed: {})", failed.join(", "))
                },
                status["verdict"],
                if cluster {
                    format!(", {nodes} redis_nodes")
                } else {
                    String::new()
                }
            ),
        ))
    })();
    match outcome {
        Ok((passed, detail)) => check("sealcache_verify_and_status", passed, detail),
        Err(e) => check("sealcache_verify_and_status", false, format!("{e:#}")),
    }
}

/// The operator command's own local bring-up on the host, after the stack of `dir` was stopped:
/// `sealcache up --local --json` (the release `sealcache-server` beside it) brings the directory
/// up as local processes and its verification passes; `sealcache down --json` stops every one of
/// them, and none is left running.
pub fn operator_command_up_local(dir: &Path, port: u16) -> Check {
    let outcome = (|| -> anyhow::Result<(bool, String)> {
        let server = crate::progress::target_dir().join("release/sealcache-server");
        let port = port.to_string();
        let server = server.to_string_lossy();
        let (up, checks) = run_operator_command(
            dir,
            &["up", "--local", "--port", &port, "--server-binary", &server],
        )?;
        let (items, failed) = failed_checks(&checks);
        let (down, _) = run_operator_command(dir, &["down"])?;
        let left =
            crate::local::running(dir).is_some() || crate::cluster_local::running(dir).is_some();
        let passed = up && failed.is_empty() && items >= 5 && down && !left;
        Ok((
            passed,
            format!(
                "`sealcache up --local --json`: exit {}, {} of {items} checks passed{}; `sealcache down`: exit {}, {}",
                if up { 0 } else { 1 },
                items - failed.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" (failed: {})", failed.join(", "))
                },
                if down { 0 } else { 1 },
                if left {
                    "processes left running"
                } else {
                    "nothing left running"
                }
            ),
        ))
    })();
    match outcome {
        Ok((passed, detail)) => check("sealcache_up_local_and_down", passed, detail),
        Err(e) => check("sealcache_up_local_and_down", false, format!("{e:#}")),
    }
}

/// The images of compose project `project`'s `redis` and `backend` containers.
pub fn project_images(project: &str) -> Option<(String, String)> {
    let image = |service: &str| -> Option<String> {
        let filters = [
            format!("label=com.docker.compose.project={project}"),
            format!("label=com.docker.compose.service={service}"),
        ];
        let id = docker(&["ps", "-q", "--filter", &filters[0], "--filter", &filters[1]]).ok()?;
        let v = inspect(id.split_whitespace().next()?).ok()?;
        v["Config"]["Image"].as_str().map(str::to_owned)
    };
    Some((image("redis")?, image("backend")?))
}

/// The operator command brings the compose stack of `dir` up and down again, as an operator
/// without a checkout does: `sealcache up --json` (the embedded compose files, the given
/// `images`) verifies every check, then `sealcache down --json` removes the project.
pub fn operator_command_up_and_down(
    dir: &Path,
    project: &str,
    port: u16,
    images: &(String, String),
) -> Check {
    let run = |args: &[&str]| run_operator_command(dir, args);
    let port = port.to_string();
    let outcome = (|| -> anyhow::Result<(bool, String)> {
        let (up, checks) = run(&[
            "up",
            "--project",
            project,
            "--port",
            &port,
            "--redis-image",
            &images.0,
            "--backend-image",
            &images.1,
        ])?;
        let (items, failed) = failed_checks(&checks);
        // The same directory under a second project is refused (one directory, one stack).
        let other = format!("{project}-second");
        let second = run_operator_command(dir, &["up", "--project", &other, "--port", "1"]);
        let refused = match &second {
            Ok((ok, _)) => !ok,
            Err(e) => format!("{e:#}").contains("already runs as compose project"),
        };
        let (down, reports) = run(&["down"])?;
        let removed = reports[0]["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["project"] == project)
            .and_then(|p| p["containers"].as_u64())
            .unwrap_or(0);
        let left = project_images(project).is_some();
        Ok((
            up && failed.is_empty() && items >= 10 && refused && down && removed >= 2 && !left,
            format!(
                "`sealcache up --json`: {} of {items} checks passed{}; a second project on the directory {}; `sealcache down --json`: {removed} container(s) of {project} removed{}",
                items - failed.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" (failed: {})", failed.join(", "))
                },
                if refused { "refused" } else { "NOT refused" },
                if left {
                    ", but the stack still runs"
                } else {
                    ""
                }
            ),
        ))
    })();
    match outcome {
        Ok((passed, detail)) => check("sealcache_up_and_down", passed, detail),
        Err(e) => check("sealcache_up_and_down", false, format!("{e:#}")),
    }
}

/// Runs the release `sealcache ARGS --dir DIR --json`: whether it succeeded, and its JSON.
fn run_operator_command(dir: &Path, args: &[&str]) -> anyhow::Result<(bool, serde_json::Value)> {
    let binary = crate::progress::target_dir().join("release/sealcache");
    let out = std::process::Command::new(&binary)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", binary.display()))?;
    let json = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow::anyhow!(
            "`sealcache {}` printed no JSON ({e}): {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    Ok((out.status.success(), json))
}

/// How many checks a `--json` verification printed, and the names of those that failed.
fn failed_checks(checks: &serde_json::Value) -> (usize, Vec<&str>) {
    let all = checks.as_array().map_or(&[][..], Vec::as_slice);
    let failed = all
        .iter()
        .filter(|c| c["passed"] != true)
        .filter_map(|c| c["name"].as_str())
        .collect();
    (all.len(), failed)
}
/// A port `p` such that `p` and `p + 1` are free on 127.0.0.1 (the two backends' API ports).
pub fn free_port_pair() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free local port")?
            .port();
        if first < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", first + 1)).is_ok() {
            return Ok(first);
        }
    }
    bail!("cannot find two consecutive free local ports")
}

/// What `status --json` adds for the running stack of `dir`: two backends and every node with a
/// role (and a pid for local processes).
pub fn status_check(dir: &Path, local: bool) -> Check {
    match sealcache_ops::status::status(dir, None) {
        Ok(status) => {
            let backends = status.backends.clone().unwrap_or_default();
            let nodes = status
                .redis_nodes
                .as_ref()
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            let primaries = nodes.iter().filter(|n| n["role"] == "primary").count();
            let replicas = nodes.iter().filter(|n| n["role"] == "replica").count();
            let pids = nodes
                .iter()
                .all(|n| n["pid"].as_u64().is_some_and(|p| p > 0));
            check(
                "status_reports_cluster",
                backends.len() >= 2 && primaries == 3 && replicas == 3 && (pids || !local),
                format!(
                    "backends {backends:?}, redis_nodes: {primaries} primaries, {replicas} replicas{}",
                    if local && pids {
                        ", each with its pid"
                    } else {
                        ""
                    }
                ),
            )
        }
        Err(e) => check("status_reports_cluster", false, format!("{e:#}")),
    }
}

/// `secure-up --local --cluster`, verified, its status read, and stopped by pid: runs on every
/// machine (redis-server and redis-cli are installed by `cargo xtask test`).
pub fn cluster_local() -> anyhow::Result<()> {
    cluster_local_in(&crate::progress::target_dir().join("local-cluster-test"))
}

/// [`cluster_local`] with the deployment directory `dir` (removed afterwards).
fn cluster_local_in(dir: &Path) -> anyhow::Result<()> {
    println!(
        "▶ local cluster stack: secure-up --local --cluster, verify, status, rotate under load, down"
    );
    let started = Instant::now();
    let dir = dir.to_path_buf();
    let _ = crate::local::stop(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let mut generate = sealcache_ops::config::GenerateOptions::new(&dir);
    generate.environment = Some(Environment::Production);
    generate.cluster = true;
    anyhow::ensure!(
        sealcache_ops::config::generate(&generate, &mut crate::progress::Printer)?
            == sealcache_ops::config::Verdict::Acceptable,
        "the generated cluster deployment {} is not acceptable",
        dir.display()
    );
    let port = free_port_pair()?;
    let outcome = crate::cluster_local::start(&dir, port).map(|ports| {
        let mut checks = crate::verify::verify_printed(&dir, true);
        checks.push(status_check(&dir, true));
        checks.push(operator_command_verifies(&dir));
        // Then keys and passwords (cache_replication's and masterauth too) rotated under load on
        // both backends and all six nodes, as on the single-node stacks (rotate/load.rs).
        checks.extend(crate::rotation::verify_under_load(
            &dir,
            &ports,
            crate::rotation::Rotator::Here,
        ));
        checks.push(replicas_reauthenticate(&dir));
        checks.push(rotation_refused_with_a_node_down(&dir));
        checks
    });
    let stopped = crate::local::stop(&dir);
    // Then the operator command's own local bring-up of the same directory, and its down.
    let checks = outcome.map(|mut checks| {
        checks.push(operator_command_up_local(&dir, port));
        checks
    });
    let _ = crate::local::stop(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let checks = checks?;
    print_checks(&checks);
    let stopped = stopped?;
    ensure!(
        stopped == 7,
        "down stopped {stopped} processes, not the 7 left running (6 nodes, 2 backends, one node killed by the last check)"
    );
    ensure!(
        checks.iter().all(|c| c.passed) && checks.len() >= 10,
        "the local cluster stack verification failed (see the ❌ lines above)"
    );
    println!(
        "✅ local cluster stack verified and stopped ({stopped} processes) in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// With one node killed (SIGKILL, the last recorded one), a rotation stage must refuse before it
/// changes a file (no directory ahead of the running servers), and the stack must still count
/// as running (status shows the dead node; `down` stops the rest).
pub fn rotation_refused_with_a_node_down(dir: &Path) -> Check {
    let name = "rotation_refused_with_a_node_down";
    let Some(cluster) = crate::cluster_local::running(dir) else {
        return crate::verify::check(name, false, "the recorded processes do not run");
    };
    let Some(victim) = cluster.nodes.last() else {
        return crate::verify::check(name, false, "no node recorded");
    };
    let _ = sealcache_ops::runtime::terminate(victim.pid, "redis-server", Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmdline(victim.pid).contains("redis-server") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let acl = dir.join(sealcache_config_gen::layout::USERS_ACL);
    let before = std::fs::read(&acl).ok();
    let stage = crate::rotation::run_stage(
        dir,
        sealcache_config_gen::rotation::Stage::Add,
        &sealcache_config_gen::rotation::RotateOptions::default(),
        true,
    );
    let unchanged = std::fs::read(&acl).ok() == before && before.is_some();
    let still_running = crate::cluster_local::running(dir).is_some();
    crate::verify::check(
        name,
        stage.is_err() && unchanged && still_running,
        format!(
            "node :{} killed; stage add {}; users.acl {}; stack {}",
            victim.port,
            if stage.is_err() { "refused" } else { "ran" },
            if unchanged { "unchanged" } else { "changed" },
            if still_running { "still found" } else { "lost" }
        ),
    )
}

/// After a password rotation: every replica drops its link to its primary (`CLIENT KILL TYPE
/// master`) and must link up again, which it does with the `masterauth` it holds now, against
/// the users.acl the rotation left (only the new password after retire).
pub fn replicas_reauthenticate(dir: &Path) -> Check {
    let name = "replicas_reauthenticate_after_rotation";
    let Some(cluster) = crate::cluster_local::running(dir) else {
        return crate::verify::check(name, false, "the recorded processes do not run");
    };
    let replicas: Vec<Redis> = crate::cluster_local::views(dir, &cluster)
        .iter()
        .zip(&cluster.nodes)
        .filter(|(v, _)| v.role == "replica")
        .map(|(_, n)| Redis::Local { port: n.port })
        .collect();
    let dropped = replicas
        .iter()
        .filter(|n| {
            sealcache_ops::stack::admin(dir, n, "CLIENT KILL TYPE master")
                .is_ok_and(|r| r.trim() == "1")
        })
        .count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let linked = crate::cluster_local::views(dir, &cluster)
            .iter()
            .filter(|v| v.role == "replica" && v.link_up)
            .count();
        let passed = dropped == replicas.len() && !replicas.is_empty() && linked == dropped;
        if passed || Instant::now() >= deadline {
            return crate::verify::check(
                name,
                passed,
                format!(
                    "{dropped}/{} replicas dropped their link to the primary; {linked} linked up again as {} with the rotated masterauth",
                    replicas.len(),
                    sealcache_config_gen::acl::REPLICATION_USER
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every node's role, `cluster_state` and replica link, asked of the node itself.
#[cfg(test)]
mod tests {
    /// What `cargo xtask test` runs on the local cluster stack, in a directory of its own:
    /// `cargo test -p sealcache-devstack -- --ignored local_cluster_stack_with_rotation`
    /// (ignored by default: it builds the release server and starts 6 redis-server).
    #[test]
    #[ignore = "starts the local cluster stack (release build, redis-server); part of `cargo xtask test`"]
    fn local_cluster_stack_with_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        super::cluster_local_in(&tmp.path().join("local-cluster")).unwrap();
    }
}
