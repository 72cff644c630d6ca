//! Verification of a running stack: `sealcache_ops::verify` (every hardening item of
//! docs/architecture.md §6, observed, once for every stack), and the checks only `cargo xtask
//! test` makes (the CLI from the image, a crash and restart, `secure-up` again changes nothing).

use sealcache_api::SecurityLevel;
use std::path::Path;

use crate::docker::{docker, inspect};

pub(crate) use sealcache_ops::verify::{Check, check, end_to_end};

/// Prints one `✅`/`❌` line per check.
pub(crate) fn print_checks(checks: &[Check]) {
    sealcache_ops::verify::check_lines(checks, &mut crate::progress::Printer);
}

/// Verifies the stack that runs from `dir` (`sealcache_ops::verify::verify`): every backend at
/// `production_ready` when `secure`, else at `development`. A stack that cannot be found is one
/// failed check.
pub(crate) fn verify(dir: &Path, secure: bool) -> Vec<Check> {
    let want = if secure {
        SecurityLevel::ProductionReady
    } else {
        SecurityLevel::Development
    };
    let options = sealcache_ops::verify::VerifyOptions::new(want);
    sealcache_ops::verify::verify(dir, &options, &mut crate::progress::Printer)
        .unwrap_or_else(|e| vec![check("stack_running", false, e.to_string())])
}

/// The checks of `cargo xtask test` that `secure-up` never makes: when `up` succeeded, the
/// `sealcache` operator command runs from the backend container of compose project `project`
/// (service `service`), then the crash-and-restart proof (`secure-up` does not harm what it
/// deploys): the server process is killed and must be replaced by the `unless-stopped` policy
/// and serve again; `checks` come back with both appended.
pub(crate) fn with_crash_and_restart(
    mut checks: Vec<Check>,
    up: &anyhow::Result<std::process::ExitCode>,
    project: &str,
    service: &str,
    dir: &Path,
    port: u16,
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
        checks.push(secure_up_again_changes_nothing(project, dir, port));
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
pub(crate) fn crash_and_restart(container: &str, port: u16, key: &str) -> Check {
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

/// `secure-up` run again on the healthy single-node stack of compose project `project` from
/// `dir`: it succeeds, and every container of the project is the same one, started at the same
/// time (nothing recreated or restarted).
fn secure_up_again_changes_nothing(project: &str, dir: &Path, port: u16) -> Check {
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
    let mut args = crate::deploy::UpArgs::for_test(dir.to_path_buf(), port);
    args.set_project(project);
    let again = args.run(true);
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
                crate::verify::short_id(id),
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

/// The first 12 characters of a container id.
pub(crate) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The deployment's API key.
pub(crate) fn api_key(dir: &Path) -> String {
    sealcache_ops::runtime::api_key(dir)
}

/// The operator command `sealcache` (the release build) on the running stack of `dir`: `verify
/// --json` passes every check (exit 0) and `status --json` reports `production_ready`, with
/// `redis_nodes` for a cluster deployment; the same library the checks above used, through the
/// binary an operator runs.
pub(crate) fn operator_command_verifies(dir: &Path) -> Check {
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

/// The images of compose project `project`'s `redis` and `backend` containers.
pub(crate) fn project_images(project: &str) -> Option<(String, String)> {
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
pub(crate) fn operator_command_up_and_down(
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
            up && failed.is_empty() && items >= 10 && down && removed >= 2 && !left,
            format!(
                "`sealcache up --json`: {} of {items} checks passed{}; `sealcache down --json`: {removed} container(s) of {project} removed{}",
                items - failed.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" (failed: {})", failed.join(", "))
                },
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
