//! `cargo xtask test`'s rotation under load: every stage while requests run on every backend.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use sealcache_config_gen::rotation::{self, RotateOptions, Stage};
use sealcache_config_gen::{SecretString, layout};

use super::run_stage;
use crate::verify::Check;
use sealcache_ops::rotate::{Expected, discover, read_secret, redis_cli};

/// Requests against the API while a rotation runs: each stores a new entry and reads it back.
pub(super) struct Load {
    stop: Arc<AtomicBool>,
    started: Instant,
    workers: Vec<std::thread::JoinHandle<Outcome>>,
}

/// What one worker saw: pairs done, the failed ones, and its slowest pair (how long, and when).
type Outcome = (u64, Vec<Failure>, (Duration, Duration));

/// One failed store+lookup pair: when it started (on the load's clock), and what each answered (the
/// status and the error code of the body, or the transport error).
#[derive(Debug)]
pub(super) struct Failure {
    at: Duration,
    what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {:.1} s: {}", self.at.as_secs_f64(), self.what)
    }
}

/// What a failed request answered: `503 unavailable`, `200 miss`, or the transport error.
fn answer(outcome: &anyhow::Result<(u16, String)>) -> String {
    match outcome {
        Ok((status, body)) => {
            let code = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
            match code {
                Some(code) => format!("{status} {code}"),
                None if body.contains("\"hit\":false") => format!("{status} miss"),
                None => status.to_string(),
            }
        }
        Err(e) => format!("{e:#}"),
    }
}

impl Load {
    /// `workers` threads, spread over the backends on `ports`.
    pub(super) fn start(ports: &[u16], api_key: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let workers = (0..workers.max(ports.len()))
            .map(|w| {
                let port = ports[w % ports.len()];
                let stop = stop.clone();
                let key = api_key.to_owned();
                std::thread::spawn(move || {
                    let (mut done, mut failed) = (0u64, Vec::new());
                    let mut slowest = (Duration::ZERO, Duration::ZERO);
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let pair_started = Instant::now();
                        n += 1;
                        let text = format!("rotation load {w} {n}");
                        let store = serde_json::json!({"text": text, "operation": "qa", "response": {"n": n}}).to_string();
                        let lookup = serde_json::json!({"text": text, "operation": "qa"}).to_string();
                        let stored = crate::http::request(port, "PUT", "/v1/cache/entries", Some(&key), Some(&store));
                        let found = crate::http::request(port, "POST", "/v1/cache/lookup", Some(&key), Some(&lookup));
                        match (&stored, &found) {
                            (Ok((201, _)), Ok((200, body))) if body.contains("\"hit\":true") => {}
                            _ => failed.push(Failure {
                                at: pair_started.duration_since(started),
                                what: format!(
                                    "port {port}: store {}, lookup {}",
                                    answer(&stored),
                                    answer(&found)
                                ),
                            }),
                        }
                        done += 1;
                        let took = pair_started.elapsed();
                        if took > slowest.0 {
                            slowest = (took, pair_started.duration_since(started));
                        }
                    }
                    (done, failed, slowest)
                })
            })
            .collect();
        Self {
            stop,
            started,
            workers,
        }
    }

    /// How long the load has run.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the workers: pairs done, the failed ones, and the slowest pair (how long, and when
    /// it started on the load's clock).
    pub(super) fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = (0, Vec::new(), (Duration::ZERO, Duration::ZERO));
        for w in self.workers {
            match w.join() {
                Ok((done, failed, slowest)) => {
                    total.0 += done;
                    total.1.extend(failed);
                    total.2 = total.2.max(slowest);
                }
                Err(_) => total.1.push(Failure {
                    at: self.started.elapsed(),
                    what: "a load worker panicked".to_owned(),
                }),
            }
        }
        total
    }
}

/// The first and the last of `failed`, each with its time on the load's clock and the last stage
/// mark before it (`during promote`: after "promote started", before "promote done").
fn failures_shown(failed: &[Failure], marks: &[(Duration, String)]) -> String {
    let shown = |f: &Failure| {
        format!(
            "at {:.1} s, after {}: {}",
            f.at.as_secs_f64(),
            after_mark(f.at, marks),
            f.what
        )
    };
    let mut sorted: Vec<&Failure> = failed.iter().collect();
    sorted.sort_by_key(|f| f.at);
    match (sorted.first(), sorted.last()) {
        (Some(first), Some(last)) if failed.len() > 1 => {
            format!(" (first {}; last {})", shown(first), shown(last))
        }
        (Some(first), _) => format!(" ({})", shown(first)),
        _ => String::new(),
    }
}

/// The last stage mark at or before `at` on the load's clock.
fn after_mark(at: Duration, marks: &[(Duration, String)]) -> &str {
    marks
        .iter()
        .rev()
        .find(|(mark, _)| *mark <= at)
        .map_or("before the first stage", |(_, mark)| mark.as_str())
}

fn entry(port: u16, api_key: &str, i: usize, store: bool) -> bool {
    let text = format!("written before the rotation {i}");
    if store {
        let body =
            serde_json::json!({"text": text, "operation": "summarize", "response": {"i": i}})
                .to_string();
        matches!(
            crate::http::request(port, "PUT", "/v1/cache/entries", Some(api_key), Some(&body)),
            Ok((201, _))
        )
    } else {
        let body = serde_json::json!({"text": text, "operation": "summarize"}).to_string();
        matches!(crate::http::request(port, "POST", "/v1/cache/lookup", Some(api_key), Some(&body)), Ok((200, b)) if b.contains("\"hit\":true"))
    }
}

/// Who runs a rotation's stages.
#[derive(Debug, Clone, Copy)]
pub enum Rotator<'a> {
    /// This process, through `sealcache_ops::rotate` (what `cargo xtask config rotate` and the
    /// `sealcache` binary on the host run).
    Here,
    /// The operator with only the backend image: `docker compose exec -T backend sealcache
    /// config rotate --stage S` in compose project `project` (whose API is on `port`), without
    /// `--dir` (the container's `SEALCACHE_DIR` names the mounted deployment).
    InBackend {
        /// The compose project.
        project: &'a str,
        /// Its API port.
        port: u16,
    },
}

impl Rotator<'_> {
    /// Runs `stage` (with `--force` when `force`) on `dir`.
    fn run(self, dir: &Path, stage: Stage, force: bool) -> anyhow::Result<()> {
        match self {
            Rotator::Here => {
                let opts = RotateOptions {
                    force,
                    ..RotateOptions::default()
                };
                run_stage(dir, stage, &opts, true).map(|_| ())
            }
            Rotator::InBackend { project, port } => {
                let compose = sealcache_ops::up::project(
                    dir,
                    &sealcache_ops::up::UpOptions::new(project, port),
                )?;
                let mut args = vec![
                    "exec",
                    "-T",
                    "backend",
                    "sealcache",
                    "config",
                    "rotate",
                    "--stage",
                    stage.as_str(),
                ];
                if force {
                    args.push("--force");
                }
                let out = compose.run(&args)?;
                for line in out.lines() {
                    println!("   [in backend] {line}");
                }
                Ok(())
            }
        }
    }
}

/// `cargo xtask test`'s rotation check on a running stack (local or compose, one node or a
/// cluster) whose backends listen on `ports`, the stages run by `rotator`: under concurrent
/// store/lookup load on every backend, keys and passwords go through add → promote → retire
/// --force; no request may fail, no `unknown_key_id` event may occur on any backend, entries
/// written (through the first backend) before stay readable (through the last) after the
/// promotion, and every Redis node accepts exactly the new passwords.
pub fn verify_under_load(dir: &Path, ports: &[u16], rotator: Rotator<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    let check = |name: &'static str, passed: bool, detail: String| {
        crate::verify::check(name, passed, detail)
    };
    let (Some(&port), Some(&last)) = (ports.first(), ports.last()) else {
        return vec![check(
            "rotation_stages_reloaded",
            false,
            "no backend".to_owned(),
        )];
    };
    let api_key = crate::verify::api_key(dir);
    let old_app = SecretString::new(
        std::fs::read_to_string(dir.join(layout::APP_PASSWORD)).unwrap_or_default(),
    );
    let before = (0..20).filter(|i| entry(port, &api_key, *i, true)).count();
    let load = Load::start(ports, &api_key, 2);
    std::thread::sleep(Duration::from_millis(500));
    // When each stage started and ended, on the load's clock: a failure names the stage it fell in.
    let mut marks: Vec<(Duration, String)> = Vec::new();
    let stages = (|| -> anyhow::Result<(usize, u32)> {
        let old_key = Expected::read(dir)?.primary_key_id;
        let mut stage = |stage: Stage, force: bool| -> anyhow::Result<()> {
            marks.push((load.elapsed(), format!("{} started", stage.as_str())));
            rotator.run(dir, stage, force)?;
            marks.push((load.elapsed(), format!("{} done", stage.as_str())));
            Ok(())
        };
        stage(Stage::Add, false)?;
        std::thread::sleep(Duration::from_millis(300));
        stage(Stage::Promote, false)?;
        let new_key = Expected::read(dir)?.primary_key_id;
        ensure!(
            new_key != old_key,
            "key {old_key} still seals after promote"
        );
        std::thread::sleep(Duration::from_millis(300));
        let readable = (0..20).filter(|i| entry(last, &api_key, *i, false)).count();
        stage(Stage::Retire, true)?;
        std::thread::sleep(Duration::from_millis(500));
        Ok((readable, new_key))
    })();
    let (requests, failed, slowest) = load.finish();
    match &stages {
        Ok(_) => checks.push(check(
            "rotation_stages_reloaded",
            true,
            "add → promote → retire --force: every Redis and backend took each stage".to_owned(),
        )),
        Err(e) => checks.push(check("rotation_stages_reloaded", false, format!("{e:#}"))),
    }
    checks.push(check(
        "rotation_under_load_no_failed_request",
        failed.is_empty() && requests > 0,
        format!(
            "{requests} store+lookup pairs during the rotation, {} failed{}; the slowest took {} ms (at {:.1} s, after {})",
            failed.len(),
            failures_shown(&failed, &marks),
            slowest.0.as_millis(),
            slowest.1.as_secs_f64(),
            after_mark(slowest.1, &marks)
        ),
    ));
    if let Ok((readable, new_key)) = stages {
        checks.push(check(
            "rotation_old_entries_readable",
            readable == before && before == 20,
            format!("{readable} of {before} entries stored before the rotation read back after the promotion"),
        ));
        let statuses: Result<Vec<sealcache_api::SecurityStatusResponse>, String> = ports
            .iter()
            .map(|p| {
                sealcache_ops::status::backend_status(*p, &api_key)
                    .map_err(|e| format!("port {p}: {e}"))
            })
            .collect();
        match statuses {
            Ok(all) => {
                let sum = |name: &str| -> u64 {
                    all.iter()
                        .map(|r| {
                            r.status
                                .security_events_by_type
                                .get(name)
                                .copied()
                                .unwrap_or(0)
                        })
                        .sum()
                };
                let (unknown, failed_open) = (sum("unknown_key_id"), sum("decrypt_failed"));
                checks.push(check(
                    "rotation_no_unknown_key_id",
                    unknown == 0 && failed_open == 0,
                    format!(
                        "unknown_key_id {unknown}, decrypt_failed {failed_open} ({} backend(s))",
                        all.len()
                    ),
                ));
                let keys: Vec<(u64, usize)> = all
                    .iter()
                    .map(|r| {
                        (
                            u64::from(r.status.primary_key_id),
                            r.status.decrypt_only_key_ids.len(),
                        )
                    })
                    .collect();
                checks.push(check(
                    "rotation_new_key_seals_alone",
                    keys.iter().all(|k| *k == (u64::from(new_key), 0)),
                    format!("(primary_key_id, decrypt-only keys) per backend: {keys:?}"),
                ));
            }
            Err(e) => checks.push(check("rotation_no_unknown_key_id", false, e)),
        }
    }
    // Every Redis as a rotation finds it: the local stack's, or the compose stack's containers.
    let redis = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| discover(&d).ok())
        .map(|t| t.redis)
        .filter(|r| !r.is_empty());
    let passwords = redis.map(|redis| -> anyhow::Result<String> {
        for redis in &redis {
            for (user, file) in rotation::USERS {
                redis_cli(dir, redis, user, &read_secret(dir, file)?, "PING")?;
            }
            let refused = redis_cli(
                dir,
                redis,
                sealcache_config_gen::acl::APP_USER,
                &old_app,
                "PING",
            )
            .is_err();
            ensure!(refused, "{redis}: cache_app's old password is still accepted");
        }
        Ok(format!(
            "on {} Redis node(s), the new passwords of all 4 users authenticate; cache_app's old one is refused",
            redis.len()
        ))
    });
    match passwords {
        Some(Ok(detail)) => checks.push(check("rotation_passwords", true, detail)),
        Some(Err(e)) => checks.push(check("rotation_passwords", false, format!("{e:#}"))),
        None => checks.push(check(
            "rotation_passwords",
            false,
            "no running Redis uses the directory".to_owned(),
        )),
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cargo xtask test` runs on its local stack, on its own:
    /// `cargo test -p sealcache-devstack -- --ignored rotation_under_load`
    /// (ignored by default: it builds the release server and starts redis-server).
    #[test]
    #[ignore = "starts the local stack (release build, redis-server); part of `cargo xtask test`"]
    fn rotation_under_load_on_the_local_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("local-rotation");
        crate::local::tests::write_production_deployment(&dir);
        let port = crate::local::free_port().unwrap();
        let outcome = crate::local::start(&dir, port)
            .map(|port| verify_under_load(&dir, &[port], Rotator::Here));
        let _ = crate::local::stop(&std::fs::canonicalize(&dir).unwrap());
        let checks = outcome.unwrap();
        crate::verify::print_checks(&checks);
        assert!(checks.iter().all(|c| c.passed) && checks.len() >= 6);
    }
}
