//! Minting an API key: a random 256-bit key, printed once; only its digest is kept.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rand::TryRng as _;
use zeroize::Zeroizing;

use super::file::{ApiKeyEntry, KeysFileError, parse, read_checked};
use super::types::{Digest, KeyId, Scopes, Tenant};

/// How every minted key starts (so secret scanners and people can tell one).
pub const KEY_PREFIX: &str = "sck_";

/// A freshly minted key: the key (shown once, then gone) and its entry in the file.
pub struct MintedKey {
    key: Zeroizing<String>,
    /// The entry appended to the file.
    pub entry: ApiKeyEntry,
}

impl MintedKey {
    /// The key: give it to its user once; it is kept nowhere.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey")
            .field("id", &self.entry.id)
            .field("scopes", &self.entry.scopes)
            .finish_non_exhaustive()
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeysFileError {
    let path = path.to_owned();
    move |source| KeysFileError::Io {
        action,
        path,
        source,
    }
}

/// The file's current text (empty when it does not exist yet), validated.
fn current(path: &Path) -> Result<String, KeysFileError> {
    match read_checked(path, false) {
        Ok(text) => {
            parse(&text)?;
            Ok(text)
        }
        Err(KeysFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(String::new())
        }
        Err(e) => Err(e),
    }
}

/// `path`, or the file a symbolic link at `path` leads to ([`KeysFileError::NotAFile`] when it
/// leads nowhere).
fn resolve(path: &Path) -> Result<PathBuf, KeysFileError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|_| KeysFileError::NotAFile {
                path: path.to_owned(),
            })
        }
        _ => Ok(path.to_owned()),
    }
}

/// Gives the new file (`new`, mode 0600) the owner, group and mode of the keys file at `path`, if
/// there is one, less write access for group and others: a backend that reads the file as its
/// own user (a container's uid 999, a group) still reads it after the rename. A file that cannot
/// be given them is refused before anything is written (the keys file stays as it was).
fn keep_owner_and_mode(path: &Path, new: &std::fs::File) -> Result<(), KeysFileError> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let old = match std::fs::metadata(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("cannot read", path)(e)),
    };
    let ours = new.metadata().map_err(io("cannot read", path))?;
    if (ours.uid(), ours.gid()) != (old.uid(), old.gid()) {
        std::os::unix::fs::fchown(new, Some(old.uid()), Some(old.gid()))
            .map_err(io("cannot give the new file the owner and group of", path))?;
    }
    let mode = old.permissions().mode() & 0o0755;
    new.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("cannot give the new file the mode of", path))
}

/// Checks that `id` could be minted into the keys file at `path` (the file, if any, is valid and
/// does not hold `id`), changing nothing: the `--dry-run` of [`mint`].
///
/// # Errors
/// As [`mint`], but for writing.
pub fn check_mint(path: &Path, id: &KeyId) -> Result<(), KeysFileError> {
    let text = current(path)?;
    if parse(&text)?.get(id.as_str()).is_some() {
        return Err(KeysFileError::IdTaken { id: id.to_string() });
    }
    Ok(())
}

/// Removes the lock file when dropped, unless it became the keys file.
struct Lock {
    path: PathBuf,
    renamed: bool,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Mints a key for `tenant` with `scopes` under the id `id`: 256 bits from the OS CSPRNG, written
/// as [`KEY_PREFIX`] and 64 hex digits. Its `[[key]]` table (the SHA-256 only) is appended to the
/// keys file at `path` (created with mode 0600 if missing), atomically (a new file with the old
/// one's owner, group and mode less group and other write, renamed over it). A running server
/// takes it on `SIGHUP`.
///
/// # Errors
/// [`KeysFileError::IdTaken`] when `id` is in the file, the file's own validation error when it
/// is not a valid keys file (nothing is appended to a broken file), [`KeysFileError::Busy`] while
/// another mint writes it, [`KeysFileError::Io`] or [`KeysFileError::Randomness`].
///
/// # Security
/// The key exists only in the returned [`MintedKey`] (zeroized on drop): print it once, to its
/// user, never into a log.
pub fn mint(
    path: &Path,
    id: &KeyId,
    tenant: &Tenant,
    scopes: Scopes,
) -> Result<MintedKey, KeysFileError> {
    if scopes.is_empty() {
        return Err(KeysFileError::Invalid {
            line: 0,
            field: "scopes",
            reason: "must name at least one scope",
        });
    }
    // Through a symbolic link, the file it leads to is the keys file: that is what is rewritten
    // (replacing the link with a file would leave the server reading the old one).
    let resolved = resolve(path)?;
    let path = resolved.as_path();
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".sealcache-tmp");
    let tmp = path.with_file_name(name);
    // The temporary file is the lock: two mints at once cannot both read the old text and the
    // later rename lose the earlier key.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeysFileError::Busy { path: tmp.clone() }
            } else {
                io("cannot create", &tmp)(e)
            }
        })?;
    let mut lock = Lock {
        path: tmp,
        renamed: false,
    };
    keep_owner_and_mode(path, &file)?;
    let mut text = current(path)?;
    if parse(&text)?.get(id.as_str()).is_some() {
        return Err(KeysFileError::IdTaken { id: id.to_string() });
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::SysRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|_| KeysFileError::Randomness)?;
    let mut key = Zeroizing::new(String::with_capacity(KEY_PREFIX.len() + 64));
    key.push_str(KEY_PREFIX);
    for byte in bytes.iter() {
        key.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        key.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
    }
    let entry = ApiKeyEntry::new(
        id.clone(),
        tenant.clone(),
        scopes,
        Digest::of(key.as_bytes()),
    );
    if !text.is_empty() {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
    }
    let line = text.lines().count() + 1;
    text.push_str(&entry.to_toml());
    // What is written must read back (a guard against a rendering fault losing the file).
    parse(&text)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("cannot write", &lock.path))?;
    std::fs::rename(&lock.path, path).map_err(io("cannot write", path))?;
    // The lock file is now the keys file: a later mint may take the lock name again.
    lock.renamed = true;
    Ok(MintedKey {
        key,
        entry: ApiKeyEntry { line, ..entry },
    })
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::api_keys::load;

    #[test]
    fn mint_appends_only_the_digest_with_mode_0600_and_refuses_a_taken_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys.toml");
        let tenant = Tenant::new("acme").unwrap();
        let web = KeyId::new("web").unwrap();
        let first = mint(&path, &web, &tenant, Scopes::parse_list("lookup").unwrap()).unwrap();
        let second = mint(
            &path,
            &KeyId::new("ops").unwrap(),
            &Tenant::default(),
            Scopes::all(),
        )
        .unwrap();
        for minted in [&first, &second] {
            let key = minted.expose_secret();
            assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 64);
            assert!(!format!("{minted:?}").contains(key));
        }
        assert_ne!(first.expose_secret(), second.expose_secret());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(first.expose_secret()) && !text.contains(second.expose_secret()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let file = load(&path).unwrap();
        assert_eq!(file.entries().len(), 2);
        let entry = file.get("web").unwrap();
        assert!(bool::from(
            entry
                .digest
                .ct_eq(&Digest::of(first.expose_secret().as_bytes()))
        ));
        assert_eq!(entry.line, first.entry.line);
        assert_eq!(file.get("ops").unwrap().line, second.entry.line);
        // A taken id: refused, the file unchanged, no lock left.
        let err = mint(&path, &web, &tenant, Scopes::all()).unwrap_err();
        assert!(matches!(err, KeysFileError::IdTaken { .. }), "{err}");
        assert!(matches!(
            check_mint(&path, &web),
            Err(KeysFileError::IdTaken { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn mint_keeps_the_files_owner_and_mode_less_write_for_others() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let tenant = Tenant::new("acme").unwrap();
        mint(&path, &KeyId::new("a").unwrap(), &tenant, Scopes::all()).unwrap();
        // A backend reading the file through its group (0640), as root set it up.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let root = std::fs::metadata(&path).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(&path, Some(999), Some(998)).unwrap();
        }
        mint(&path, &KeyId::new("b").unwrap(), &tenant, Scopes::all()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        if root {
            assert_eq!((meta.uid(), meta.gid()), (999, 998), "owner and group kept");
        }
        // A file others could write is not kept so: its next mint drops their write access.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            load(&path),
            Err(KeysFileError::WritableByOthers { mode: 0o666, .. })
        ));
        mint(&path, &KeyId::new("c").unwrap(), &tenant, Scopes::all()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert_eq!(load(&path).unwrap().entries().len(), 3);
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read_and_a_link_is_minted_through() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = Tenant::new("acme").unwrap();
        // A FIFO at the path: refused at once (a blocking open would stall the reader forever).
        let fifo = dir.path().join("fifo.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(load(&fifo), Err(KeysFileError::NotAFile { .. })));
        assert!(matches!(
            mint(&fifo, &KeyId::new("a").unwrap(), &tenant, Scopes::all()),
            Err(KeysFileError::NotAFile { .. })
        ));
        assert!(matches!(
            load(dir.path()),
            Err(KeysFileError::NotAFile { .. })
        ));
        // Over the size bound: refused, not read whole.
        let big = dir.path().join("big.toml");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(crate::api_keys::MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(load(&big), Err(KeysFileError::TooLarge { .. })));
        // Through a symbolic link, the file it leads to gets the key; the link stays a link.
        let real = dir.path().join("real.toml");
        mint(&real, &KeyId::new("first").unwrap(), &tenant, Scopes::all()).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        mint(
            &link,
            &KeyId::new("second").unwrap(),
            &tenant,
            Scopes::all(),
        )
        .unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(load(&real).unwrap().entries().len(), 2);
        // A link that leads nowhere is refused, and nothing is created.
        let dangling = dir.path().join("dangling.toml");
        std::os::unix::fs::symlink(dir.path().join("missing.toml"), &dangling).unwrap();
        assert!(matches!(
            mint(&dangling, &KeyId::new("c").unwrap(), &tenant, Scopes::all()),
            Err(KeysFileError::NotAFile { .. })
        ));
        assert!(!dir.path().join("missing.toml").exists());
    }

    #[test]
    fn mint_appends_nothing_to_a_broken_file_and_waits_for_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, "[[key]]\nid = \"Bad\"\n").unwrap();
        let id = KeyId::new("web").unwrap();
        let err = mint(&path, &id, &Tenant::default(), Scopes::all()).unwrap_err();
        assert!(
            matches!(
                err,
                KeysFileError::Syntax { .. } | KeysFileError::Invalid { .. }
            ),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[[key]]\nid = \"Bad\"\n"
        );
        // A lock left by another mint: refused as busy.
        std::fs::write(&path, "").unwrap();
        std::fs::write(dir.path().join("keys.toml.sealcache-tmp"), "").unwrap();
        let err = mint(&path, &id, &Tenant::default(), Scopes::all()).unwrap_err();
        assert!(matches!(err, KeysFileError::Busy { .. }), "{err}");
    }
}
