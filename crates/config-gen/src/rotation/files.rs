//! The rotation's file operations: atomic replacement keeping owner and mode, the layout upgrade,
//! and the edits of `users.acl` (hashes only).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::acl;
use crate::error::{Result, io};
use crate::layout::{self, container_path};
use crate::secret::SecretString;

use super::rotation_error;

/// The largest file a rotation reads (a keyring with dictionaries stays far below).
const READ_LIMIT: u64 = 16 << 20;

/// The bytes of the regular file `path`, never through a link in its last component, never
/// blocking on a FIFO or device, never more than 16 MiB. The backend container may write the
/// leaf directories of `secrets/` (for a rotation run inside it): a link, FIFO or huge file it
/// left there is refused, never followed, waited on or read whole.
///
/// # Errors
/// The file is missing, a link, not a regular file, larger than the limit, or unreadable.
pub fn read_regular(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read as _;
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > READ_LIMIT {
        return Err(std::io::Error::other("larger than 16 MiB"));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
    file.take(READ_LIMIT + 1).read_to_end(&mut out)?;
    if out.len() as u64 > READ_LIMIT {
        return Err(std::io::Error::other("larger than 16 MiB"));
    }
    Ok(out)
}

/// The text of the regular file `path` ([`read_regular`]).
///
/// # Errors
/// As [`read_regular`]; text that is not UTF-8.
pub fn read_regular_text(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let bytes = read_regular(path)?;
    std::str::from_utf8(&bytes)
        .map(|t| Zeroizing::new(t.to_owned()))
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
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
    // The file itself, never what a link there points to (its owner and mode are not adopted).
    let (mode, owner) = match std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_file())
    {
        Some(m) => (m.permissions().mode() & 0o7777, (m.uid(), m.gid())),
        None => {
            let d = std::fs::metadata(parent).map_err(io("cannot read", parent))?;
            (0o600, (d.uid(), d.gid()))
        }
    };
    match crate::atomic::write_atomically(path, contents, mode, Some(owner)) {
        // A directory its writer may not add files to (the deployment's `secrets/` stays root's
        // for the backend container and the host's work as its user): an existing regular file
        // it may write is rewritten in place, never through a link.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            write_in_place(path, contents).map_err(io("cannot replace", path))
        }
        other => other.map_err(io("cannot replace", path)),
    }
}

/// Rewrites the existing regular file `path` in place (same inode, owner and mode; never through
/// a link): written whole, cut to its length, synced.
///
/// # Errors
/// The file is missing, a link, not a regular file, or cannot be written.
pub(crate) fn write_in_place(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Write as _;
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut file = std::fs::File::from(fd);
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    file.write_all(contents)?;
    file.set_len(contents.len() as u64)?;
    file.sync_all()
}

/// Creates `dir/relative` (mode 0700, owned like the secrets directory) when missing.
pub(super) fn owned_dir(dir: &Path, relative: &str) -> Result<PathBuf> {
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
pub(super) const MOVED: [(&str, &str); 5] = [
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
        let text = read_regular_text(&env).map_err(io("cannot read", &env))?;
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
pub(super) fn acl_add_hash(text: &str, user: &str, hash: &str) -> Result<String> {
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
pub(super) fn acl_keep_only(text: &str, user: &str, keep: &str) -> Result<String> {
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

pub(super) fn read_password(path: &Path) -> Result<SecretString> {
    let text = read_regular_text(path).map_err(io("cannot read", path))?;
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(rotation_error(format!("{} is empty", path.display())));
    }
    Ok(SecretString::new(trimmed.to_owned()))
}

pub(super) fn pending_path(live: &str) -> String {
    let name = live.rsplit('/').next().unwrap_or(live);
    format!("{}/{name}", layout::PENDING_DIR)
}
