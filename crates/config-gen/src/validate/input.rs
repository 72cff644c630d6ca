//! Reading what the rules look at, from a directory or an env file.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io};
use crate::layout;
use crate::secret::SecretString;
use crate::validate::ValidationInput;

/// Everything the rules need, read once.
#[derive(Debug, Default)]
pub struct Facts {
    /// The configuration's variables (from `.env` or the env file).
    pub vars: BTreeMap<String, String>,
    /// Passwords by ACL user name.
    pub passwords: Vec<(String, SecretString)>,
    /// The encryption key material's text, if any was found.
    pub encryption_key: Option<SecretString>,
    /// Where the encryption key was expected, when it was referenced but missing.
    pub encryption_key_missing_file: Option<PathBuf>,
    /// The API key, if found.
    pub api_key: Option<SecretString>,
    /// Certificates found, by label, with their PEM text.
    pub certificates: Vec<(String, Vec<u8>)>,
    /// The ACL file's text, if found.
    pub acl: Option<String>,
    /// Whether this is a deployment directory (the ACL file is then required).
    pub is_dir: bool,
    /// Secret files with group or other permission bits, with their modes.
    pub loose_files: Vec<(PathBuf, u32)>,
    /// Files referenced by `*_FILE` / `*_PATH` variables that do not exist.
    pub missing_files: Vec<(String, PathBuf)>,
    /// A CA private key found under `secrets/`.
    pub ca_key_in_secrets: bool,
}

/// The bytes of the file `path`: never waiting on a FIFO or device, regular files only, at most
/// 16 MiB, and in a deployment directory (`!follow`) never through a link: the backend container
/// may write the leaf directories of its `secrets/`, and `up` validates them as root. An env
/// file's paths are followed (Kubernetes mounts its Secrets as links).
fn read_file(path: &Path, follow: bool) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let read = if follow {
        std::fs::canonicalize(path).and_then(|p| crate::rotation::read_regular(&p))
    } else {
        crate::rotation::read_regular(path)
    };
    read.map_err(io("cannot read", path))
}

/// Whether a read of `path` may follow a link: not below a deployment directory's `secrets/`.
fn follows(facts: &Facts, base: &Path, path: &Path) -> bool {
    !(facts.is_dir && path.starts_with(base.join(layout::SECRETS_DIR)))
}

fn read_secret(path: &Path, follow: bool) -> Result<SecretString> {
    let bytes = read_file(path, follow)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(SecretString::new(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

/// Maps a path from the configuration to this machine: `/run/secrets/X` → `BASE/secrets/X` when
/// that exists, relative paths → `BASE/path`.
fn resolve(base: &Path, value: &str) -> PathBuf {
    if let Some(inner) = value.strip_prefix("/run/secrets/") {
        let local = base.join(layout::SECRETS_DIR).join(inner);
        if local.exists() || !Path::new(value).exists() {
            return local;
        }
    }
    let p = Path::new(value);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn check_mode(path: &Path, facts: &mut Facts) {
    // In a deployment directory a link is judged as itself (0777: loose), never as its target.
    let meta = if facts.is_dir {
        std::fs::symlink_metadata(path)
    } else {
        std::fs::metadata(path)
    };
    if let Ok(meta) = meta {
        let mode = meta.permissions().mode() & 0o777;
        // `up` leaves `secrets/` and `secrets/tls/` root's with the containers' group allowed to
        // list and enter them (0750): the group gets names, never a file (each stays 0600), and
        // the containers cannot replace what Docker mounts. A directory another user owns, or
        // that its group may write or others may enter, stays loose.
        let held_by_root = meta.is_dir() && meta.uid() == 0 && mode & 0o027 == 0;
        if mode & 0o077 != 0 && !held_by_root {
            facts.loose_files.push((path.to_path_buf(), mode));
        }
    }
}

fn walk_secrets(dir: &Path, facts: &mut Facts) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    check_mode(dir, facts);
    for entry in entries.flatten() {
        let path = entry.path();
        // Never into a link: a link to `/` would walk the host as root.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk_secrets(&path, facts);
        } else {
            check_mode(&path, facts);
            if path.file_name().is_some_and(|n| n == "ca.key") {
                facts.ca_key_in_secrets = true;
            }
        }
    }
}

/// Reads a `*_FILE` secret or its plain twin into `facts`.
fn secret_var(facts: &mut Facts, base: &Path, var: &str) -> Result<Option<SecretString>> {
    let file_var = format!("{var}_FILE");
    if let Some(path) = facts.vars.get(&file_var).cloned() {
        let path = resolve(base, &path);
        if !path.exists() {
            facts.missing_files.push((file_var, path));
            return Ok(None);
        }
        check_mode(&path, facts);
        return read_secret(&path, follows(facts, base, &path)).map(Some);
    }
    Ok(facts.vars.get(var).map(|v| SecretString::new(v.clone())))
}

pub(super) fn gather(input: &ValidationInput) -> Result<Facts> {
    let mut facts = Facts::default();
    let base = match input {
        ValidationInput::Dir(dir) => {
            if !dir.is_dir() {
                return Err(Error::Io {
                    action: "not a deployment directory:",
                    path: dir.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            facts.is_dir = true;
            facts.vars = crate::env_file::read(&dir.join(layout::ENV_FILE))?;
            dir.clone()
        }
        ValidationInput::EnvFile(file) => {
            facts.vars = crate::env_file::read(file)?;
            check_mode(file, &mut facts);
            file.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        }
    };

    if facts.is_dir {
        walk_secrets(&base.join(layout::SECRETS_DIR), &mut facts);
        let users = [
            ("cache_app", layout::APP_PASSWORD),
            ("cache_health", layout::HEALTH_PASSWORD),
            ("cache_monitor", layout::MONITOR_PASSWORD),
            ("cache_admin", layout::ADMIN_PASSWORD),
        ];
        for (user, rel) in users {
            let path = base.join(rel);
            if path.exists() {
                let secret = read_secret(&path, false)?;
                facts.passwords.push((user.to_owned(), secret));
            }
        }
        let acl = base.join(layout::USERS_ACL);
        if acl.exists() {
            let text = read_file(&acl, false)?;
            facts.acl = Some(String::from_utf8_lossy(&text).into_owned());
        }
    } else {
        let app_user = facts
            .vars
            .get("REDIS_USERNAME")
            .cloned()
            .unwrap_or_else(|| "cache_app".to_owned());
        if let Some(p) = secret_var(&mut facts, &base, "REDIS_PASSWORD")? {
            facts.passwords.push((app_user, p));
        }
        if let Some(p) = secret_var(&mut facts, &base, "REDIS_CACHE_PASSWORD")? {
            facts.passwords.push(("cache_monitor".to_owned(), p));
        }
    }
    if facts.passwords.iter().all(|(u, _)| u != "cache_monitor")
        && let Some(p) = secret_var(&mut facts, &base, "REDIS_MONITOR_PASSWORD")?
    {
        facts.passwords.push(("cache_monitor".to_owned(), p));
    }

    // Encryption key: the keyring file, or the single key variable.
    if let Some(path) = facts.vars.get("REDIS_ENCRYPTION_KEYS_FILE").cloned() {
        let path = resolve(&base, &path);
        if path.exists() {
            check_mode(&path, &mut facts);
            facts.encryption_key = Some(read_secret(&path, follows(&facts, &base, &path))?);
        } else {
            facts.encryption_key_missing_file = Some(path);
        }
    } else if let Some(key) = facts.vars.get("REDIS_ENCRYPTION_KEY") {
        facts.encryption_key = Some(SecretString::new(key.clone()));
    }
    facts.api_key = secret_var(&mut facts, &base, "API_KEY")?;

    // Each certificate file is judged once, whichever layout entry or variable names it.
    let mut cert_paths: Vec<(String, PathBuf, bool)> = Vec::new();
    if facts.is_dir {
        for rel in [layout::SERVER_CERT, layout::CLIENT_CERT, layout::CA_CERT] {
            cert_paths.push((rel.to_owned(), base.join(rel), false));
        }
    }
    for var in ["REDIS_TLS_CA_PATH", "REDIS_TLS_CERT_PATH"] {
        if let Some(value) = facts.vars.get(var) {
            let path = resolve(&base, value);
            if !cert_paths.iter().any(|(_, p, _)| *p == path) {
                cert_paths.push((var.to_owned(), path, true));
            }
        }
    }
    for (label, path, referenced) in cert_paths {
        match read_file(&path, follows(&facts, &base, &path)) {
            Ok(pem) => facts.certificates.push((label, pem.to_vec())),
            Err(_) if referenced => facts.missing_files.push((label, path)),
            Err(_) => {}
        }
    }
    if let Some(value) = facts.vars.get("REDIS_TLS_KEY_PATH").cloned() {
        let path = resolve(&base, &value);
        if path.exists() {
            check_mode(&path, &mut facts);
        } else {
            facts
                .missing_files
                .push(("REDIS_TLS_KEY_PATH".to_owned(), path));
        }
    }
    facts.loose_files.sort();
    facts.loose_files.dedup();
    Ok(facts)
}
