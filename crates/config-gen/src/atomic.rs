//! Replacing a file atomically, one helper for every writer of a deployment directory: a
//! temporary file beside it (on `tempfile`), written, handed to its owner, synced, renamed over
//! it, then the directory synced. A reader sees the old file or the new one, never a part.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

/// Replaces `path` with `contents`, mode `mode` and, when given, owner and group `owner`
/// (`(uid, gid)`; changed only when they differ, so it needs root only when they do).
///
/// The temporary file is `.{name}.sealcache-tmp` in the same directory (a fixed name: a leftover
/// of an interrupted write is replaced, and one writer at a time is assumed, as the deployment
/// directory's stages are). It is removed when anything fails before the rename.
///
/// # Errors
/// The I/O failure (creating, writing, handing over or renaming).
pub fn write_atomically(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?
        .to_string_lossy()
        .into_owned();
    let _ = std::fs::remove_file(parent.join(format!(".{name}.sealcache-tmp")));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}"))
        .suffix(".sealcache-tmp")
        .rand_bytes(0)
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(parent)?;
    tmp.write_all(contents)?;
    if let Some((uid, gid)) = owner {
        let m = tmp.as_file().metadata()?;
        if (m.uid(), m.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid))?;
        }
    }
    // Set again: the creation mode went through the umask.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomically(&path, b"one", 0o600, None).unwrap();
        write_atomically(&path, b"two", 0o640, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        // A leftover of an interrupted write is replaced; nothing but the file remains.
        std::fs::write(dir.path().join(".secret.sealcache-tmp"), b"half").unwrap();
        write_atomically(&path, b"three", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A temporary name that cannot be taken fails the write and keeps the file.
        std::fs::create_dir(dir.path().join(".secret.sealcache-tmp")).unwrap();
        std::fs::write(dir.path().join(".secret.sealcache-tmp/x"), b"x").unwrap();
        assert!(write_atomically(&path, b"four", 0o600, None).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
    }
}
