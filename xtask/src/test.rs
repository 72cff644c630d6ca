//! `cargo xtask test`: fmt, clippy, then every test of the workspace.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::progress::{cargo, step};
use crate::redis_install::{self, PROMTOOL, REDIS, REDIS_CLI};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (for a quick local loop; CI never skips).
    #[arg(long)]
    quick: bool,
    /// Run only these steps, in the usual order (for a developer re-running a failed step; CI
    /// runs every step). Repeat or separate with commas.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Step>,
}

/// The steps of `cargo xtask test`, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Step {
    /// `cargo fmt --check`.
    Fmt,
    /// clippy, warnings denied.
    Clippy,
    /// `cargo doc`, warnings denied.
    Doc,
    /// Each feature of each member alone.
    Features,
    /// `cargo test --workspace`.
    Workspace,
    /// The Kubernetes manifests, offline.
    K8s,
    /// The compose single-node stack.
    Stack,
    /// The local-process single-node stack.
    Local,
    /// The Python wheel and pytest.
    Python,
    /// The local-process Redis Cluster stack.
    ClusterLocal,
    /// The compose Redis Cluster stack.
    ClusterCompose,
    /// Three hosts cut apart.
    Partitions,
    /// The published crates from their `.crate` files.
    Package,
}

impl TestArgs {
    fn runs(&self, step: Step) -> bool {
        if !self.only.is_empty() {
            return self.only.contains(&step);
        }
        !(self.quick
            && matches!(
                step,
                Step::Fmt | Step::Clippy | Step::Features | Step::Doc | Step::Package
            ))
    }

    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        redis_install::ensure(&[REDIS, REDIS_CLI, PROMTOOL])?;
        if let Some(free) = crate::progress::free_bytes(&crate::progress::target_dir()) {
            println!(
                "ℹ  {:.1} GiB free for the build output ({}); a cold run uses about 12 GiB",
                free as f64 / f64::from(1 << 30),
                crate::progress::target_dir().display()
            );
        }
        if self.runs(Step::Fmt) {
            step(
                "cargo fmt --check",
                cargo().args(["fmt", "--all", "--", "--check"]),
            )?;
        }
        if self.runs(Step::Clippy) {
            step(
                "cargo clippy -D warnings",
                cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )?;
        }
        // The docs right after clippy: a broken intra-doc link (twice the cause of a red CI run
        // at the very end) fails in the first minutes, not after the stacks.
        if self.runs(Step::Doc) {
            step(
                "cargo doc (warnings denied)",
                cargo()
                    .args([
                        "doc",
                        "--workspace",
                        "--all-features",
                        "--no-deps",
                        "--locked",
                    ])
                    .env("RUSTDOCFLAGS", "-D warnings"),
            )?;
        }
        if self.runs(Step::Features) {
            // Each feature of each workspace member alone (a gate that only compiles together with
            // another feature is a bug users hit; STYLE.md rule 3), derived from `cargo metadata`:
            // the rule is in `features.rs`.
            crate::features::check_each()?;
        }
        if self.runs(Step::Workspace) {
            crate::progress::reclaim_disk("the workspace tests");
            step(
                "cargo test --workspace",
                cargo().args(["test", "--workspace", "--all-features", "--locked"]),
            )?;
        }
        if self.runs(Step::K8s) {
            // The Kubernetes manifests, offline (k8s_check.rs).
            crate::k8s_check::test_manifests()?;
        }
        if self.runs(Step::Stack) {
            stack_verification()?;
        }
        if self.runs(Step::Local) {
            local_verification()?;
        }
        if self.runs(Step::Python) {
            crate::progress::reclaim_disk("the Python wheel");
            // The Python package: its wheel, pytest on real Redis and the real server (python.rs).
            crate::python::test()?;
        }
        // The Redis Cluster stacks (cluster_stack.rs): local processes everywhere, compose when a
        // Docker engine answers (reusing the images the single-node step built).
        if self.runs(Step::ClusterLocal) {
            crate::stack_checks::cluster_local()?;
        }
        if self.runs(Step::ClusterCompose) {
            cluster_compose()?;
        }
        if self.runs(Step::Partitions) {
            // Three hosts (network namespaces) cut apart four ways, every answer judged (partitions/).
            crate::partitions::test()?;
        }
        if self.runs(Step::Package) {
            crate::progress::reclaim_disk("the package tests");
            // The published crates from their `.crate` files alone (package.rs).
            crate::package::test_packages()?;
        }
        if !self.only.is_empty() {
            println!("✅ the chosen steps passed (not every step ran: --only)");
            return Ok(ExitCode::SUCCESS);
        }
        println!("✅ all checks and tests passed");
        Ok(ExitCode::SUCCESS)
    }
}

/// The hardened stack, brought up and verified against the real Docker engine whenever one answers
/// (a separate project, port and subnet, removed afterwards, even on failure).
fn stack_verification() -> anyhow::Result<()> {
    if !crate::docker::engine_answers() {
        println!(
            "⏭  no Docker engine answers: the compose stack verification is skipped on this machine"
        );
        return Ok(());
    }
    println!("▶ compose stack: secure-up, verify, rotate under load, down (Docker engine answers)");
    let dir = crate::progress::target_dir().join("stack-test");
    let _ = std::fs::remove_dir_all(&dir);
    let port = crate::local::free_port().context("cannot find a free local port for the API")?;
    let args = crate::deploy::UpArgs::for_test(dir.clone(), port);
    let project = args.project().to_owned();
    let _ = crate::deploy::DownArgs::project(&project).run();
    let outcome = args.run(true);
    // Key and password rotation under load, as on the local stack (rotate/load.rs).
    let mut rotation = match &outcome {
        Ok(code) if *code == ExitCode::SUCCESS => crate::rotate::verify_under_load(
            &dir,
            &[port],
            crate::rotate::Rotator::InBackend {
                project: &project,
                port,
            },
        ),
        _ => Vec::new(),
    };
    // Then the crash-and-restart proof, after the rotation's reloads: signalled with
    // `docker kill --signal`, Docker no longer restarted a crashed backend (moby/moby#41302;
    // restarted=false 90 s after the crash), so reloads now signal from inside the container.
    rotation.extend(crate::stack_checks::with_crash_and_restart(
        Vec::new(),
        &outcome,
        &project,
        "backend",
        &dir,
        port,
        &|| {
            let mut again = crate::deploy::UpArgs::for_test(dir.clone(), port);
            again.set_project(&project);
            again.run(true)
        },
    ));
    // Then the operator command alone, on the same directory: up from its embedded compose
    // files with the images just used, verified, and down.
    let images = crate::stack_checks::project_images(&project);
    let _ = crate::deploy::DownArgs::project(&project).run();
    if let Some(images) =
        images.filter(|_| matches!(&outcome, Ok(code) if *code == ExitCode::SUCCESS))
    {
        rotation.push(crate::stack_checks::operator_command_up_and_down(
            &dir, &project, port, &images,
        ));
        let _ = crate::deploy::DownArgs::project(&project).run();
    }
    let _ = std::fs::remove_dir_all(&dir);
    crate::verify::print_checks(&rotation);
    match outcome {
        Ok(code) if code == ExitCode::SUCCESS && rotation.iter().all(|c| c.passed) => {
            println!("✅ compose stack verified, keys and passwords rotated under load");
            Ok(())
        }
        Ok(code) if code == ExitCode::SUCCESS => {
            anyhow::bail!("the compose stack's rotation under load failed (see the ❌ lines above)")
        }
        Ok(_) => anyhow::bail!("the compose stack verification failed (see the ❌ lines above)"),
        Err(err) => Err(err.context("the compose stack could not be brought up")),
    }
}

/// `secure-up --local` (local processes, no Docker): brought up, verified through its API, and
/// stopped by pid; runs on every machine (redis-server is installed above).
fn local_verification() -> anyhow::Result<()> {
    println!(
        "▶ local stack: secure-up --local, verify, rotate under load, interrupt every stage, down"
    );
    let dir = crate::progress::target_dir().join("local-test");
    let _ = crate::local::stop(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let info = sealcache_env_detect::EnvironmentDetector::default()
        .detect(sealcache_env_detect::FeatureContext::SecurityEnforcement);
    let config = sealcache_config_gen::SecureConfigGenerator::generate_for_environment(
        &info,
        Some(sealcache_env_detect::Environment::Production),
    )
    .context("cannot generate secrets")?;
    sealcache_config_gen::write_deployment(
        &config,
        &dir,
        &sealcache_config_gen::DeploymentOptions::default(),
    )?;
    let port = crate::local::free_port().context("cannot find a free local port for the API")?;
    // Then key and password rotation under load (add → promote → retire --force): no failed
    // request, no `unknown_key_id`; then every stage interrupted after each of its steps (status
    // names the command that completes it, the next stage is refused and changes no file, the
    // stage run again completes it); then, with redis-server killed, a stage refuses before
    // changing a file (rotate/).
    let outcome = crate::local::start(&dir, port).map(|port| {
        let mut checks = crate::verify::verify_printed(&dir, true);
        checks.push(crate::stack_checks::operator_command_verifies(&dir));
        checks.extend(crate::rotate::verify_under_load(
            &dir,
            &[port],
            crate::rotate::Rotator::Here,
        ));
        checks.extend(crate::rotate::verify_interruptions(&dir, port));
        checks.push(crate::rotate::refused_with_redis_down(&dir));
        checks
    });
    let stopped = crate::local::stop(&dir);
    // Then the operator command's own local bring-up of the same directory, and its down.
    let checks = outcome.map(|mut checks| {
        checks.push(crate::stack_checks::operator_command_up_local(&dir, port));
        checks
    });
    let _ = crate::local::stop(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let checks = checks?;
    crate::verify::print_checks(&checks);
    // The last check killed redis-server: down stops the server alone.
    if stopped? != 1 {
        anyhow::bail!("down did not stop exactly the server left running");
    }
    if checks.iter().all(|c| c.passed) && checks.len() >= 18 {
        println!("✅ local stack verified and stopped");
        Ok(())
    } else {
        anyhow::bail!("the local stack verification failed")
    }
}

/// `secure-up --cluster` against the real Docker engine when one answers (its own project, ports
/// and subnet; the images the single-node step built are reused), its status read, then removed.
pub(crate) fn cluster_compose() -> anyhow::Result<()> {
    if !crate::docker::engine_answers() {
        println!(
            "⏭  no Docker engine answers: the compose cluster stack verification is skipped on this machine"
        );
        return Ok(());
    }
    println!("▶ compose cluster stack: secure-up --cluster, verify, status, down");
    let started = std::time::Instant::now();
    let dir = crate::progress::target_dir().join("cluster-stack-test");
    let project = "sealcache-cluster-test".to_owned();
    let _ = crate::deploy::DownArgs::project(&project).run();
    let _ = std::fs::remove_dir_all(&dir);
    let opts = crate::cluster_stack::UpOptions {
        environment: Some(sealcache_env_detect::Environment::Production),
        dir: Some(dir.clone()),
        images: crate::images::ImageMode::Auto,
        port: crate::stack_checks::free_port_pair()?,
        project: project.clone(),
        local: false,
        json: false,
        internal_subnet: Some("172.30.238.0/24".to_owned()),
    };
    let outcome = crate::cluster_stack::secure_up(&opts);
    let mut checks = vec![crate::stack_checks::status_check(&dir, false)];
    // Keys and passwords (cache_replication's and masterauth too) rotated under load through both
    // backend containers and on all six node containers, as on the local cluster stack.
    if matches!(outcome, Ok(code) if code == ExitCode::SUCCESS) {
        checks.extend(crate::rotate::verify_under_load(
            &dir,
            &[opts.port, opts.port + 1],
            crate::rotate::Rotator::Here,
        ));
    }
    // The crash-and-restart proof belongs to the tests, never to secure-up; it runs after the
    // rotation, whose reloads must leave the restart policy working (no `docker kill --signal`).
    let checks = crate::stack_checks::with_crash_and_restart(
        checks,
        &outcome,
        &project,
        "backend-1",
        &dir,
        opts.port,
        &|| unreachable_for_a_cluster(),
    );
    let passed = checks.iter().all(|c| c.passed);
    if !passed {
        print_backend_warnings(&project, &["backend-1", "backend-2"]);
    }
    let _ = crate::deploy::DownArgs::project(&project).run();
    let _ = std::fs::remove_dir_all(&dir);
    crate::verify::print_checks(&checks);
    match outcome {
        Ok(code) if code == ExitCode::SUCCESS && passed => {
            println!(
                "✅ compose cluster stack verified and removed in {:.0}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Ok(_) => {
            anyhow::bail!("the compose cluster stack verification failed (see the ❌ lines above)")
        }
        Err(err) => Err(err.context("the compose cluster stack could not be brought up")),
    }
}

/// What the backends `services` of compose project `project` logged at WARN and ERROR (their
/// last 30 records each), printed when a check failed: the server's side of a failed request, read
/// before the project is removed. Only each record's time, level, target and its `message`,
/// `type`, `error` and `reason` fields are shown (never `detail`, which quotes what a Redis client sent).
fn print_backend_warnings(project: &str, services: &[&str]) {
    for service in services {
        let ids = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=com.docker.compose.project={project}"))
            .arg("--filter")
            .arg(format!("label=com.docker.compose.service={service}"))
            .output();
        let Ok(ids) = ids else { continue };
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let Ok(logs) = std::process::Command::new("docker")
                .args(["logs", id])
                .output()
            else {
                continue;
            };
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
            let lines: Vec<String> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| matches!(r["level"].as_str(), Some("WARN" | "ERROR")))
                .map(|r| {
                    let field = |name: &str| {
                        r["fields"][name]
                            .as_str()
                            .map(|v| format!(" {name}={v}"))
                            .unwrap_or_default()
                    };
                    format!(
                        "{} {} {}{}{}{}{}",
                        r["timestamp"].as_str().unwrap_or("-"),
                        r["level"].as_str().unwrap_or("-"),
                        r["target"].as_str().unwrap_or("-"),
                        field("message"),
                        field("type"),
                        field("error"),
                        field("reason"),
                    )
                })
                .collect();
            println!(
                "ℹ️  {service} logged {} warning/error line(s){}",
                lines.len(),
                if lines.len() > 30 {
                    "; the last 30:"
                } else {
                    ":"
                }
            );
            for line in &lines[lines.len().saturating_sub(30)..] {
                println!("    {line}");
            }
        }
    }
}

/// `secure-up` again is checked on the single-node stack only.
fn unreachable_for_a_cluster() -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-up again is checked on the single-node stack only")
}

#[cfg(test)]
mod tests {
    /// The compose cluster stack with its rotation under load, as `cargo xtask test` runs it:
    /// `cargo test -p xtask --bin xtask -- --ignored compose_cluster_stack_with_rotation`.
    #[test]
    #[ignore = "builds images and starts the compose cluster stack; part of `cargo xtask test`"]
    fn compose_cluster_stack_with_rotation() {
        super::cluster_compose().unwrap();
    }
}
