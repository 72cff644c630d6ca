//! The running system compared with the deployment directory: each backend's key ids, the
//! generation of the Redis password it authenticates with and its keyring reloads, and each
//! Redis's password hashes, against the keyring file, the password file, `users.acl` and the
//! rotation record. `config rotate` refuses a stage while they disagree (unless it is the stage
//! that completes them); `status` shows every disagreement and the command that resolves it.

use std::path::Path;

use crate::error::{Result, StepExt as _};
use crate::report::{Mark, Progress, ProgressExt as _};
use sealcache_config_gen::layout;
use sealcache_config_gen::rotation::{self, InProgress, RecordedStage, RotationRecord, Stage};
use serde::{Deserialize, Serialize};

use crate::stack::{Backend, Redis, Targets, admin, discover};

/// What the directory says every running process should hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The keyring file's primary key id.
    pub primary_key_id: u32,
    /// The keyring file's decrypt-only key ids, sorted.
    pub decrypt_only_key_ids: Vec<u32>,
    /// The generation of the backends' Redis password (`cache_app`'s password file).
    pub redis_password_generation: String,
}

impl Expected {
    /// The keyring file and the backends' password file of `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        // Read as a rotation reads it: no link, no FIFO, bounded.
        let ring = rotation::read_keyring(dir)
            .step(|| format!("cannot read the keyring of {}", dir.display()))?;
        let mut decrypt_only_key_ids = ring.decrypt_only_ids();
        decrypt_only_key_ids.sort_unstable();
        Ok(Self {
            primary_key_id: ring.primary_id(),
            decrypt_only_key_ids,
            redis_password_generation: rotation::password_file_generation(
                dir,
                layout::APP_PASSWORD,
            )?,
        })
    }
}

/// One backend, as its security status shows it, compared with [`Expected`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendView {
    /// Which backend (pid or container).
    pub backend: String,
    /// Its API on the host (`None`: not published).
    pub api: Option<String>,
    /// The key it seals with.
    pub primary_key_id: Option<u32>,
    /// The keys it only opens with, sorted.
    pub decrypt_only_key_ids: Vec<u32>,
    /// The generation of the Redis password its new connections authenticate with.
    pub redis_password_generation: Option<String>,
    /// Keyring reloads applied since it started.
    pub keyring_reloads_applied: Option<u64>,
    /// Keyring reloads refused since it started.
    pub keyring_reloads_refused: Option<u64>,
    /// Why its latest keyring reload was refused, while that is its latest.
    pub last_refusal: Option<String>,
    /// What disagrees with the directory (empty: it agrees).
    pub problems: Vec<String>,
}

impl BackendView {
    /// Reloads attempted since it started (`None`: not reported).
    pub fn reloads(&self) -> Option<u64> {
        Some(self.keyring_reloads_applied? + self.keyring_reloads_refused?)
    }
}

/// One Redis, compared with `users.acl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisView {
    /// Which Redis (port or container).
    pub redis: String,
    /// What disagrees with the directory (empty: it agrees).
    pub problems: Vec<String>,
}

/// The running system against the directory: the `rotation` object of `status --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotationReport {
    /// The stage reached (`rotation.json`).
    pub stage: RecordedStage,
    /// The stage started and not confirmed by every running process.
    pub in_progress: Option<InProgress>,
    /// What the directory's files say every process should hold.
    pub expected: Expected,
    /// Each backend that uses the directory.
    pub backends: Vec<BackendView>,
    /// Each Redis that uses the directory.
    pub redis: Vec<RedisView>,
    /// The stack as a whole: processes of it that are down, or that mount the secrets as single
    /// files (each names what to run).
    pub stack: Vec<String>,
    /// Nothing is in progress and every running process agrees with the directory.
    pub agrees: bool,
    /// The stage whose run completes what disagrees (`None` when everything agrees, or only
    /// the stack as a whole must be brought back first).
    pub completing_stage: Option<Stage>,
    /// The one command to run (`None`: everything agrees, or see `stack`).
    pub next_command: Option<String>,
}

impl RotationReport {
    /// Each disagreement of a running process, named by the process.
    pub fn problems(&self) -> Vec<String> {
        let backends = self.backends.iter().flat_map(|b| {
            b.problems
                .iter()
                .map(move |p| format!("{}: {p}", b.backend))
        });
        let redis = self
            .redis
            .iter()
            .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.redis)));
        backends.chain(redis).collect()
    }
}

/// `backend`'s security status compared with `expected`.
pub(crate) fn observe_backend(
    backend: &Backend,
    api_key: &str,
    expected: &Expected,
) -> BackendView {
    let mut view = BackendView {
        backend: backend.to_string(),
        api: backend.port().map(|p| format!("http://127.0.0.1:{p}")),
        primary_key_id: None,
        decrypt_only_key_ids: Vec::new(),
        redis_password_generation: None,
        keyring_reloads_applied: None,
        keyring_reloads_refused: None,
        last_refusal: None,
        problems: Vec::new(),
    };
    let Some(port) = backend.port() else {
        view.problems.push(
            "its API is not published on the host: its key ids and password cannot be compared"
                .to_owned(),
        );
        return view;
    };
    let status = match crate::status::backend_status(port, api_key) {
        Ok(response) => response.status,
        Err(e) => {
            view.problems
                .push(format!("its security status cannot be read: {e}"));
            return view;
        }
    };
    view.primary_key_id = Some(status.primary_key_id);
    view.decrypt_only_key_ids = status.decrypt_only_key_ids;
    view.decrypt_only_key_ids.sort_unstable();
    view.redis_password_generation = status.redis_password_generation;
    view.keyring_reloads_applied = Some(status.keyring_reloads.applied);
    view.keyring_reloads_refused = Some(status.keyring_reloads.refused);
    view.last_refusal = status.keyring_reloads.last_refusal;

    if view.primary_key_id != Some(expected.primary_key_id) {
        view.problems.push(format!(
            "seals with key {}, the keyring file's primary is {}",
            view.primary_key_id
                .map_or_else(|| "?".to_owned(), |p| p.to_string()),
            expected.primary_key_id
        ));
    }
    if view.decrypt_only_key_ids != expected.decrypt_only_key_ids {
        view.problems.push(format!(
            "opens with keys {:?}, the keyring file's decrypt-only keys are {:?}",
            view.decrypt_only_key_ids, expected.decrypt_only_key_ids
        ));
    }
    match &view.redis_password_generation {
        Some(g) if *g == expected.redis_password_generation => {}
        Some(g) => view.problems.push(format!(
            "authenticates with Redis password generation {g}, the password file's is {}",
            expected.redis_password_generation
        )),
        None => view
            .problems
            .push("does not report which Redis password it authenticates with".to_owned()),
    }
    if view.reloads().is_none() {
        view.problems
            .push("does not report its keyring reloads".to_owned());
    }
    if let Some(why) = &view.last_refusal {
        view.problems.push(format!(
            "its latest keyring reload was refused (it runs an older keyring than the file): {why}"
        ));
    }
    view
}

/// `redis`'s password hashes (`ACL LIST` as `cache_admin`) compared with `users.acl`.
pub(crate) fn observe_redis(dir: &Path, redis: &Redis) -> RedisView {
    let mut view = RedisView {
        redis: redis.to_string(),
        problems: Vec::new(),
    };
    let file = match crate::runtime::read_below(dir, layout::USERS_ACL) {
        Ok(f) => f,
        Err(e) => {
            view.problems.push(format!("users.acl cannot be read: {e}"));
            return view;
        }
    };
    let want = rotation::acl_hashes(&file);
    let live = match admin(dir, redis, "ACL LIST") {
        Ok(text) => rotation::acl_hashes(&text),
        Err(e) => {
            view.problems
                .push(format!("its ACL cannot be read as cache_admin: {e:#}"));
            return view;
        }
    };
    for (user, should) in &want {
        let have = live.get(user).cloned().unwrap_or_default();
        if have != *should {
            view.problems.push(format!(
                "accepts {} password(s) for {user}, users.acl {}{}",
                have.len(),
                should.len(),
                if have.len() == should.len() {
                    " (other ones)"
                } else {
                    ""
                }
            ));
        }
    }
    view
}

/// The running `targets` of `dir` (canonical) compared with its files and `record`.
pub(crate) fn compare(
    dir: &Path,
    targets: &Targets,
    record: &RotationRecord,
) -> Result<RotationReport> {
    let expected = Expected::read(dir)?;
    let api_key = crate::runtime::api_key(dir);
    let backends: Vec<BackendView> = targets
        .backends
        .iter()
        .map(|b| observe_backend(b, &api_key, &expected))
        .collect();
    let redis: Vec<RedisView> = targets
        .redis
        .iter()
        .map(|r| observe_redis(dir, r))
        .collect();
    let stack: Vec<String> = targets.stale.iter().chain(&targets.down).cloned().collect();
    let mut report = RotationReport {
        stage: record.stage,
        in_progress: record.in_progress.clone(),
        expected,
        backends,
        redis,
        stack,
        agrees: false,
        completing_stage: None,
        next_command: None,
    };
    report.agrees =
        report.in_progress.is_none() && report.problems().is_empty() && report.stack.is_empty();
    if !report.agrees && report.stack.is_empty() {
        let stage = record.completing_stage();
        report.completing_stage = Some(stage);
        report.next_command = Some(rotation::stage_command(dir, stage));
    }
    Ok(report)
}

/// `status`'s comparison of the stack that runs from `dir` with `dir` (`None`: `dir` holds no
/// deployment).
pub fn report(dir: &Path) -> Result<Option<RotationReport>> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Ok(None);
    };
    if !dir.join(layout::ENCRYPTION_KEYRING).is_file() {
        return Ok(None);
    }
    let targets = discover(&dir)?;
    let record = rotation::read_record(&dir)?;
    compare(&dir, &targets, &record).map(Some)
}

/// Reports the rotation lines of `status` and its verdict.
pub fn report_lines(status: &crate::status::StackStatus, progress: &mut dyn Progress) {
    match status.rotation.as_ref() {
        None => progress.mark(
            Mark::Info,
            "rotation: the directory holds no deployment: not compared",
        ),
        Some(r) => {
            if let Some(p) = &r.in_progress {
                progress.mark(
                    Mark::Failed,
                    format!(
                        "rotation: stage {} in progress since Unix time {} ({})",
                        p.stage.as_str(),
                        p.started_at,
                        if p.files_written {
                            "files written; not every running process has confirmed them"
                        } else {
                            "intent recorded; its files may be partly written"
                        }
                    ),
                );
            }
            for b in &r.backends {
                if b.problems.is_empty() {
                    progress.mark(Mark::Ok, format!(
                        "rotation: {}: seals with key {}, opens {:?}, Redis password generation {}, {} keyring reload(s) refused since start",
                        b.backend,
                        r.expected.primary_key_id,
                        r.expected.decrypt_only_key_ids,
                        r.expected.redis_password_generation,
                        b.keyring_reloads_refused.unwrap_or(0)
                    ));
                }
                for p in &b.problems {
                    progress.mark(Mark::Failed, format!("rotation: {}: {p}", b.backend));
                }
            }
            for redis in &r.redis {
                if redis.problems.is_empty() {
                    progress.mark(
                        Mark::Ok,
                        format!(
                            "rotation: {}: accepts exactly the passwords of users.acl",
                            redis.redis
                        ),
                    );
                }
                for p in &redis.problems {
                    progress.mark(Mark::Failed, format!("rotation: {}: {p}", redis.redis));
                }
            }
            for s in &r.stack {
                progress.mark(Mark::Failed, format!("rotation: {s}"));
            }
            if r.backends.is_empty() && r.redis.is_empty() && r.stack.is_empty() {
                progress.mark(
                    Mark::Info,
                    "rotation: no running stack uses the directory: only the record is compared",
                );
            }
            match &r.next_command {
                Some(command) => progress.mark(Mark::Failed, format!("rotation: run `{command}`")),
                None if r.agrees => progress.mark(Mark::Ok, format!(
                    "rotation: {} and complete; every running process agrees with the directory",
                    serde_json::to_value(r.stage)
                        .ok()
                        .and_then(|s| s.as_str().map(str::to_owned))
                        .unwrap_or_default()
                )),
                None => {}
            }
        }
    }
    let verdict = status.verdict.as_str();
    let mark = match verdict {
        "production_ready" => Mark::Ok,
        crate::status::ROTATION_INCOMPLETE => Mark::Failed,
        _ => Mark::Warning,
    };
    progress.mark(mark, format!("verdict: {verdict}"));
}
