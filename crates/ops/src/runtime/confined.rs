//! File work on a deployment directory whose secrets another user may write.
//!
//! The backend container (uid 999) writes the directory's `secrets/` for a rotation run inside
//! it, while `up`, `down`, `status` and `config rotate` on the host run as root. A process that
//! takes over the backend could put links there (`secrets/pending -> /etc`, `secrets/backend/x ->
//! ../../ca/ca.key`) or swap a directory for one between two steps; root must never follow them.
//! So, as root on a tree another user owns:
//!
//! * [`as_owner_of`] runs file work in a thread whose effective user and group are the tree's
//!   owner (Linux keeps credentials per thread; the process stays root for Docker): what that
//!   thread reaches is what the owner reaches anyway;
//! * [`read_below`] opens each component below the directory without following links;
//! * [`chown_below`] walks by file descriptor, never by path.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
use zeroize::Zeroizing;

use crate::error::{OpsError, Result, io};

/// Runs `work` with the effective user, group and groups of `tree`'s owner when this process is
/// root and the owner is not; otherwise as this process. A missing `tree` runs as this process.
///
/// # Errors
/// [`OpsError::Io`] when the thread cannot take the owner's identity (nothing ran then).
pub fn as_owner_of<T: Send>(tree: &Path, work: impl FnOnce() -> T + Send) -> Result<T> {
    let owner = std::fs::symlink_metadata(tree)
        .ok()
        .filter(|m| m.uid() != 0 && rustix::process::geteuid().is_root());
    let Some(owner) = owner else {
        return Ok(work());
    };
    let (uid, gid) = (Uid::from_raw(owner.uid()), Gid::from_raw(owner.gid()));
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // Groups and group first (setting them needs root), then the user; the real and
                // saved ids stay root, but the effective capabilities are gone with euid 0.
                rustix::thread::set_thread_groups(&[gid])
                    .and_then(|()| rustix::thread::set_thread_res_gid(None, gid, None))
                    .and_then(|()| rustix::thread::set_thread_res_uid(None, uid, None))
                    .map_err(|e| io("act as the owner of", tree)(e.into()))?;
                Ok(work())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(OpsError::Unhealthy {
                    target: tree.display().to_string(),
                    detail: "the work as its owner panicked".to_owned(),
                })
            })
    })
}

/// Opens `rel` below `dir` (a relative path of normal components), following no link in any
/// component below `dir`. `dir` itself is the operator's path and may be a link.
fn open_below(dir: &Path, rel: &str) -> Result<OwnedFd> {
    // NONBLOCK: a FIFO or device left there is never waited on (the caller checks the kind).
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let top = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::DIRECTORY;
    let mut fd =
        rustix::fs::open(dir, top, Mode::empty()).map_err(|e| io("open", dir)(e.into()))?;
    let components: Vec<_> = Path::new(rel).components().collect();
    for (i, component) in components.iter().enumerate() {
        let Component::Normal(name) = component else {
            return Err(OpsError::Input {
                what: rel.to_owned(),
                reason: "not a plain relative path".to_owned(),
            });
        };
        let last = i + 1 == components.len();
        let kind = if last {
            OFlags::empty()
        } else {
            OFlags::DIRECTORY
        };
        fd = rustix::fs::openat(&fd, *name, flags | kind, Mode::empty())
            .map_err(|e| io("open (no link followed)", &dir.join(rel))(e.into()))?;
    }
    Ok(fd)
}

/// The text of the file `rel` below `dir`, no link followed below `dir` (a link there is an
/// error, never read through).
///
/// # Errors
/// [`OpsError::Io`] when a component is a link, missing or unreadable; [`OpsError::Input`] when
/// it is not a regular file of at most 16 MiB or not UTF-8.
pub fn read_below(dir: &Path, rel: &str) -> Result<String> {
    let bytes = read_bytes_below(dir, rel)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| OpsError::Input {
        what: dir.join(rel).display().to_string(),
        reason: "not UTF-8 text".to_owned(),
    })
}

/// The bytes of the file `rel` below `dir`, as [`read_below`] reads them (zeroized on drop: a
/// secret's bytes).
///
/// # Errors
/// As [`read_below`], UTF-8 aside.
pub fn read_bytes_below(dir: &Path, rel: &str) -> Result<Zeroizing<Vec<u8>>> {
    let path = dir.join(rel);
    let file = std::fs::File::from(open_below(dir, rel)?);
    let meta = file.metadata().map_err(io("read", &path))?;
    if !meta.file_type().is_file() || meta.len() > READ_LIMIT {
        return Err(OpsError::Input {
            what: path.display().to_string(),
            reason: "not a regular file of at most 16 MiB".to_owned(),
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
    file.take(READ_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(io("read", &path))?;
    Ok(bytes)
}

/// The largest file [`read_below`] reads.
const READ_LIMIT: u64 = 16 << 20;

/// The directory holding `rel` below `dir` (opened following no link below `dir`), and `rel`'s
/// last component.
fn open_parent(dir: &Path, rel: &str) -> Result<(OwnedFd, std::ffi::OsString)> {
    let parent = match Path::new(rel).parent() {
        Some(p) if !p.as_os_str().is_empty() => open_below(dir, &p.to_string_lossy())?,
        _ => rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io("open", dir)(e.into()))?,
    };
    let name = Path::new(rel).file_name().ok_or_else(|| OpsError::Input {
        what: rel.to_owned(),
        reason: "names no file".to_owned(),
    })?;
    Ok((parent, name.to_owned()))
}

/// `chown -R uid:gid` of `rel` below `dir`, by file descriptor: no link is followed (a link's own
/// owner changes), and a directory swapped for a link during the walk is not entered.
///
/// # Errors
/// [`OpsError::Io`] naming the path that could not be handed over.
pub fn chown_below(dir: &Path, rel: &str, uid: u32, gid: u32) -> Result<()> {
    let path = dir.join(rel);
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let (parent, name) = open_parent(dir, rel)?;
    chown_entry(&parent, &name, &path, uid, gid)
}

/// `chown uid:gid` of `rel` below `dir` alone (not what it holds), without following a link.
///
/// # Errors
/// [`OpsError::Io`] naming the path.
pub fn chown_below_one(dir: &Path, rel: &str, uid: u32, gid: u32) -> Result<()> {
    let path = dir.join(rel);
    let (parent, name) = open_parent(dir, rel)?;
    rustix::fs::chownat(
        &parent,
        &name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io("chown", &path)(e.into()))
}

/// `chown` of `name` in the directory `parent` (without following it), then of everything under
/// it when it is a directory (opened without following a link).
fn chown_entry(
    parent: &OwnedFd,
    name: &std::ffi::OsStr,
    path: &Path,
    uid: Option<Uid>,
    gid: Option<Gid>,
) -> Result<()> {
    rustix::fs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io("chown", path)(e.into()))?;
    let opened = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let Ok(dir) = opened else {
        // A file or a link: done.
        return Ok(());
    };
    let entries = rustix::fs::Dir::read_from(&dir).map_err(|e| io("read", path)(e.into()))?;
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io("read", path)(e.into()))?;
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        names.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes).to_owned());
    }
    for child in names {
        chown_entry(&dir, &child, &path.join(&child), uid, gid)?;
    }
    Ok(())
}

/// Refuses a deployment directory that another user could change under this command: `dir` must
/// be owned by this user or root and writable by no one else (its group may write only when that
/// group is root's), and so must every directory above it unless it is sticky (`/tmp`), where
/// nobody may rename what they do not own. Otherwise that user could swap the state directory
/// for a link, or a configuration file for their own, between this command's steps (it runs as
/// root: `up` on either runtime, a rotation's host stage).
///
/// # Errors
/// [`OpsError::Refused`] naming the directory and what is wrong with it.
pub fn refuse_shared_directory(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let me = rustix::process::geteuid().as_raw();
    let mut current = Some(dir);
    let mut first = true;
    while let Some(path) = current {
        let meta = std::fs::metadata(path).map_err(io("read", path))?;
        let owner_ok = meta.uid() == me || meta.uid() == 0;
        let sticky = meta.mode() & 0o1000 != 0;
        // Writable by others, or by a group other than root's, and not a sticky parent.
        let writable = meta.mode() & 0o002 != 0 || (meta.mode() & 0o020 != 0 && meta.gid() != 0);
        let shared = writable && (first || !sticky);
        if !owner_ok || shared {
            crate::error::refuse!(
                "{} is {}: another user could swap what sealcache writes below {} for their own (a link, a configuration root then runs); make it yours and writable only by you (chmod go-w), then run again; nothing was changed",
                path.display(),
                if owner_ok {
                    "writable by other users"
                } else {
                    "owned by another user"
                },
                dir.display()
            );
        }
        first = false;
        current = path.parent().filter(|p| !p.as_os_str().is_empty());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_link_below_the_directory_is_never_read_through() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deployment");
        std::fs::create_dir_all(dir.join("secrets/real")).unwrap();
        std::fs::write(tmp.path().join("outside"), "not yours").unwrap();
        std::fs::write(dir.join("secrets/real/key"), "mine").unwrap();
        assert_eq!(read_below(&dir, "secrets/real/key").unwrap(), "mine");
        std::os::unix::fs::symlink(tmp.path().join("outside"), dir.join("secrets/file")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), dir.join("secrets/linked")).unwrap();
        assert!(read_below(&dir, "secrets/file").is_err());
        // The directory itself may be the operator's link to it.
        let named = tmp.path().join("named");
        std::os::unix::fs::symlink(&dir, &named).unwrap();
        assert_eq!(read_below(&named, "secrets/real/key").unwrap(), "mine");
        assert!(read_below(&dir, "secrets/linked/outside").is_err());
        assert!(read_below(&dir, "../outside").is_err());
    }

    #[test]
    fn chown_walks_the_tree_and_never_follows_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deployment");
        std::fs::create_dir_all(dir.join("secrets/sub")).unwrap();
        std::fs::write(dir.join("secrets/sub/file"), "x").unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, "x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("secrets/link")).unwrap();
        let me = rustix::process::geteuid().as_raw();
        let group = rustix::process::getegid().as_raw();
        // As root the owner really changes; as anyone else, to oneself (a no-op that must walk).
        let (uid, gid) = if me == 0 { (4242, 4242) } else { (me, group) };
        chown_below(&dir, "secrets", uid, gid).unwrap();
        let owner = |p: &Path| std::fs::symlink_metadata(p).unwrap().uid();
        assert_eq!(owner(&dir.join("secrets/sub/file")), uid);
        assert_eq!(owner(&dir.join("secrets/link")), uid);
        assert_eq!(owner(&outside), me, "the link's target was changed");
    }

    #[test]
    fn work_as_the_owner_cannot_read_what_only_root_reads() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("secrets");
        std::fs::create_dir(&tree).unwrap();
        rustix::fs::chown(&tree, Some(Uid::from_raw(4242)), Some(Gid::from_raw(4242))).unwrap();
        let private = tmp.path().join("root-only");
        std::fs::write(&private, "root's").unwrap();
        std::fs::set_permissions(
            &private,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let read = as_owner_of(&tree, || std::fs::read_to_string(&private)).unwrap();
        assert!(read.is_err(), "the owner's thread read a root-only file");
        // The process itself is still root.
        assert!(std::fs::read_to_string(&private).is_ok());
        assert!(rustix::process::geteuid().is_root());
    }
}
