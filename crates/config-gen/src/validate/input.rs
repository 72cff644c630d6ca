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

fn read_secret(path: &Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path).map_err(io("cannot read", path))?;
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
    if let Ok(meta) = std::fs::metadata(path) {
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
        if path.is_dir() {
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
        return read_secret(&path).map(Some);
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
                let secret = read_secret(&path)?;
                facts.passwords.push((user.to_owned(), secret));
            }
        }
        let acl = base.join(layout::USERS_ACL);
        if acl.exists() {
            facts.acl = Some(std::fs::read_to_string(&acl).map_err(io("cannot read", &acl))?);
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
            facts.encryption_key = Some(read_secret(&path)?);
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
        match std::fs::read(&path) {
            Ok(pem) => facts.certificates.push((label, pem)),
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
