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
}

impl TestArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        redis_install::ensure(&[REDIS, REDIS_CLI, PROMTOOL])?;
        if !self.quick {
            step(
                "cargo fmt --check",
                cargo().args(["fmt", "--all", "--", "--check"]),
            )?;
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
        if !self.quick {
            // Each feature of each workspace member alone (a gate that only compiles together with
            // another feature is a bug users hit; STYLE.md rule 3), derived from `cargo metadata`:
            // the rule is in `features.rs`.
            crate::features::check_each()?;
        }
        step(
            "cargo test --workspace",
            cargo().args(["test", "--workspace", "--all-features", "--locked"]),
        )?;
        stack_verification()?;
        local_verification()?;
        // The Redis Cluster stacks (cluster_stack.rs): local processes everywhere, compose when a
        // Docker engine answers (reusing the images the single-node step built).
        crate::cluster_stack::test_local()?;
        crate::cluster_stack::test_compose()?;
        if !self.quick {
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
            // The published crates from their `.crate` files alone (package.rs).
            crate::package::test_packages()?;
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
    // Then key and password rotation under load, as on the local stack (rotate.rs).
    let rotation = match &outcome {
        Ok(code) if *code == ExitCode::SUCCESS => crate::rotate::verify_under_load(&dir, &[port]),
        _ => Vec::new(),
    };
    let _ = crate::deploy::DownArgs::project(&project).run();
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
    println!("▶ local stack: secure-up --local, verify, rotate under load, down");
    let dir = crate::progress::target_dir().join("local-test");
    let _ = crate::local::down(&dir);
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
    // request, no `unknown_key_id` (rotate.rs).
    let outcome = crate::local::up(&dir, port).map(|port| {
        let mut checks = crate::local::verify(&dir, port);
        checks.extend(crate::rotate::verify_under_load(&dir, &[port]));
        checks
    });
    let stopped = crate::local::down(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let checks = outcome?;
    crate::verify::print_checks(&checks);
    if stopped? != 2 {
        anyhow::bail!("down did not stop exactly the two processes it started");
    }
    if checks.iter().all(|c| c.passed) && checks.len() >= 6 {
        println!("✅ local stack verified and stopped");
        Ok(())
    } else {
        anyhow::bail!("the local stack verification failed")
    }
}
