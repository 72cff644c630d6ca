//! `config rotate --stage add|promote|retire [--dry-run]` (the `sealcache` binary and `cargo xtask`): the deployment's files change in stages
//! (`sealcache_config_gen::rotation`), then every running process that uses the directory takes
//! them: Redis loads the ACL file (as `cache_admin`, whose current password stays valid throughout),
//! and each backend reloads its keyring and password on a signal and is checked to report them.
//!
//! A stage is a sequence of [`Step`]s, and the rotation record (`rotation.json`) says truthfully
//! how far it got: its intent is recorded before any file changes, and it is recorded complete
//! only after every Redis and every backend confirmed it. Before anything changes, every running
//! process is compared with the directory (module `compare`); a stage is refused while they disagree or
//! another stage is in progress, with the one command that completes it, unless it is that
//! command. Running a stage again is always safe: it completes from where it stopped.
//!
//! Running processes are found from the directory itself: the local stacks' pid records
//! (`secure-up --local [--cluster]`), and compose containers whose mounts come from it. The admin
//! password reaches `redis-cli` on its standard input, never on a command line or in an
//! environment variable.

mod compare;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{OpsError, Result, StepExt as _, io, refuse};
use crate::report::{Mark, Progress, ProgressExt as _};
use sealcache_config_gen::rotation::{self, RotationRecord};
use sealcache_config_gen::{cluster_dir, layout};

pub use self::compare::{BackendView, Expected, RedisView, RotationReport, report, report_lines};
pub use crate::stack::{
    Backend, Redis, Targets, after_auth, container_cli, discover, local_cli, read_secret, redis_cli,
};
pub use sealcache_config_gen::rotation::{RotateOptions, Stage, StageOutcome};

use self::compare::observe_backend;
use crate::stack::{admin, apply_acl, set_masterauth};

/// Runs `stage` on `dir` and, with `reload`, makes every process that uses the directory take it
/// and records it complete once each confirmed. With `dry_run`, nothing changes: see
/// [`plan_stage`].
///
/// # Errors
/// [`OpsError::Refused`] (nothing was changed) while the stack runs only in part, a running
/// process disagrees with the directory, or another stage is in progress; the failures of the
/// files' change and of each reload otherwise (the record says how far the stage got, and
/// running it again completes it).
pub fn rotate(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    reload: bool,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<Option<StageOutcome>> {
    if dry_run {
        plan_stage(dir, stage, opts, progress)?;
        return Ok(None);
    }
    run_stage(dir, stage, opts, reload, progress).map(Some)
}

/// The plan of `stage` on `dir`, without changing anything: every check a real run makes first
/// (the whole stack runs, every process agrees with the directory, no other stage is in
/// progress), then the stage run on a private scratch copy of the directory (removed
/// afterwards), whose changed files are the plan, and the reloads a real run would make.
///
/// # Errors
/// What a real run would refuse with before changing anything; I/O errors of the copy.
pub fn plan_stage(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    progress: &mut dyn Progress,
) -> Result<StageOutcome> {
    let dir = std::fs::canonicalize(dir).map_err(io("open", dir))?;
    let _lock = lock(&dir)?;
    let targets = discover(&dir)?;
    whole_stack(&dir, &targets)?;
    let record = as_owner(&dir, || rotation::read_record(&dir))??;
    let report = if targets.is_empty() {
        None
    } else {
        Some(compare::compare(&dir, &targets, &record)?)
    };
    admit(&dir, stage, &record, report.as_ref())?;
    progress.ok(format!(
        "Checked: the stage may run ({} Redis, {} backend(s) use {})",
        targets.redis.len(),
        targets.backends.len(),
        dir.display()
    ));
    // The copy is made, changed and compared as the secrets' owner (see `as_owner`), in a
    // scratch directory of that owner, removed when the closure ends.
    let (outcome, changed) = as_owner(&dir, || -> Result<(StageOutcome, Vec<PathBuf>)> {
        let scratch = crate::scratch::ScratchDir::new()?;
        let copy = scratch.path().join("deployment");
        crate::scratch::copy_tree(&dir, &copy, NOT_COPIED)?;
        rotation::upgrade_layout(&copy)?;
        let outcome = rotation::rotate_stage(&copy, stage, opts).step(|| {
            format!(
                "stage {} fails on a copy of {}",
                stage.as_str(),
                dir.display()
            )
        })?;
        Ok((outcome, changed_files(&dir, &copy)?))
    })??;
    let mut discarded = crate::report::Report::new();
    describe(&outcome, &mut discarded);
    for line in discarded.lines {
        progress.mark(Mark::Planned, format!("would: {}", line.text));
    }
    for rel in changed {
        progress.mark(
            Mark::Planned,
            format!("would change {}", dir.join(rel).display()),
        );
    }
    for redis in &targets.redis {
        progress.mark(
            Mark::Planned,
            format!("would make {redis} load users.acl (as cache_admin)"),
        );
    }
    let signal = if stage == Stage::Retire && outcome.forced {
        "USR1"
    } else {
        "HUP"
    };
    for backend in &targets.backends {
        progress.mark(
            Mark::Planned,
            format!("would send SIG{signal} to {backend} and wait until it reports the new keyring and password"),
        );
    }
    progress.info(format!(
        "--dry-run: nothing was changed; run the same command without --dry-run to apply stage {}",
        stage.as_str()
    ));
    Ok(outcome)
}

/// Runs the file work of a stage on `dir` as the owner of its `secrets/` when this process is
/// root and another user owns them (the backend container writes them for a rotation run inside
/// it): a link or a swapped directory it left there then reaches only what that user reaches
/// anyway, never a file of root's (`crate::runtime::as_owner_of`). No process is spawned in
/// there (Docker needs root).
fn as_owner<T: Send>(dir: &Path, work: impl FnOnce() -> T + Send) -> Result<T> {
    crate::runtime::as_owner_of(&dir.join(layout::BACKEND_SECRETS_DIR), work)
}

/// What a stage running as the owner of `secrets/` (see [`as_owner`]) needs from the directory
/// that stays root's, when that owner is another user: `rotation.json` to exist and be theirs
/// (created here, as root, for a stack brought up before `up` created it), and the settings it
/// reads (`.env`, a cluster's `cluster.json`: no secret in either) readable by their group
/// (`root:GID`, 0640). Nothing else in the directory changes hands.
fn ensure_record(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let record = dir.join(layout::ROTATION_FILE);
    let owner = std::fs::symlink_metadata(dir.join(layout::BACKEND_SECRETS_DIR))
        .ok()
        .filter(|m| m.uid() != 0 && rustix::process::geteuid().is_root());
    let Some(owner) = owner else {
        return Ok(());
    };
    crate::up::hand_over_secrets(dir, owner.uid(), owner.gid())?;
    if std::fs::symlink_metadata(&record).is_err() {
        rotation::write_record(dir, &RotationRecord::default())?;
    }
    crate::runtime::chown_below(dir, layout::ROTATION_FILE, owner.uid(), owner.gid())?;
    for rel in [layout::ENV_FILE, cluster_dir::CLUSTER_RECORD] {
        let path = dir.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        crate::runtime::chown_below(dir, rel, 0, owner.gid())?;
        if meta.mode() & 0o040 == 0 {
            std::fs::set_permissions(
                &path,
                std::os::unix::fs::PermissionsExt::from_mode(meta.mode() & 0o7777 | 0o040),
            )
            .map_err(io("set the mode of", &path))?;
        }
    }
    Ok(())
}

/// One stage at a time on `dir`: an exclusive lock on its `secrets/` directory (the same inode
/// the backend container mounts, so a stage inside it and one on the host exclude each other),
/// held until the returned descriptor is dropped.
///
/// # Errors
/// [`OpsError::Refused`] while another stage holds it; [`OpsError::Io`] when `secrets/` cannot
/// be opened (a link there is refused).
fn lock(dir: &Path) -> Result<Option<std::os::fd::OwnedFd>> {
    let secrets = dir.join(layout::SECRETS_DIR);
    let fd = match rustix::fs::open(
        &secrets,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        // No secrets yet: the generator's own error comes next.
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io("open", &secrets)(e.into())),
    };
    match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(fd)),
        Err(rustix::io::Errno::WOULDBLOCK) => refuse!(
            "another rotation of {} is running (on the host or in its backend container): nothing was changed; run again once it ended",
            dir.display()
        ),
        Err(e) => Err(io("lock", &secrets)(e.into())),
    }
}

/// What a dry run leaves out of its copy: the CA (no stage reads it; root's, and hidden in the
/// backend container) and the compose files (no stage changes them).
const NOT_COPIED: &[&str] = &[layout::CA_DIR, crate::templates::COMPOSE_DIR];

/// The files (relative) that differ between `dir` and its changed copy `copy`, or exist in only
/// one of them.
fn changed_files(dir: &Path, copy: &Path) -> Result<Vec<PathBuf>> {
    let before = crate::scratch::files_under(dir, NOT_COPIED)?;
    let after = crate::scratch::files_under(copy, NOT_COPIED)?;
    let mut changed: Vec<PathBuf> = Vec::new();
    for rel in after.iter().chain(before.iter()) {
        if changed.contains(rel) {
            continue;
        }
        let a = std::fs::read(dir.join(rel)).ok();
        let b = std::fs::read(copy.join(rel)).ok();
        if a != b {
            changed.push(rel.clone());
        }
    }
    changed.sort();
    Ok(changed)
}

/// The steps of a stage, in order. [`run_stage_until`] stops after one of them (for the tests of
/// every interruption point; the command always runs them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every running process checked against the directory; nothing changed yet.
    Checked,
    /// `rotation.json` records the stage's intent; no other file changed.
    IntentRecorded,
    /// Every file of the stage written (the record says so).
    FilesWritten,
    /// Every Redis holds exactly the password hashes of `users.acl`.
    RedisAclApplied,
    /// Cluster: every node's `masterauth` is the replication password file's.
    MasterauthSet,
    /// Every backend signalled, reloaded, and reports the keyring file's key ids and the
    /// password file's generation. Last comes `complete`: `rotation.json` records the stage
    /// complete.
    BackendsConfirmed,
}

/// Runs `stage` on `dir` and, with `reload`, makes every process that uses the directory take it
/// and records it complete once each confirmed.
///
/// # Errors
/// As [`rotate`].
pub fn run_stage(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    reload: bool,
    progress: &mut dyn Progress,
) -> Result<StageOutcome> {
    run_stage_until(dir, stage, opts, reload, None, progress)?.ok_or_else(|| OpsError::Unhealthy {
        target: dir.display().to_string(),
        detail: "the stage stopped before writing its files".to_owned(),
    })
}

/// [`run_stage`], stopped after the step `stop` (`None`: every step). Returns the outcome once
/// the files are written.
///
/// # Errors
/// As [`rotate`].
pub fn run_stage_until(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    reload: bool,
    stop: Option<Step>,
    progress: &mut dyn Progress,
) -> Result<Option<StageOutcome>> {
    let dir = std::fs::canonicalize(dir).step(|| format!("{} does not exist", dir.display()))?;
    crate::runtime::refuse_shared_directory(&dir)?;
    let _lock = lock(&dir)?;
    let targets = discover(&dir)?;
    whole_stack(&dir, &targets)?;
    let record = as_owner(&dir, || rotation::read_record(&dir))??;
    // With no process running there is nothing to compare (and a directory without a
    // deployment gets the generator's own error).
    let report = if targets.is_empty() {
        None
    } else {
        Some(compare::compare(&dir, &targets, &record)?)
    };
    admit(&dir, stage, &record, report.as_ref())?;
    if stop == Some(Step::Checked) {
        return Ok(None);
    }

    ensure_record(&dir)?;
    let moved = as_owner(&dir, || rotation::upgrade_layout(&dir))??;
    if !moved.is_empty() {
        progress.mark(
            Mark::Ok,
            format!(
                "Layout upgraded: {} moved into mounted directories",
                moved.join(", ")
            ),
        );
    }
    let plan = as_owner(&dir, || rotation::begin_stage(&dir, stage, opts))?
        .step(|| format!("cannot begin stage {} in {}", stage.as_str(), dir.display()))?;
    progress.mark(
        Mark::Recorded,
        format!(
            "Stage {} recorded as started in {} (complete once every running process confirms it)",
            plan.stage.as_str(),
            layout::ROTATION_FILE
        ),
    );
    if stop == Some(Step::IntentRecorded) {
        return Ok(None);
    }
    let outcome = as_owner(&dir, || rotation::rotate_stage(&dir, stage, opts))?
        .step(|| format!("cannot run stage {} in {}", stage.as_str(), dir.display()))?;
    describe(&outcome, progress);
    if stop == Some(Step::FilesWritten) {
        return Ok(Some(outcome));
    }
    if targets.is_empty() {
        progress.mark(
            Mark::Info,
            format!("No running stack uses {}: nothing to reload", dir.display()),
        );
        complete(&dir, stage, progress)?;
        return Ok(Some(outcome));
    }
    if !reload {
        progress.mark(Mark::Info, format!(
            "--no-reload: no running process was told; stage {} stays in progress until `{}` reloads them and each confirms",
            stage.as_str(),
            rotation::stage_command(&dir, stage)
        ));
        return Ok(Some(outcome));
    }
    // Every stage: users.acl may have changed in this run or in an interrupted one.
    for redis in &targets.redis {
        let how = apply_acl(&dir, redis)?;
        progress.mark(
            Mark::Ok,
            format!("{redis}: holds the passwords of users.acl ({how})"),
        );
    }
    if stop == Some(Step::RedisAclApplied) {
        return Ok(Some(outcome));
    }
    if cluster_dir::cluster_record(&dir)?.is_some() {
        for redis in &targets.redis {
            set_masterauth(&dir, redis)?;
            progress.mark(
                Mark::Ok,
                format!("{redis}: masterauth is cache_replication's current password"),
            );
        }
        let rewritten = crate::runtime::rewrite_masterauth(&dir)?;
        if rewritten > 0 {
            progress.mark(
                Mark::Ok,
                format!("masterauth rewritten in the local nodes' {rewritten} configuration files"),
            );
        }
    }
    if stop == Some(Step::MasterauthSet) {
        return Ok(Some(outcome));
    }
    // A retire that dropped keys older than the longest TTL by rotation.json reloads checked
    // (SIGHUP): each backend still refuses a key that sealed an entry with a longer per-call TTL
    // that has not expired, or that it knows was primary more recently (a backend restarted
    // since the promotion counts it as primary until its start), and the stage then fails with
    // its reason instead of destroying live entries. Only `--force` (the operator accepting the
    // misses) reloads forced (SIGUSR1). No reload, forced or not, drops the key a backend seals
    // with: the cache refuses that keyring.
    let signal = if stage == Stage::Retire && outcome.forced {
        "USR1"
    } else {
        "HUP"
    };
    let expected = Expected::read(&dir)?;
    let api_key = crate::runtime::api_key(&dir);
    for backend in &targets.backends {
        confirm_backend(backend, signal, &api_key, &expected)?;
        progress.mark(Mark::Ok, format!(
            "{backend}: SIG{signal}, now seals with key {} and opens {:?}; authenticates with Redis password generation {}",
            expected.primary_key_id,
            expected.decrypt_only_key_ids,
            expected.redis_password_generation
        ));
    }
    if stop == Some(Step::BackendsConfirmed) {
        return Ok(Some(outcome));
    }
    complete(&dir, stage, progress)?;
    Ok(Some(outcome))
}

/// Records `stage` complete: the step after [`Step::BackendsConfirmed`].
fn complete(dir: &Path, stage: Stage, progress: &mut dyn Progress) -> Result<()> {
    as_owner(dir, || {
        rotation::confirm_stage(dir, stage, SystemTime::now())
    })?
    .step(|| format!("cannot record stage {} complete", stage.as_str()))?;
    progress.mark(
        Mark::Ok,
        format!(
            "Stage {} complete: recorded in {}",
            stage.as_str(),
            layout::ROTATION_FILE
        ),
    );
    Ok(())
}

/// A stage runs on the whole stack or not at all: processes mounting the secrets as single files,
/// a stack running in part (a local process dead, a compose container stopped, a cluster short
/// of nodes or backends), or a Redis whose admin does not answer refuse it before any file
/// changes, so that the directory is never ahead of a process that would miss the change.
fn whole_stack(dir: &Path, targets: &Targets) -> Result<()> {
    if !targets.stale.is_empty() {
        refuse!(
            "a running stack mounts {}'s secrets as single files (from before rotation support), so it would never see a rotation: {}",
            dir.display(),
            targets.stale.join("; ")
        );
    }
    if !targets.down.is_empty() {
        refuse!(
            "the stack of {} runs only in part: {}: nothing was changed",
            dir.display(),
            targets.down.join("; ")
        );
    }
    if !targets.is_empty() {
        match cluster_dir::cluster_record(dir)? {
            // A stopped compose node container is not even listed (docker ps), so the running
            // nodes and backends are counted against the directory's record.
            Some(record) => crate::error::ensure_or_refuse!(
                targets.redis.len() == record.nodes.len()
                    && targets.backends.len() == record.backends,
                "{} records {} nodes and {} backends, but {} nodes and {} backends run: nothing was changed; bring the stack back whole and run the stage again",
                dir.display(),
                record.nodes.len(),
                record.backends,
                targets.redis.len(),
                targets.backends.len()
            ),
            // A single-node stack is one Redis and one backend (a stopped compose container is
            // not listed either).
            None => crate::error::ensure_or_refuse!(
                targets.redis.len() == targets.backends.len(),
                "the stack of {} runs {} Redis and {} backend(s): nothing was changed; bring the stack back whole (`cargo xtask secure-up`) and run the stage again",
                dir.display(),
                targets.redis.len(),
                targets.backends.len()
            ),
        }
    }
    // Every Redis that uses the directory must answer its admin before a file changes.
    for redis in &targets.redis {
        admin(dir, redis, "PING").step(|| {
            format!(
                "{redis} does not answer as cache_admin: nothing was changed; bring it back (or take it out of the stack) and run the stage again"
            )
        })?;
    }
    Ok(())
}

/// Whether `stage` may run now: refused, before any file changes, while another stage is in
/// progress, while a running process disagrees with the directory (unless `stage` is the one
/// that completes it), and for `retire` while any backend authenticates with another password
/// than the password file's (the old hashes would leave Redis before every client confirmed
/// the new password).
fn admit(
    dir: &Path,
    stage: Stage,
    record: &RotationRecord,
    report: Option<&RotationReport>,
) -> Result<()> {
    let completing = record.completing_stage();
    let command = rotation::stage_command(dir, completing);
    if let Some(p) = &record.in_progress
        && p.stage != stage
    {
        refuse!(
            "stage {} is in progress (started at Unix time {}, {}): nothing was changed; run `{command}` to complete it first",
            p.stage.as_str(),
            p.started_at,
            if p.files_written {
                "files written, not every running process confirmed"
            } else {
                "intent recorded"
            }
        );
    }
    let Some(report) = report else {
        return Ok(());
    };
    if stage == Stage::Retire {
        let want = &report.expected.redis_password_generation;
        for b in &report.backends {
            if b.redis_password_generation.as_ref() != Some(want) {
                refuse!(
                    "{} still authenticates with the old password (generation {}, the password file's is {want}): nothing was changed; {}",
                    b.backend,
                    b.redis_password_generation
                        .as_deref()
                        .unwrap_or("not reported"),
                    if completing == Stage::Promote {
                        format!("run `{command}`")
                    } else {
                        format!(
                            "restart it (it reads the password file at start), then run `{}`",
                            rotation::stage_command(dir, Stage::Retire)
                        )
                    }
                );
            }
        }
    }
    let problems = report.problems();
    if !problems.is_empty() && stage != completing {
        refuse!(
            "the running system disagrees with {}: {}: nothing was changed; run `{command}` to complete stage {} first",
            dir.display(),
            problems.join("; "),
            completing.as_str()
        );
    }
    Ok(())
}

/// Signals `backend` and waits until it has reloaded (its reload count went up), then until it
/// reports `expected` (the keyring file's key ids and the password file's generation). A refused
/// reload fails at once with the backend's reason.
fn confirm_backend(
    backend: &Backend,
    signal: &str,
    api_key: &str,
    expected: &Expected,
) -> Result<()> {
    let before = observe_backend(backend, api_key, expected);
    let Some(reloads) = before.reloads() else {
        refuse!(
            "{backend} cannot confirm the stage: {}",
            before.problems.join("; ")
        );
    };
    backend.signal(signal)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let now = observe_backend(backend, api_key, expected);
        if now.reloads().is_some_and(|n| n > reloads) {
            if let Some(why) = &now.last_refusal {
                refuse!(
                    "{backend} refused the reload and keeps its running keyring: {why}; its log says more"
                );
            }
            if now.problems.is_empty() {
                return Ok(());
            }
        }
        last = if now.problems.is_empty() {
            "no reload yet".to_owned()
        } else {
            now.problems.join("; ")
        };
        std::thread::sleep(Duration::from_millis(200));
    }
    refuse!("{backend} did not confirm the stage within 20 s: {last}; its log says why")
}

fn describe(outcome: &StageOutcome, progress: &mut dyn Progress) {
    let env = outcome.environment;
    match outcome.stage {
        Stage::Add if outcome.repeated => progress.mark(
            Mark::Ok,
            format!(
                "Stage add: files already written (key {} staged): reloading",
                outcome
                    .added_key_id
                    .map_or_else(|| "?".to_owned(), |id| id.to_string())
            ),
        ),
        Stage::Add => {
            progress.mark(
                Mark::Ok,
                format!(
                    "Key {} added decrypt-only; key {} still seals",
                    outcome.added_key_id.unwrap_or(0),
                    outcome.primary_key_id
                ),
            );
            progress.mark(Mark::Ok, format!(
                "New passwords for the Redis users ({}-bit, environment {env} as recorded in the directory) staged under {}; users.acl accepts old and new",
                sealcache_config_gen::password::required_bits(env),
                layout::PENDING_DIR
            ));
        }
        Stage::Promote if outcome.repeated => {
            progress.mark(Mark::Ok, "Stage promote: files already written: reloading");
        }
        Stage::Promote => {
            progress.mark(
                Mark::Ok,
                format!(
                    "Key {} seals; keys {:?} open only",
                    outcome.primary_key_id, outcome.decrypt_only_key_ids
                ),
            );
            if outcome.passwords_switched {
                progress.mark(
                    Mark::Ok,
                    "Clients' password files switched to the new passwords",
                );
            }
            if outcome.masterauth_switched {
                progress.mark(
                    Mark::Ok,
                    format!(
                        "cache_replication's password switched; {} holds the new masterauth",
                        cluster_dir::CLUSTER_CONF
                    ),
                );
            }
        }
        Stage::Retire => {
            if outcome.retired_key_ids.is_empty() {
                progress.mark(Mark::Ok, "No key retired");
            } else {
                progress.mark(
                    Mark::Ok,
                    format!(
                        "Keys {:?} retired{}",
                        outcome.retired_key_ids,
                        if outcome.forced {
                            " (forced: values sealed directly under them are misses now; entries under data keys, re-wrapped at promote, stay readable)"
                        } else {
                            ""
                        }
                    ),
                );
            }
            for (id, left) in &outcome.kept_key_ids {
                match left {
                    Some(s) => progress.mark(Mark::Waiting, format!(
                        "Key {id} kept: promoted less than the longest TTL ago ({s} s left); run retire again later, or --force"
                    )),
                    None => progress.mark(Mark::Waiting, format!(
                        "Key {id} kept: no promotion time is recorded for it; retire it with --force once the longest TTL has passed"
                    )),
                }
            }
            if outcome.acl_changed {
                progress.mark(Mark::Ok, "Old password hashes removed from users.acl");
            }
        }
    }
}
