//! Two-phase rotation of a running deployment: the encryption key and the Redis ACL passwords
//! change in stages, so that no process ever meets a value sealed under a key it lacks and no
//! client is ever refused (docs/security-model.md, "Key rotation").
//!
//! | stage | keyring | passwords |
//! |---|---|---|
//! | [`Stage::Add`] | a new key, **decrypt-only** (the primary is unchanged) | new passwords generated into `secrets/pending/`; their hashes added to `users.acl` beside the old ones |
//! | [`Stage::Promote`] | the new key becomes the primary, the old one decrypt-only | the clients' password files switch to the new passwords |
//! | [`Stage::Retire`] | decrypt-only keys demoted longer than the longest TTL ago are dropped (all of them with `force`) | the old hashes leave `users.acl` |
//!
//! In a cluster deployment ([`crate::cluster_dir`]) the replication user `cache_replication` is
//! rotated the same way, and `promote` also rewrites `masterauth` in
//! [`crate::cluster_dir::CLUSTER_CONF`], so that a restarted node authenticates with the new
//! password (the running nodes are told with `CONFIG SET masterauth` by the caller).
//!
//! # A state machine with a truthful record
//!
//! Each stage is three steps, each recorded in [`crate::layout::ROTATION_FILE`] (no secret in
//! it) before the next begins:
//!
//! 1. [`begin_stage`]: the **intent** ([`RotationRecord::in_progress`]: the stage, its start and
//!    the facts it planned, such as the key id `add` adds, the primary `promote` demotes or the
//!    keys `retire` drops) is written before any other file changes;
//! 2. [`rotate_stage`]: the stage's files, then the record of the stage reached, with
//!    [`InProgress::files_written`];
//! 3. [`confirm_stage`]: once the caller has made every running process take the files and seen
//!    each confirm it, the stage is complete (`in_progress` cleared).
//!
//! While a stage is in progress every other stage is refused with the one command that completes
//! it ([`stage_command`]); running the stage in progress again completes it from wherever it
//! stopped, reusing what the interrupted run planned and wrote (the same staged passwords, the
//! same new key id, the same keys to drop): never a second new key or a third password hash.
//!
//! This module changes the files only; reloading the running processes (Redis `ACL LOAD`, a
//! `SIGHUP` to the backends) is the caller's (`cargo xtask config rotate`). The environment is the
//! one the directory records (`ENVIRONMENT` in its `.env`), never detected again. Every file is
//! replaced by write-temp-then-rename with the owner and mode of the file it replaces, so the
//! containers' user can still read it.

mod files;
mod record;

/// The keyring file of `dir`, read as [`files::read_regular`] reads (no link, no FIFO, bounded).
///
/// # Errors
/// The file cannot be read that way, or is not a keyring.
pub fn read_keyring(dir: &Path) -> Result<Keyring> {
    let path = dir.join(layout::ENCRYPTION_KEYRING);
    let text = files::read_regular_text(&path).map_err(io("cannot read", &path))?;
    Ok(Keyring::parse(&text)?)
}

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::{Duration, SystemTime};

use sealcache_codec::{Keyring, SecretKey};
use sealcache_env_detect::Environment;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use self::files::{
    acl_hashes, read_regular, read_regular_text, replace_file, upgrade_layout, with_masterauth,
};
pub use self::record::{
    InProgress, RecordedStage, RotationRecord, read_record, stage_command, write_record,
};

use self::files::{acl_add_hash, acl_keep_only, owned_dir, pending_path, read_password};
use self::record::unconfirmed;
use crate::acl;
use crate::error::{Error, Result, io};
use crate::layout;
use crate::password;
use crate::secret::SecretString;

/// The longest TTL of the cache's default TTL policy (`summarize`, 7200 s): how long an old key
/// must stay decrypt-only after its promotion.
pub const DEFAULT_LONGEST_TTL: Duration = Duration::from_secs(7200);

/// The ACL users and their password files.
pub const USERS: [(&str, &str); 4] = [
    (acl::APP_USER, layout::APP_PASSWORD),
    (acl::HEALTH_USER, layout::HEALTH_PASSWORD),
    (acl::MONITOR_USER, layout::MONITOR_PASSWORD),
    (acl::ADMIN_USER, layout::ADMIN_PASSWORD),
];

/// The ACL users of `dir` and their password files: [`USERS`], and the replication user in a
/// cluster deployment.
///
/// # Errors
/// An unreadable cluster record.
pub fn users(dir: &Path) -> Result<Vec<(&'static str, &'static str)>> {
    let mut users = USERS.to_vec();
    if crate::cluster_dir::cluster_record(dir)?.is_some() {
        users.push((
            acl::REPLICATION_USER,
            crate::cluster_dir::REPLICATION_PASSWORD,
        ));
    }
    Ok(users)
}

/// A rotation stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// New key decrypt-only, new passwords accepted beside the old ones.
    Add,
    /// New key primary, clients switched to the new passwords.
    Promote,
    /// Old keys (after the longest TTL) and old password hashes removed.
    Retire,
}

impl Stage {
    /// `add`, `promote` or `retire`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Add => "add",
            Stage::Promote => "promote",
            Stage::Retire => "retire",
        }
    }
}

/// Options of [`rotate_stage`].
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// Retire decrypt-only keys even when their promotion is younger than `longest_ttl` (or
    /// unknown). Their values become misses (`unknown_key_id`). A `retire` already in progress
    /// keeps the keys its intent planned, whatever this says.
    pub force: bool,
    /// How long a demoted key is kept ([`DEFAULT_LONGEST_TTL`]).
    pub longest_ttl: Duration,
    /// The time the stage runs at (a parameter for tests).
    pub now: SystemTime,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            force: false,
            longest_ttl: DEFAULT_LONGEST_TTL,
            now: SystemTime::now(),
        }
    }
}

/// What a stage changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageOutcome {
    /// The stage.
    pub stage: Stage,
    /// The environment recorded in the directory (it set the password strength).
    pub environment: Environment,
    /// The primary key id after the stage.
    pub primary_key_id: u32,
    /// The decrypt-only key ids after the stage.
    pub decrypt_only_key_ids: Vec<u32>,
    /// The key `add` staged (or found staged already).
    pub added_key_id: Option<u32>,
    /// Keys `retire` drops (planned by its intent; some may have left the file in an earlier,
    /// interrupted run).
    pub retired_key_ids: Vec<u32>,
    /// Decrypt-only keys `retire` kept, with the seconds left until they may go (`None`: no
    /// promotion time is recorded for them).
    pub kept_key_ids: Vec<(u32, Option<u64>)>,
    /// `retire` dropped a key younger than the longest TTL (or of unknown age): the backends must
    /// reload without their own live-key check.
    pub forced: bool,
    /// `users.acl` changed: Redis must load it.
    pub acl_changed: bool,
    /// The clients' password files switched.
    pub passwords_switched: bool,
    /// A cluster deployment's replication password switched (`cluster.conf`'s `masterauth` too):
    /// the running nodes need `CONFIG SET masterauth`.
    pub masterauth_switched: bool,
    /// The stage's files had all been written already (the stage is being completed, or run
    /// again): nothing was generated, the caller only reloads.
    pub repeated: bool,
    /// Files written, relative to the directory.
    pub files: Vec<String>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rotation_error(message: impl Into<String>) -> Error {
    Error::Rotation(message.into())
}

/// The environment `dir` records (`ENVIRONMENT` in its `.env`); `unknown` (the production policy)
/// when it records none. Never detected from the running process.
///
/// # Errors
/// An unreadable `.env`, or a value that names no environment.
pub fn recorded_environment(dir: &Path) -> Result<Environment> {
    let vars = crate::env_file::read(&dir.join(layout::ENV_FILE))?;
    match vars.get("ENVIRONMENT").map(|v| v.trim()) {
        None | Some("") => Ok(Environment::Unknown),
        Some(name) => name.parse().map_err(|_| Error::InvalidSetting {
            what: "ENVIRONMENT",
            reason: "the deployment's .env records no known environment (development, testing, staging, production, unknown)",
        }),
    }
}

/// Which Redis password a client uses, as a backend reports it (`redis_password_generation` in its
/// security status): the first 12 hex digits of the password's SHA-256, the start of its
/// `users.acl` hash. Names a password without revealing it.
#[must_use]
pub fn password_generation(password: &SecretString) -> String {
    acl::password_hash(password)
        .chars()
        .skip(1)
        .take(12)
        .collect()
}

/// [`password_generation`] of the password file `rel` of `dir`.
///
/// # Errors
/// An unreadable or empty file.
pub fn password_file_generation(dir: &Path, rel: &str) -> Result<String> {
    Ok(password_generation(&read_password(&dir.join(rel))?))
}

/// Counts the file changes of a stage. A test makes the stage stop before the `n`-th (0-based),
/// as a crash there would.
#[derive(Debug, Default)]
struct Mutations {
    crash_before: Option<usize>,
    done: usize,
}

impl Mutations {
    fn next(&mut self) -> Result<()> {
        if self.crash_before == Some(self.done) {
            return Err(rotation_error("the stage was interrupted (test)"));
        }
        self.done += 1;
        Ok(())
    }

    fn write(
        &mut self,
        dir: &Path,
        rel: &str,
        contents: &[u8],
        outcome: &mut StageOutcome,
    ) -> Result<()> {
        self.next()?;
        replace_file(&dir.join(rel), contents)?;
        outcome.files.push(rel.to_owned());
        Ok(())
    }
}

/// Records the intent of `stage` in `dir`'s rotation record, before any other file changes, and
/// returns it; when `stage` is already in progress, returns its recorded intent unchanged.
///
/// # Errors
/// [`Error::NothingToRotate`] when the directory holds no deployment; [`Error::Rotation`] when
/// another stage is in progress (naming the command that completes it) or the stage does not
/// follow the recorded one; I/O and keyring errors.
pub fn begin_stage(dir: &Path, stage: Stage, opts: &RotateOptions) -> Result<InProgress> {
    begin(dir, stage, opts, &mut Mutations::default()).map(|(_, plan)| plan)
}

/// Runs one rotation stage on the files of `dir` (see the module docs): records its intent
/// ([`begin_stage`]) unless it is in progress already, writes its files, and records the stage
/// reached. The stage stays in progress until [`confirm_stage`].
///
/// Running the stage in progress again completes it from where it stopped; running `add` or
/// `promote` again after it completed changes no file. Either way [`StageOutcome::repeated`]
/// tells the caller to reload only.
///
/// # Errors
/// As [`begin_stage`]; I/O, keyring and randomness errors. Files are written in an order that
/// leaves every intermediate state usable by the running processes.
pub fn rotate_stage(dir: &Path, stage: Stage, opts: &RotateOptions) -> Result<StageOutcome> {
    run(dir, stage, opts, &mut Mutations::default())
}

/// Records `stage` complete in `dir` (clears [`RotationRecord::in_progress`]): call it once every
/// running process that uses the directory confirmed the stage's files. `promote` records the
/// demoted key's demotion at `now`, when no process seals with it any more. Nothing to do when no
/// stage is in progress.
///
/// # Errors
/// [`Error::Rotation`] when another stage is in progress, or this one has not written its files;
/// I/O errors.
pub fn confirm_stage(dir: &Path, stage: Stage, now: SystemTime) -> Result<RotationRecord> {
    let mut record = read_record(dir)?;
    let Some(plan) = record.in_progress.clone() else {
        return Ok(record);
    };
    if plan.stage != stage {
        return Err(unconfirmed(dir, &plan));
    }
    if !plan.files_written {
        return Err(rotation_error(format!(
            "stage {} has not written its files yet: run `{}`",
            stage.as_str(),
            stage_command(dir, stage)
        )));
    }
    if let Some(demoted) = plan.demoted_key_id
        && let Some(at) = record.demoted_at.get_mut(&demoted)
    {
        *at = (*at).max(unix(now));
    }
    record.in_progress = None;
    write_record(dir, &record)?;
    Ok(record)
}

fn run(dir: &Path, stage: Stage, opts: &RotateOptions, m: &mut Mutations) -> Result<StageOutcome> {
    let (record, plan) = begin(dir, stage, opts, m)?;
    write_files(dir, record, plan, opts, m)
}

/// The id [`Keyring::with_decrypt_only_key`] gives the next key: one above the highest.
fn next_key_id(ring: &Keyring) -> u32 {
    ring.keys()
        .map(|(id, _)| id)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

fn begin(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    m: &mut Mutations,
) -> Result<(RotationRecord, InProgress)> {
    let users = users(dir)?;
    for rel in [
        layout::ENV_FILE,
        layout::ENCRYPTION_KEYRING,
        layout::USERS_ACL,
    ]
    .into_iter()
    .chain(users.iter().map(|(_, file)| *file))
    {
        if !dir.join(rel).is_file() {
            return Err(Error::NothingToRotate {
                path: dir.to_path_buf(),
                missing: rel,
            });
        }
    }
    let environment = recorded_environment(dir)?;
    let mut record = read_record(dir)?;
    if let Some(plan) = &record.in_progress {
        if plan.stage != stage {
            return Err(unconfirmed(dir, plan));
        }
        let plan = plan.clone();
        return Ok((record, plan));
    }
    let ring = read_keyring(dir)?;
    let now = unix(opts.now);
    let mut plan = InProgress::new(stage, now);
    match stage {
        Stage::Add => match record.stage {
            RecordedStage::Promoted => {
                return Err(rotation_error(format!(
                    "the last rotation was promoted but not retired: retire first: run `{}`",
                    stage_command(dir, Stage::Retire)
                )));
            }
            RecordedStage::Added => {
                plan.files_written = true;
                plan.key_id = record.staged_key_id;
            }
            RecordedStage::Idle => plan.key_id = Some(next_key_id(&ring)),
        },
        Stage::Promote => match record.stage {
            RecordedStage::Idle => {
                return Err(rotation_error(format!(
                    "nothing is staged: add first: run `{}`",
                    stage_command(dir, Stage::Add)
                )));
            }
            RecordedStage::Promoted => {
                plan.files_written = true;
                plan.key_id = Some(ring.primary_id());
            }
            RecordedStage::Added => {
                let staged = record
                    .staged_key_id
                    .filter(|id| ring.key(*id).is_some())
                    .ok_or_else(|| {
                        rotation_error(format!(
                            "the staged key is not in {}: the directory was changed by hand; restore the keyring",
                            layout::ENCRYPTION_KEYRING
                        ))
                    })?;
                plan.key_id = Some(staged);
                plan.demoted_key_id = Some(ring.primary_id()).filter(|p| *p != staged);
            }
        },
        Stage::Retire => {
            if record.stage == RecordedStage::Added {
                return Err(rotation_error(format!(
                    "a new key and passwords are staged but not promoted: promote first: run `{}`",
                    stage_command(dir, Stage::Promote)
                )));
            }
            // Keys: those demoted longer than the longest TTL ago (every one with `force`).
            let ttl = opts.longest_ttl.as_secs();
            for id in ring.decrypt_only_ids() {
                let age = record.demoted_at.get(&id).map(|t| now.saturating_sub(*t));
                let old_enough = age.is_some_and(|a| a >= ttl);
                if old_enough || opts.force {
                    plan.retired_key_ids.push(id);
                    plan.forced |= !old_enough;
                }
            }
        }
    }
    record.environment = Some(environment.as_str().to_owned());
    record.in_progress = Some(plan.clone());
    m.next()?;
    write_record(dir, &record)?;
    Ok((record, plan))
}

/// The decrypt-only keys of `ring`, with the seconds left until each may be retired.
fn kept(ring: &Keyring, record: &RotationRecord, opts: &RotateOptions) -> Vec<(u32, Option<u64>)> {
    let (now, ttl) = (unix(opts.now), opts.longest_ttl.as_secs());
    ring.decrypt_only_ids()
        .into_iter()
        .map(|id| {
            let age = record.demoted_at.get(&id).map(|t| now.saturating_sub(*t));
            (id, age.map(|a| ttl.saturating_sub(a)))
        })
        .collect()
}

#[allow(clippy::too_many_lines)] // one arm per stage, each a short sequence of file writes
fn write_files(
    dir: &Path,
    mut record: RotationRecord,
    mut plan: InProgress,
    opts: &RotateOptions,
    m: &mut Mutations,
) -> Result<StageOutcome> {
    let users = users(dir)?;
    let environment = recorded_environment(dir)?;
    let acl_path = dir.join(layout::USERS_ACL);
    let ring = read_keyring(dir)?;
    let acl_text = files::read_regular_text(&acl_path).map_err(io("cannot read", &acl_path))?;
    let mut outcome = StageOutcome {
        stage: plan.stage,
        environment,
        primary_key_id: ring.primary_id(),
        decrypt_only_key_ids: ring.decrypt_only_ids(),
        added_key_id: None,
        retired_key_ids: plan.retired_key_ids.clone(),
        kept_key_ids: Vec::new(),
        forced: plan.forced,
        acl_changed: false,
        passwords_switched: false,
        masterauth_switched: false,
        repeated: plan.files_written,
        files: Vec::new(),
    };
    if plan.stage == Stage::Add {
        outcome.added_key_id = plan.key_id;
    }
    if plan.files_written {
        if plan.stage == Stage::Retire {
            outcome.kept_key_ids = kept(&ring, &record, opts);
        }
        return Ok(outcome);
    }

    match plan.stage {
        Stage::Add => {
            let id = plan
                .key_id
                .ok_or_else(|| rotation_error("the add in progress records no key id"))?;
            // Passwords first: accepted by Redis before anyone could use them.
            owned_dir(dir, layout::PENDING_DIR)?;
            let bits = password::required_bits(environment);
            let mut acl = (*acl_text).clone();
            for &(user, live) in &users {
                let rel = pending_path(live);
                // A password an interrupted run staged is kept: Redis may accept it already.
                let next = match read_password(&dir.join(&rel)) {
                    Ok(staged) => staged,
                    Err(_) => {
                        let next = password::generate(bits)?;
                        m.write(dir, &rel, next.expose_secret().as_bytes(), &mut outcome)?;
                        next
                    }
                };
                acl = acl_add_hash(&acl, user, &acl::password_hash(&next))?;
            }
            if acl != *acl_text {
                m.write(dir, layout::USERS_ACL, acl.as_bytes(), &mut outcome)?;
                outcome.acl_changed = true;
            }
            // The key the intent planned, unless an interrupted run added it already.
            if ring.key(id).is_none() {
                let (added, got) = ring.with_decrypt_only_key(SecretKey::generate()?);
                if got != id {
                    return Err(rotation_error(format!(
                        "the add in progress planned key {id}, but the keyring's next id is {got}: the keyring was changed by hand"
                    )));
                }
                m.write(
                    dir,
                    layout::ENCRYPTION_KEYRING,
                    added.to_text().as_bytes(),
                    &mut outcome,
                )?;
                outcome.decrypt_only_key_ids = added.decrypt_only_ids();
            }
            record.stage = RecordedStage::Added;
            record.staged_key_id = Some(id);
            record.added_at = Some(plan.started_at);
        }
        Stage::Promote => {
            let staged = plan
                .key_id
                .filter(|id| ring.key(*id).is_some())
                .ok_or_else(|| {
                    rotation_error(format!(
                        "the key promote planned is not in {}: the directory was changed by hand; restore the keyring",
                        layout::ENCRYPTION_KEYRING
                    ))
                })?;
            let hashes = acl_hashes(&acl_text);
            let accepted = |user: &str, password: &SecretString| {
                let hash = acl::password_hash(password);
                hashes
                    .get(user)
                    .is_some_and(|h| h.contains(hash.trim_start_matches('#')))
            };
            // Every password a client will use must already be accepted by users.acl.
            let mut switch = Vec::new();
            for &(user, live) in &users {
                let pending = dir.join(pending_path(live));
                if pending.is_file() {
                    let next = read_password(&pending)?;
                    if !accepted(user, &next) {
                        return Err(rotation_error(format!(
                            "users.acl does not accept {user}'s staged password: the directory was changed by hand; restore users.acl"
                        )));
                    }
                    switch.push((live, pending, next));
                } else if !accepted(user, &read_password(&dir.join(live))?) {
                    // Switched by an interrupted run: its password must be accepted too.
                    return Err(rotation_error(format!(
                        "users.acl does not accept {user}'s current password: the directory was changed by hand; restore users.acl"
                    )));
                }
            }
            if ring.primary_id() != staged {
                let promoted = ring.with_primary(staged)?;
                m.write(
                    dir,
                    layout::ENCRYPTION_KEYRING,
                    promoted.to_text().as_bytes(),
                    &mut outcome,
                )?;
                outcome.primary_key_id = promoted.primary_id();
                outcome.decrypt_only_key_ids = promoted.decrypt_only_ids();
            }
            // Each password file, then (cluster) cluster.conf, and only then the pending file: a
            // run interrupted anywhere in between finds the pending file and writes both again.
            for (live, pending, next) in switch {
                m.write(dir, live, next.expose_secret().as_bytes(), &mut outcome)?;
                if live == crate::cluster_dir::REPLICATION_PASSWORD {
                    let conf = dir.join(crate::cluster_dir::CLUSTER_CONF);
                    let text = Zeroizing::new(
                        files::read_regular_text(&conf)
                            .map_err(io("cannot read", &conf))?
                            .to_string(),
                    );
                    let text = with_masterauth(&text, &next);
                    m.write(
                        dir,
                        crate::cluster_dir::CLUSTER_CONF,
                        text.as_bytes(),
                        &mut outcome,
                    )?;
                    outcome.masterauth_switched = true;
                }
                m.next()?;
                std::fs::remove_file(&pending).map_err(io("cannot remove", &pending))?;
                outcome.passwords_switched = true;
            }
            // Provisional: confirm_stage moves it to when every process confirmed.
            if let Some(demoted) = plan.demoted_key_id {
                record.demoted_at.insert(demoted, plan.started_at);
            }
            record.demoted_at.remove(&staged);
            record.stage = RecordedStage::Promoted;
            record.staged_key_id = None;
            record.promoted_at = Some(plan.started_at);
        }
        Stage::Retire => {
            // Passwords: only the current one stays for each user.
            let mut acl = (*acl_text).clone();
            for &(user, live) in &users {
                let current = read_password(&dir.join(live))?;
                acl = acl_keep_only(&acl, user, &acl::password_hash(&current))?;
            }
            if acl != *acl_text {
                m.write(dir, layout::USERS_ACL, acl.as_bytes(), &mut outcome)?;
                outcome.acl_changed = true;
            }
            let pending = dir.join(layout::PENDING_DIR);
            if pending.is_dir() {
                m.next()?;
                let _ = std::fs::remove_dir_all(&pending);
            }
            // Keys: exactly those the intent planned (some may be gone already).
            let mut kept_ring = ring.clone();
            for id in &plan.retired_key_ids {
                if kept_ring.key(*id).is_some() && *id != kept_ring.primary_id() {
                    kept_ring = kept_ring.without_key(*id)?;
                }
                record.demoted_at.remove(id);
            }
            if kept_ring.decrypt_only_ids() != ring.decrypt_only_ids() {
                m.write(
                    dir,
                    layout::ENCRYPTION_KEYRING,
                    kept_ring.to_text().as_bytes(),
                    &mut outcome,
                )?;
                outcome.decrypt_only_key_ids = kept_ring.decrypt_only_ids();
            }
            outcome.kept_key_ids = kept(&kept_ring, &record, opts);
            record.stage = RecordedStage::Idle;
            record.retired_at = Some(plan.started_at);
        }
    }
    plan.files_written = true;
    record.in_progress = Some(plan);
    m.next()?;
    write_record(dir, &record)?;
    outcome.files.push(layout::ROTATION_FILE.to_owned());
    Ok(outcome)
}
