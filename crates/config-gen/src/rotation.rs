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
//! This module changes the files only; reloading the running processes (Redis `ACL LOAD`, a
//! `SIGHUP` to the backends) is the caller's (`cargo xtask config rotate`). The environment is the
//! one the directory records (`ENVIRONMENT` in its `.env`), never detected again. Every file is
//! replaced by write-temp-then-rename with the owner and mode of the file it replaces, so the
//! containers' user can still read it. The stages and their times are kept in
//! [`crate::layout::ROTATION_FILE`] (no secret in it).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::DirBuilder;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sealcache_codec::{Keyring, SecretKey};
use sealcache_env_detect::Environment;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::acl;
use crate::error::{Error, Result, io};
use crate::layout::{self, container_path};
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

/// `text` (redis.conf directives) with every `masterauth` line set to `password`.
#[must_use]
pub fn with_masterauth(text: &str, password: &SecretString) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() + 64));
    for line in text.lines() {
        if line.split_whitespace().next() == Some("masterauth") {
            out.push_str("masterauth ");
            out.push_str(&crate::redis_conf::quoted(password.expose_secret()));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A rotation stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// unknown). Their values become misses (`unknown_key_id`).
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

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedStage {
    /// No rotation in progress.
    #[default]
    Idle,
    /// `add` done: promote next.
    Added,
    /// `promote` done: retire next.
    Promoted,
}

/// The rotation record (`rotation.json`): stages and Unix times in seconds, no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RotationRecord {
    /// The stage reached.
    pub stage: RecordedStage,
    /// The environment the directory records (informational).
    pub environment: Option<String>,
    /// The key added by `add` and not promoted yet.
    pub staged_key_id: Option<u32>,
    /// When the last `add` ran.
    pub added_at: Option<u64>,
    /// When the last `promote` ran.
    pub promoted_at: Option<u64>,
    /// When the last `retire` ran.
    pub retired_at: Option<u64>,
    /// When each decrypt-only key stopped being the primary (by key id).
    pub demoted_at: BTreeMap<u32, u64>,
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
    /// Keys `retire` dropped.
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
    /// The stage had already run (`add` or `promote` again): nothing was generated, the caller
    /// only reloads.
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

/// The rotation record of `dir` (an empty one when there is none yet).
///
/// # Errors
/// An unreadable or malformed `rotation.json`.
pub fn read_record(dir: &Path) -> Result<RotationRecord> {
    let path = dir.join(layout::ROTATION_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|_| rotation_error(format!("{} is not a rotation record", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RotationRecord::default()),
        Err(e) => Err(io("cannot read", &path)(e)),
    }
}

/// Replaces `path` with `contents` atomically (a temporary file in the same directory, synced,
/// then renamed over it), keeping the owner and mode of the file it replaces; a new file gets mode
/// 0600 and the owner of its directory. Running as root, this is what keeps a file the containers'
/// user owned readable by it.
///
/// # Errors
/// I/O failures, including handing the file to its owner.
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| rotation_error(format!("{} has no directory", path.display())))?;
    let (mode, owner) = match std::fs::metadata(path) {
        Ok(m) => (m.permissions().mode() & 0o7777, (m.uid(), m.gid())),
        Err(_) => {
            let d = std::fs::metadata(parent).map_err(io("cannot read", parent))?;
            (0o600, (d.uid(), d.gid()))
        }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.sealcache-tmp"));
    let mut file = crate::deploy_dir::create_private_tmp(&tmp)?;
    let written = (|| {
        file.write_all(contents)?;
        let m = file.metadata()?;
        if (m.uid(), m.gid()) != owner {
            std::os::unix::fs::fchown(&file, Some(owner.0), Some(owner.1))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("cannot write", &tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(io("cannot replace", path))?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `dir/relative` (mode 0700, owned like the secrets directory) when missing.
fn owned_dir(dir: &Path, relative: &str) -> Result<PathBuf> {
    let path = dir.join(relative);
    if path.is_dir() {
        return Ok(path);
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&path)
        .map_err(io("cannot create directory", &path))?;
    let secrets = dir.join(layout::SECRETS_DIR);
    let owner = std::fs::metadata(&secrets).map_err(io("cannot read", &secrets))?;
    let made = std::fs::metadata(&path).map_err(io("cannot read", &path))?;
    if (made.uid(), made.gid()) != (owner.uid(), owner.gid()) {
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
            .map_err(io("cannot hand over", &path))?;
    }
    Ok(path)
}

/// Files of the layout before the rotating secrets moved into directories mounted whole, and
/// where they live now.
const MOVED: [(&str, &str); 5] = [
    ("secrets/users.acl", layout::USERS_ACL),
    ("secrets/redis_health_password", layout::HEALTH_PASSWORD),
    ("secrets/redis_app_password", layout::APP_PASSWORD),
    ("secrets/redis_monitor_password", layout::MONITOR_PASSWORD),
    ("secrets/encryption_keyring", layout::ENCRYPTION_KEYRING),
];

/// Moves the files of a directory generated before the rotating secrets got their own mounted
/// directories (`secrets/users.acl`, ...) to their places ([`crate::layout`]) and rewrites the
/// `.env` paths that name them. Returns the files moved (none for a current directory). Files
/// keep their owner and mode; the new directories get the secrets directory's owner.
///
/// # Errors
/// I/O failures.
pub fn upgrade_layout(dir: &Path) -> Result<Vec<String>> {
    let mut moved = Vec::new();
    for (old, new) in MOVED {
        let from = dir.join(old);
        let to = dir.join(new);
        if !from.is_file() || to.exists() {
            continue;
        }
        let sub = Path::new(new)
            .parent()
            .and_then(Path::to_str)
            .unwrap_or(layout::SECRETS_DIR);
        owned_dir(dir, sub)?;
        std::fs::rename(&from, &to).map_err(io("cannot move", &from))?;
        moved.push(new.to_owned());
    }
    let env = dir.join(layout::ENV_FILE);
    if !moved.is_empty() && env.is_file() {
        let text = Zeroizing::new(std::fs::read_to_string(&env).map_err(io("cannot read", &env))?);
        let mut out = String::with_capacity(text.len() + 64);
        for line in text.lines() {
            let replaced = MOVED.iter().find_map(|(old, new)| {
                let (name, value) = line.split_once('=')?;
                (value.trim() == container_path(old))
                    .then(|| format!("{name}={}", container_path(new)))
            });
            out.push_str(replaced.as_deref().unwrap_or(line));
            out.push('\n');
        }
        if out != *text {
            replace_file(&env, out.as_bytes())?;
        }
    }
    Ok(moved)
}

/// Every `#hash` of each user in an ACL file's text (lowercase hex, without the `#`).
#[must_use]
pub fn acl_hashes(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (user, hash) in acl::facts(text).hashes {
        out.entry(user).or_default().insert(hash);
    }
    out
}

/// `text` with `hash` (`#` + hex) added to `user`'s rules after its last hash, unless present.
fn acl_add_hash(text: &str, user: &str, hash: &str) -> Result<String> {
    edit_user_line(text, user, |words| {
        if !words.iter().any(|w| w.eq_ignore_ascii_case(hash)) {
            let at = words
                .iter()
                .rposition(|w| w.starts_with('#'))
                .map_or(words.len().min(3), |i| i + 1);
            words.insert(at, hash.to_owned());
        }
        Ok(())
    })
}

/// `text` with every hash of `user` but `keep` removed; refused when `keep` is not among them
/// (the user would be locked out).
fn acl_keep_only(text: &str, user: &str, keep: &str) -> Result<String> {
    edit_user_line(text, user, |words| {
        if !words.iter().any(|w| w.eq_ignore_ascii_case(keep)) {
            return Err(rotation_error(format!(
                "users.acl does not accept {user}'s current password: refusing to remove its other hashes (run --stage promote first, or repair the file)"
            )));
        }
        words.retain(|w| !w.starts_with('#') || w.eq_ignore_ascii_case(keep));
        Ok(())
    })
}

fn edit_user_line(
    text: &str,
    user: &str,
    edit: impl FnOnce(&mut Vec<String>) -> Result<()>,
) -> Result<String> {
    let mut edit = Some(edit);
    let mut out = String::with_capacity(text.len() + 80);
    for line in text.lines() {
        let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if words.first().map(String::as_str) == Some("user")
            && words.get(1).map(String::as_str) == Some(user)
            && let Some(edit) = edit.take()
        {
            edit(&mut words)?;
            out.push_str(&words.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if edit.is_some() {
        return Err(rotation_error(format!("users.acl has no user {user}")));
    }
    Ok(out)
}

fn read_password(path: &Path) -> Result<SecretString> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io("cannot read", path))?);
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(rotation_error(format!("{} is empty", path.display())));
    }
    Ok(SecretString::new(trimmed.to_owned()))
}

fn pending_path(live: &str) -> String {
    let name = live.rsplit('/').next().unwrap_or(live);
    format!("{}/{name}", layout::PENDING_DIR)
}

/// Runs one rotation stage on the files of `dir` (see the module docs) and records it.
///
/// Running `add` or `promote` again before the next stage changes nothing and reports
/// [`StageOutcome::repeated`], so a reload that failed can be retried.
///
/// # Errors
/// [`Error::NothingToRotate`] when the directory holds no deployment; [`Error::Rotation`] when the
/// stage does not follow the recorded one; I/O, keyring and randomness errors. Files are written
/// in an order that leaves every intermediate state usable by the running processes.
pub fn rotate_stage(dir: &Path, stage: Stage, opts: &RotateOptions) -> Result<StageOutcome> {
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
    record.environment = Some(environment.as_str().to_owned());
    let now = unix(opts.now);
    let keyring_path = dir.join(layout::ENCRYPTION_KEYRING);
    let acl_path = dir.join(layout::USERS_ACL);
    let ring = Keyring::from_file(&keyring_path)?;
    let acl_text =
        Zeroizing::new(std::fs::read_to_string(&acl_path).map_err(io("cannot read", &acl_path))?);
    let mut outcome = StageOutcome {
        stage,
        environment,
        primary_key_id: ring.primary_id(),
        decrypt_only_key_ids: ring.decrypt_only_ids(),
        added_key_id: None,
        retired_key_ids: Vec::new(),
        kept_key_ids: Vec::new(),
        forced: false,
        acl_changed: false,
        passwords_switched: false,
        masterauth_switched: false,
        repeated: false,
        files: Vec::new(),
    };
    let write = |rel: &str, contents: &[u8], outcome: &mut StageOutcome| -> Result<()> {
        replace_file(&dir.join(rel), contents)?;
        outcome.files.push(rel.to_owned());
        Ok(())
    };

    match stage {
        Stage::Add => {
            match record.stage {
                RecordedStage::Promoted => {
                    return Err(rotation_error(
                        "the last rotation was promoted but not retired: run --stage retire first",
                    ));
                }
                RecordedStage::Added => {
                    outcome.repeated = true;
                    outcome.added_key_id = record.staged_key_id;
                    return finish(dir, &record, outcome);
                }
                RecordedStage::Idle => {}
            }
            // Passwords first: accepted by Redis before anyone could use them.
            owned_dir(dir, layout::PENDING_DIR)?;
            let bits = password::required_bits(environment);
            let mut acl = (*acl_text).clone();
            for &(user, live) in &users {
                let next = password::generate(bits)?;
                write(
                    &pending_path(live),
                    next.expose_secret().as_bytes(),
                    &mut outcome,
                )?;
                acl = acl_add_hash(&acl, user, &acl::password_hash(&next))?;
            }
            write(layout::USERS_ACL, acl.as_bytes(), &mut outcome)?;
            outcome.acl_changed = true;
            let (added, id) = ring.with_decrypt_only_key(SecretKey::generate()?);
            write(
                layout::ENCRYPTION_KEYRING,
                added.to_text().as_bytes(),
                &mut outcome,
            )?;
            outcome.added_key_id = Some(id);
            outcome.decrypt_only_key_ids = added.decrypt_only_ids();
            record.stage = RecordedStage::Added;
            record.staged_key_id = Some(id);
            record.added_at = Some(now);
        }
        Stage::Promote => {
            match record.stage {
                RecordedStage::Idle => {
                    return Err(rotation_error(
                        "nothing is staged: run --stage add first (and reload every backend)",
                    ));
                }
                RecordedStage::Promoted => {
                    outcome.repeated = true;
                    return finish(dir, &record, outcome);
                }
                RecordedStage::Added => {}
            }
            let staged = record
                .staged_key_id
                .filter(|id| ring.key(*id).is_some())
                .ok_or_else(|| {
                    rotation_error(format!(
                        "the staged key is not in {}: run --stage add again",
                        layout::ENCRYPTION_KEYRING
                    ))
                })?;
            let hashes = acl_hashes(&acl_text);
            // Every pending password must already be accepted by users.acl.
            let mut switch = Vec::new();
            for &(user, live) in &users {
                let pending = dir.join(pending_path(live));
                if !pending.is_file() {
                    continue;
                }
                let next = read_password(&pending)?;
                let hash = acl::password_hash(&next);
                let accepted = hashes
                    .get(user)
                    .is_some_and(|h| h.contains(hash.trim_start_matches('#')));
                if !accepted {
                    return Err(rotation_error(format!(
                        "users.acl does not accept {user}'s staged password: run --stage add again"
                    )));
                }
                switch.push((live, pending, next));
            }
            let previous = ring.primary_id();
            if previous != staged {
                let promoted = ring.with_primary(staged)?;
                write(
                    layout::ENCRYPTION_KEYRING,
                    promoted.to_text().as_bytes(),
                    &mut outcome,
                )?;
                record.demoted_at.insert(previous, now);
                outcome.primary_key_id = promoted.primary_id();
                outcome.decrypt_only_key_ids = promoted.decrypt_only_ids();
            }
            for (live, pending, next) in switch {
                write(live, next.expose_secret().as_bytes(), &mut outcome)?;
                if live == crate::cluster_dir::REPLICATION_PASSWORD {
                    let conf = dir.join(crate::cluster_dir::CLUSTER_CONF);
                    let text = Zeroizing::new(
                        std::fs::read_to_string(&conf).map_err(io("cannot read", &conf))?,
                    );
                    let text = with_masterauth(&text, &next);
                    write(
                        crate::cluster_dir::CLUSTER_CONF,
                        text.as_bytes(),
                        &mut outcome,
                    )?;
                    outcome.masterauth_switched = true;
                }
                std::fs::remove_file(&pending).map_err(io("cannot remove", &pending))?;
                outcome.passwords_switched = true;
            }
            record.demoted_at.remove(&staged);
            record.stage = RecordedStage::Promoted;
            record.staged_key_id = None;
            record.promoted_at = Some(now);
        }
        Stage::Retire => {
            if record.stage == RecordedStage::Added {
                return Err(rotation_error(
                    "a new key and passwords are staged but not promoted: run --stage promote first",
                ));
            }
            // Passwords: only the current one stays for each user.
            let mut acl = (*acl_text).clone();
            for &(user, live) in &users {
                let current = read_password(&dir.join(live))?;
                acl = acl_keep_only(&acl, user, &acl::password_hash(&current))?;
            }
            if acl != *acl_text {
                write(layout::USERS_ACL, acl.as_bytes(), &mut outcome)?;
                outcome.acl_changed = true;
            }
            let pending = dir.join(layout::PENDING_DIR);
            if pending.is_dir() {
                let _ = std::fs::remove_dir_all(&pending);
            }
            // Keys: those demoted longer than the longest TTL ago (every one with `force`).
            let ttl = opts.longest_ttl.as_secs();
            let mut kept_ring = ring.clone();
            for id in ring.decrypt_only_ids() {
                let age = record.demoted_at.get(&id).map(|t| now.saturating_sub(*t));
                let old_enough = age.is_some_and(|a| a >= ttl);
                if old_enough || opts.force {
                    kept_ring = kept_ring.without_key(id)?;
                    outcome.retired_key_ids.push(id);
                    outcome.forced |= !old_enough;
                    record.demoted_at.remove(&id);
                } else {
                    outcome
                        .kept_key_ids
                        .push((id, age.map(|a| ttl.saturating_sub(a))));
                }
            }
            if !outcome.retired_key_ids.is_empty() {
                write(
                    layout::ENCRYPTION_KEYRING,
                    kept_ring.to_text().as_bytes(),
                    &mut outcome,
                )?;
                outcome.decrypt_only_key_ids = kept_ring.decrypt_only_ids();
            }
            record.stage = RecordedStage::Idle;
            record.retired_at = Some(now);
        }
    }
    finish(dir, &record, outcome)
}

fn finish(dir: &Path, record: &RotationRecord, mut outcome: StageOutcome) -> Result<StageOutcome> {
    let json = serde_json::to_vec_pretty(&record)
        .map_err(|_| rotation_error("cannot render the rotation record"))?;
    replace_file(&dir.join(layout::ROTATION_FILE), &json)?;
    outcome.files.push(layout::ROTATION_FILE.to_owned());
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(env: &str) -> tempfile::TempDir {
        let config = crate::test_support::config_for(env);
        let tmp = tempfile::tempdir().unwrap();
        crate::write_deployment(&config, tmp.path(), &crate::DeploymentOptions::default()).unwrap();
        tmp
    }

    /// The validator rates the directory acceptable.
    fn assert_acceptable(dir: &Path) {
        let report = crate::validate_dir(dir, None).unwrap();
        assert_eq!(
            report.recommendation,
            crate::Recommendation::Acceptable,
            "{report:?}"
        );
    }

    fn at(secs: u64) -> RotateOptions {
        RotateOptions {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs),
            ..RotateOptions::default()
        }
    }

    fn hashes(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
        acl_hashes(&std::fs::read_to_string(dir.join(layout::USERS_ACL)).unwrap())
    }

    fn hash_of(dir: &Path, rel: &str) -> String {
        let p = read_password(&dir.join(rel)).unwrap();
        acl::password_hash(&p).trim_start_matches('#').to_owned()
    }

    #[test]
    fn the_three_stages_keep_every_client_and_value_working() {
        let tmp = deployment("production");
        let dir = tmp.path();
        let old_app = std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap();

        let added = rotate_stage(dir, Stage::Add, &at(0)).unwrap();
        assert_eq!(added.environment, Environment::Production);
        assert_eq!((added.primary_key_id, added.added_key_id), (1, Some(2)));
        assert_eq!(added.decrypt_only_key_ids, vec![2]);
        assert!(added.acl_changed && !added.passwords_switched);
        // Old and new passwords are both accepted; clients still use the old one.
        assert_eq!(
            std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap(),
            old_app
        );
        for (user, live) in USERS {
            let h = &hashes(dir)[user];
            assert_eq!(h.len(), 2, "{user}");
            assert!(h.contains(&hash_of(dir, live)));
            assert!(h.contains(&hash_of(dir, &pending_path(live))));
            // Production strength, from the recorded environment.
            assert_eq!(
                read_password(&dir.join(pending_path(live))).unwrap().len(),
                password::length_for_bits(password::required_bits(Environment::Production))
            );
        }
        // Again: nothing new.
        let again = rotate_stage(dir, Stage::Add, &at(1)).unwrap();
        assert!(again.repeated);
        assert_eq!(
            Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING))
                .unwrap()
                .decrypt_only_ids(),
            vec![2]
        );
        assert!(
            rotate_stage(dir, Stage::Retire, &at(2)).is_err(),
            "retire before promote"
        );

        let promoted = rotate_stage(dir, Stage::Promote, &at(10)).unwrap();
        assert_eq!(promoted.primary_key_id, 2);
        assert_eq!(promoted.decrypt_only_key_ids, vec![1]);
        assert!(promoted.passwords_switched);
        assert_ne!(
            std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap(),
            old_app
        );
        assert!(!dir.join(pending_path(layout::APP_PASSWORD)).exists());
        for (user, live) in USERS {
            assert!(hashes(dir)[user].contains(&hash_of(dir, live)), "{user}");
        }
        assert_eq!(
            read_record(dir).unwrap().demoted_at.get(&1),
            Some(&1_000_010)
        );

        // Too young: the old key stays; the old hashes go.
        let retired = rotate_stage(dir, Stage::Retire, &at(20)).unwrap();
        assert!(retired.retired_key_ids.is_empty());
        assert_eq!(retired.kept_key_ids, vec![(1, Some(7200 - 10))]);
        for (user, live) in USERS {
            assert_eq!(
                hashes(dir)[user],
                BTreeSet::from([hash_of(dir, live)]),
                "{user}"
            );
        }
        // After the longest TTL it goes too.
        let later = rotate_stage(dir, Stage::Retire, &at(10 + 7200)).unwrap();
        assert_eq!(later.retired_key_ids, vec![1]);
        assert!(!later.forced);
        let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
        assert_eq!((ring.primary_id(), ring.decrypt_only_ids()), (2, vec![]));
        // The validator still rates the directory acceptable.
        assert_acceptable(dir);
    }

    #[test]
    fn a_cluster_rotates_the_replication_password_and_masterauth_too() {
        let config = crate::test_support::config_for("production");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        crate::cluster_dir::write_cluster_deployment(
            &config,
            dir,
            &crate::DeploymentOptions::default(),
            &crate::cluster_dir::ClusterOptions::default(),
        )
        .unwrap();
        let repl = crate::cluster_dir::REPLICATION_PASSWORD;
        let conf = || std::fs::read_to_string(dir.join(crate::cluster_dir::CLUSTER_CONF)).unwrap();
        let old = read_password(&dir.join(repl)).unwrap();
        assert!(conf().contains(old.expose_secret()));
        let added = rotate_stage(dir, Stage::Add, &at(0)).unwrap();
        assert!(!added.masterauth_switched);
        let h = &hashes(dir)[acl::REPLICATION_USER];
        assert_eq!(h.len(), 2);
        assert!(h.contains(&hash_of(dir, &pending_path(repl))));
        let promoted = rotate_stage(dir, Stage::Promote, &at(1)).unwrap();
        assert!(promoted.masterauth_switched);
        let new = read_password(&dir.join(repl)).unwrap();
        assert_ne!(new.expose_secret(), old.expose_secret());
        let text = conf();
        assert!(text.contains(&format!("masterauth \"{}\"", new.expose_secret())));
        assert!(!text.contains(old.expose_secret()));
        assert!(text.contains("masteruser cache_replication"));
        let mode = std::fs::metadata(dir.join(crate::cluster_dir::CLUSTER_CONF))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        rotate_stage(dir, Stage::Retire, &at(2)).unwrap();
        assert_eq!(
            hashes(dir)[acl::REPLICATION_USER],
            BTreeSet::from([hash_of(dir, repl)])
        );
        assert_acceptable(dir);
    }

    #[test]
    fn force_retires_young_keys_and_promote_needs_add() {
        let tmp = deployment("production");
        let dir = tmp.path();
        assert!(rotate_stage(dir, Stage::Promote, &at(0)).is_err());
        rotate_stage(dir, Stage::Add, &at(0)).unwrap();
        rotate_stage(dir, Stage::Promote, &at(1)).unwrap();
        let forced = rotate_stage(
            dir,
            Stage::Retire,
            &RotateOptions {
                force: true,
                ..at(2)
            },
        )
        .unwrap();
        assert_eq!(forced.retired_key_ids, vec![1]);
        assert!(forced.forced);
    }

    #[test]
    fn the_recorded_environment_sets_the_strength_not_the_process() {
        let tmp = deployment("testing");
        let dir = tmp.path();
        let added = rotate_stage(dir, Stage::Add, &at(0)).unwrap();
        assert_eq!(added.environment, Environment::Testing);
        let len = read_password(&dir.join(pending_path(layout::APP_PASSWORD)))
            .unwrap()
            .len();
        assert_eq!(
            len,
            password::length_for_bits(password::required_bits(Environment::Testing))
        );
    }

    #[cfg(unix)]
    #[test]
    fn replaced_files_keep_their_mode_and_are_new_inodes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = std::fs::metadata(&path).unwrap().ino();
        replace_file(&path, b"new").unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(after.permissions().mode() & 0o777, 0o640);
        assert_ne!(after.ino(), before);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        replace_file(&tmp.path().join("g"), b"x").unwrap();
        assert_eq!(
            std::fs::metadata(tmp.path().join("g"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn an_old_layout_is_moved_and_its_env_rewritten() {
        let tmp = deployment("production");
        let dir = tmp.path();
        // Back to the old layout.
        for (old, new) in MOVED {
            std::fs::rename(dir.join(new), dir.join(old)).unwrap();
        }
        let env = std::fs::read_to_string(dir.join(layout::ENV_FILE)).unwrap();
        let mut old_env = env.clone();
        for (old, new) in MOVED {
            old_env = old_env.replace(&container_path(new), &container_path(old));
        }
        std::fs::write(dir.join(layout::ENV_FILE), &old_env).unwrap();
        let moved = upgrade_layout(dir).unwrap();
        assert_eq!(moved.len(), 5);
        assert_eq!(
            std::fs::read_to_string(dir.join(layout::ENV_FILE)).unwrap(),
            env
        );
        assert!(upgrade_layout(dir).unwrap().is_empty());
        assert_acceptable(dir);
    }

    #[test]
    fn acl_edits_touch_only_hashes() {
        let text = "user default off\nuser cache_app on #aa resetchannels ~ns:* -@all +get\n";
        let added = acl_add_hash(text, "cache_app", "#bb").unwrap();
        assert_eq!(
            added,
            "user default off\nuser cache_app on #aa #bb resetchannels ~ns:* -@all +get\n"
        );
        assert_eq!(acl_add_hash(&added, "cache_app", "#bb").unwrap(), added);
        assert_eq!(
            acl_keep_only(&added, "cache_app", "#bb").unwrap(),
            text.replace("#aa", "#bb")
        );
        assert!(acl_keep_only(text, "cache_app", "#cc").is_err());
        assert!(acl_add_hash(text, "nobody", "#cc").is_err());
    }
}
