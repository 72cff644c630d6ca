//! `cargo xtask test`'s interruption checks on the local stack: each stage stopped after each of
//! its steps (as a crash, Ctrl-C or a lost connection would stop it), then `status`, the next
//! stage and the interrupted stage run again; and a stack whose Redis died refuses to rotate.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use sealcache_config_gen::layout;
use sealcache_config_gen::rotation::{self, RotateOptions, Stage};

use super::load::Load;
use super::{Step, run_stage, run_stage_until};
use crate::verify::{Check, check};

/// The interruption points, three rotations of three stages: every stage stops after its intent,
/// after its files, after Redis took `users.acl` (before any backend was signalled), and `retire`
/// also after every backend confirmed but before the record says so.
const POINTS: [[(Stage, Step); 3]; 3] = [
    [
        (Stage::Add, Step::IntentRecorded),
        (Stage::Promote, Step::IntentRecorded),
        (Stage::Retire, Step::FilesWritten),
    ],
    [
        (Stage::Add, Step::FilesWritten),
        (Stage::Promote, Step::FilesWritten),
        (Stage::Retire, Step::RedisAclApplied),
    ],
    [
        (Stage::Add, Step::RedisAclApplied),
        (Stage::Promote, Step::RedisAclApplied),
        (Stage::Retire, Step::BackendsConfirmed),
    ],
];

fn next(stage: Stage) -> Stage {
    match stage {
        Stage::Add => Stage::Promote,
        Stage::Promote => Stage::Retire,
        Stage::Retire => Stage::Add,
    }
}

/// Every file a stage may change: `secrets/` and the record (not the processes' logs).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(at) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let (Ok(rel), Ok(bytes)) = (path.strip_prefix(root), std::fs::read(&path)) {
                out.insert(rel.to_string_lossy().into_owned(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &dir.join(layout::SECRETS_DIR), &mut out);
    if let Ok(bytes) = std::fs::read(dir.join(layout::ROTATION_FILE)) {
        out.insert(layout::ROTATION_FILE.to_owned(), bytes);
    }
    out
}

/// `stage` stopped after `step`; then `status` must report the disagreement and name the command
/// that completes it, the next stage must be refused with that command and change no file, the
/// stack must serve, and `stage` run again must complete it (everything agrees after).
fn interruption(dir: &Path, port: u16, stage: Stage, step: Step) -> anyhow::Result<String> {
    let forced = RotateOptions {
        force: true,
        ..RotateOptions::default()
    };
    let api_key = crate::verify::api_key(dir);
    run_stage_until(dir, stage, &forced, true, Some(step))?;
    let command = rotation::stage_command(&std::fs::canonicalize(dir)?, stage);

    let status = sealcache_ops::status::status(dir, Some(port))?;
    let rotation = status.rotation.as_ref();
    ensure!(
        status.verdict == sealcache_ops::status::ROTATION_INCOMPLETE
            && rotation.is_some_and(|r| !r.agrees),
        "status did not report the interrupted stage: verdict {}, rotation {:?}",
        status.verdict,
        rotation
    );
    ensure!(
        rotation.and_then(|r| r.next_command.as_deref()) == Some(command.as_str())
            && rotation
                .and_then(|r| r.in_progress.as_ref())
                .is_some_and(|p| p.stage == stage),
        "status named {:?} (in progress: {:?}), not `{command}`",
        rotation.and_then(|r| r.next_command.as_deref()),
        rotation.and_then(|r| r.in_progress.as_ref())
    );

    let before = snapshot(dir);
    let refused = run_stage(dir, next(stage), &forced, true)
        .err()
        .with_context(|| format!("stage {} ran", next(stage).as_str()))?;
    let refused = format!("{refused:#}");
    ensure!(
        refused.contains(&command),
        "stage {} was refused without naming `{command}`: {refused}",
        next(stage).as_str()
    );
    ensure!(
        snapshot(dir) == before,
        "the refused stage {} changed a file",
        next(stage).as_str()
    );
    let served = crate::verify::end_to_end(port, &api_key);
    ensure!(served.passed, "the stack does not serve: {}", served.detail);

    run_stage(dir, stage, &forced, true).context("running the interrupted stage again")?;
    let report = super::report(dir)?.context("the directory holds no deployment")?;
    ensure!(
        report.agrees,
        "after running {} again: {:?} {:?}",
        stage.as_str(),
        report.in_progress,
        report.problems()
    );
    let served = crate::verify::end_to_end(port, &api_key);
    ensure!(served.passed, "the stack does not serve: {}", served.detail);
    Ok(format!(
        "{} stopped after {step:?}: status said `--stage {}`, {} refused with it and changed no file, run again it completed",
        stage.as_str(),
        stage.as_str(),
        next(stage).as_str()
    ))
}

/// Every interruption point (`POINTS`) on the running single-node local stack of `dir` (API on
/// `port`; its rotation record idle), under store/lookup load: no request may fail throughout.
pub fn verify_interruptions(dir: &Path, port: u16) -> Vec<Check> {
    let started = Instant::now();
    let api_key = crate::verify::api_key(dir);
    let load = Load::start(&[port], &api_key, 1);
    let mut checks = Vec::new();
    'cycles: for cycle in POINTS {
        for (stage, step) in cycle {
            match interruption(dir, port, stage, step) {
                Ok(detail) => {
                    checks.push(check("rotation_interrupted_and_completed", true, detail));
                }
                Err(e) => {
                    checks.push(check(
                        "rotation_interrupted_and_completed",
                        false,
                        format!("{} stopped after {step:?}: {e:#}", stage.as_str()),
                    ));
                    break 'cycles;
                }
            }
        }
    }
    let (requests, failed, _) = load.finish();
    checks.push(check(
        "rotation_interrupted_stack_serves",
        failed.is_empty() && requests > 0,
        format!(
            "{requests} store+lookup pairs during {} interrupted stages ({:.0} s), {} failed{}",
            checks.len(),
            started.elapsed().as_secs_f64(),
            failed.len(),
            failed
                .first()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        ),
    ));
    checks
}

/// The local stack of `dir` with its redis-server killed: a stage must refuse before any file
/// changes (not rotate the files and report "nothing to reload"), and status must show it.
pub fn refused_with_redis_down(dir: &Path) -> Check {
    let name = "rotation_refused_with_redis_down";
    let outcome = (|| -> anyhow::Result<String> {
        let (pids, true, true) = crate::local::recorded(dir).context("no running local stack")?
        else {
            anyhow::bail!("the local stack does not run whole");
        };
        crate::local::signal(pids.redis, rustix::process::Signal::KILL)
            .with_context(|| format!("kill -KILL {}", pids.redis))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while crate::local::cmdline(pids.redis).contains("redis-server")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let before = snapshot(dir);
        let refused = run_stage(dir, Stage::Add, &RotateOptions::default(), true)
            .err()
            .context("stage add ran")?;
        let refused = format!("{refused:#}");
        ensure!(
            refused.contains("redis-server") && refused.contains("nothing was changed"),
            "refused for another reason: {refused}"
        );
        ensure!(snapshot(dir) == before, "stage add changed a file");
        let report = super::report(dir)?.context("the directory holds no deployment")?;
        ensure!(
            !report.agrees && !report.stack.is_empty(),
            "status does not show the dead Redis: {:?}",
            report.stack
        );
        Ok(format!(
            "redis-server (pid {}) killed: stage add refused ({refused}), no file changed; status: {}",
            pids.redis,
            report.stack.join("; ")
        ))
    })();
    match outcome {
        Ok(detail) => check(name, true, detail),
        Err(e) => check(name, false, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    /// What `cargo xtask test` runs after the rotation under load, on its own:
    /// `cargo test -p sealcache-devstack -- --ignored interruptions`
    /// (ignored by default: it builds the release server and starts redis-server).
    #[test]
    #[ignore = "starts the local stack (release build, redis-server); part of `cargo xtask test`"]
    fn interruptions_on_the_local_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("local-interruptions");
        crate::local::tests::write_production_deployment(&dir);
        let port = crate::local::free_port().unwrap();
        let outcome = crate::local::start(&dir, port).map(|port| {
            let mut checks = super::verify_interruptions(&dir, port);
            checks.push(super::refused_with_redis_down(&dir));
            checks
        });
        let stopped = crate::local::stop(&std::fs::canonicalize(&dir).unwrap());
        let checks = outcome.unwrap();
        crate::verify::print_checks(&checks);
        assert!(checks.iter().all(|c| c.passed) && checks.len() >= 11);
        assert_eq!(stopped.unwrap(), 1, "only the server was left to stop");
    }
}
