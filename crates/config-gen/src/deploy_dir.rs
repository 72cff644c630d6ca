//! Writing (and rotating) a deployment directory; see [`crate::layout`].

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use sealcache_codec::{Keyring, SecretKey};
use sealcache_env_detect::Environment;

use crate::acl;
use crate::configuration::{SecurityConfiguration, bool_text};
use crate::error::{Error, Result, io};
use crate::layout::{self, container_path};
use crate::password;
use crate::secret::SecretString;
use crate::tls;

/// What to do when the directory exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Refuse ([`Error::DirectoryExists`]).
    #[default]
    New,
    /// Replace the generated files.
    Force,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The deployment directory layout.
    #[default]
    Dir,
    /// One `.env.secure` with secrets as values, under names the settings read.
    EnvVars,
}

/// Options for [`write_deployment`].
#[derive(Debug, Clone)]
pub struct DeploymentOptions {
    /// Existing-directory behaviour.
    pub mode: WriteMode,
    /// Output format.
    pub format: OutputFormat,
    /// Cache key namespace (ACL key pattern `namespace:*`).
    pub namespace: String,
    /// Extra names for the Redis server certificate.
    pub extra_server_names: Vec<String>,
    /// The Redis host name the backend connects to.
    pub redis_host: String,
}

impl Default for DeploymentOptions {
    fn default() -> Self {
        Self {
            mode: WriteMode::New,
            format: OutputFormat::Dir,
            namespace: sealcache_settings::DEFAULT_NAMESPACE.to_owned(),
            extra_server_names: Vec::new(),
            redis_host: "redis".to_owned(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WrittenDeployment {
    /// The directory.
    pub dir: PathBuf,
    /// Every file written, relative to `dir`.
    pub files: Vec<String>,
}

fn secret_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io("cannot create directory", path))?;
    // `mode` applies only to directories it creates: tighten an existing one too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(io("cannot set permissions of", path))
}

/// Writes `contents` to `dir/relative` with mode 0600, replacing it atomically.
pub(crate) fn write_secret(dir: &Path, relative: &str, contents: &[u8]) -> Result<()> {
    let path = dir.join(relative);
    crate::atomic::write_atomically(&path, contents, 0o600, None).map_err(io("cannot write", &path))
}

/// [`write_secret`], and `relative` listed in `files`.
fn secret_file(dir: &Path, relative: &str, contents: &[u8], files: &mut Vec<String>) -> Result<()> {
    write_secret(dir, relative, contents)?;
    files.push(relative.to_owned());
    Ok(())
}

/// The `.env` of a deployment directory (non-secret settings and `*_FILE` paths inside the
/// containers).
#[must_use]
pub fn render_env(config: &SecurityConfiguration, opts: &DeploymentOptions) -> String {
    let tls = config.redis_tls_enabled;
    let scheme = if tls { "rediss" } else { "redis" };
    let mut vars: Vec<(&str, String)> = vec![
        ("ENVIRONMENT", config.environment.as_str().to_owned()),
        (
            "REDIS_URL",
            format!("{scheme}://{}:{}/0", opts.redis_host, layout::REDIS_PORT),
        ),
        ("REDIS_USERNAME", acl::APP_USER.to_owned()),
        ("REDIS_PASSWORD_FILE", container_path(layout::APP_PASSWORD)),
        ("REDIS_MONITOR_USERNAME", acl::MONITOR_USER.to_owned()),
        (
            "REDIS_MONITOR_PASSWORD_FILE",
            container_path(layout::MONITOR_PASSWORD),
        ),
        ("REDIS_TLS_ENABLED", bool_text(tls).to_owned()),
    ];
    if tls {
        vars.push(("REDIS_TLS_CA_PATH", container_path(layout::CA_CERT)));
        vars.push(("REDIS_TLS_CERT_PATH", container_path(layout::CLIENT_CERT)));
        vars.push(("REDIS_TLS_KEY_PATH", container_path(layout::CLIENT_KEY)));
    }
    vars.extend([
        (
            "REDIS_ENCRYPTION_KEYS_FILE",
            container_path(layout::ENCRYPTION_KEYRING),
        ),
        ("REDIS_NETWORK_ISOLATION", "true".to_owned()),
        ("CACHE_NAMESPACE", opts.namespace.clone()),
        ("API_KEY_FILE", container_path(layout::API_KEY)),
        ("SEALCACHE_LISTEN", layout::CONTAINER_LISTEN.to_owned()),
    ]);
    if config.environment == Environment::Development {
        vars.push(("REDIS_SECURITY_MODE", "development".to_owned()));
    }
    render_env_vars(config, &vars)
}

fn render_env_vars(config: &SecurityConfiguration, vars: &[(&str, String)]) -> String {
    let header = format!(
        "sealcache deployment settings, generated for {} (confidence {:.2}).\n\
         Secrets are not here: they are files under secrets/, mounted at /run/secrets.",
        config.environment, config.confidence
    );
    crate::env_file::render(&header, vars)
}

/// Writes a deployment for `config` into `dir` (see [`crate::layout`]).
///
/// # Errors
/// [`Error::DirectoryExists`] when the target exists and `opts.mode` is [`WriteMode::New`]; I/O
/// and certificate errors.
pub fn write_deployment(
    config: &SecurityConfiguration,
    dir: &Path,
    opts: &DeploymentOptions,
) -> Result<WrittenDeployment> {
    let mut files = Vec::new();
    match opts.format {
        OutputFormat::EnvVars => {
            let target = dir.join(layout::ENV_SECURE_FILE);
            if target.exists() && opts.mode == WriteMode::New {
                return Err(Error::DirectoryExists { path: target });
            }
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io("cannot create directory", dir))?;
            let scheme = if config.redis_tls_enabled {
                "rediss"
            } else {
                "redis"
            };
            let vars: Vec<(&str, String)> = vec![
                ("ENVIRONMENT", config.environment.as_str().to_owned()),
                (
                    "REDIS_URL",
                    format!("{scheme}://{}:{}/0", opts.redis_host, layout::REDIS_PORT),
                ),
                ("REDIS_USERNAME", acl::APP_USER.to_owned()),
                (
                    "REDIS_PASSWORD",
                    config.redis_password.expose_secret().to_owned(),
                ),
                ("REDIS_MONITOR_USERNAME", acl::MONITOR_USER.to_owned()),
                (
                    "REDIS_MONITOR_PASSWORD",
                    config.redis_cache_password.expose_secret().to_owned(),
                ),
                (
                    "REDIS_ENCRYPTION_KEY",
                    config.redis_encryption_key.expose_text().to_string(),
                ),
                (
                    "REDIS_TLS_ENABLED",
                    bool_text(config.redis_tls_enabled).to_owned(),
                ),
                ("CACHE_NAMESPACE", opts.namespace.clone()),
                ("API_KEY", config.api_key.expose_secret().to_owned()),
            ];
            let text = zeroize::Zeroizing::new(render_env_vars(config, &vars));
            secret_file(dir, layout::ENV_SECURE_FILE, text.as_bytes(), &mut files)?;
            return Ok(WrittenDeployment {
                dir: dir.to_path_buf(),
                files,
            });
        }
        OutputFormat::Dir => {}
    }

    if dir.join(layout::ENV_FILE).exists() || dir.join(layout::SECRETS_DIR).exists() {
        if opts.mode == WriteMode::New {
            return Err(Error::DirectoryExists {
                path: dir.to_path_buf(),
            });
        }
        for generated in [layout::SECRETS_DIR, layout::CA_DIR] {
            let path = dir.join(generated);
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(io("cannot remove", &path))?;
            }
        }
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io("cannot create directory", dir))?;
    for sub in [
        layout::SECRETS_DIR,
        layout::REDIS_SECRETS_DIR,
        layout::BACKEND_SECRETS_DIR,
        layout::TLS_DIR,
        layout::CA_DIR,
    ] {
        secret_dir(&dir.join(sub))?;
    }

    let passwords = config.acl_passwords();
    secret_file(
        dir,
        layout::APP_PASSWORD,
        passwords.app.expose_secret().as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::HEALTH_PASSWORD,
        passwords.health.expose_secret().as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::MONITOR_PASSWORD,
        passwords.monitor.expose_secret().as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::ADMIN_PASSWORD,
        passwords.admin.expose_secret().as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::USERS_ACL,
        acl::render(&opts.namespace, &passwords).as_bytes(),
        &mut files,
    )?;
    let keyring = Keyring::single(config.redis_encryption_key.clone());
    secret_file(
        dir,
        layout::ENCRYPTION_KEYRING,
        keyring.to_text().as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::API_KEY,
        config.api_key.expose_secret().as_bytes(),
        &mut files,
    )?;

    let material = tls::generate(&opts.extra_server_names, acl::APP_USER)?;
    secret_file(
        dir,
        layout::CA_CERT,
        material.ca_cert.as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::SERVER_CERT,
        material.server_cert.as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::SERVER_KEY,
        material.server_key.expose_secret().as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::CLIENT_CERT,
        material.client_cert.as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::CLIENT_KEY,
        material.client_key.expose_secret().as_bytes(),
        &mut files,
    )?;
    secret_file(
        dir,
        layout::CA_KEY,
        material.ca_key.expose_secret().as_bytes(),
        &mut files,
    )?;

    secret_file(
        dir,
        layout::ENV_FILE,
        render_env(config, opts).as_bytes(),
        &mut files,
    )?;
    Ok(WrittenDeployment {
        dir: dir.to_path_buf(),
        files,
    })
}

/// What a rotation changed.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Files rewritten, relative to the directory.
    pub files: Vec<String>,
    /// The new primary key id.
    pub primary_key_id: u32,
    /// The key ids kept for decryption only.
    pub decrypt_only_key_ids: Vec<u32>,
}

/// Rotates the secrets of an existing deployment directory **in one step**: the four passwords
/// (with the entropy of `environment`), `users.acl`, and the encryption key (a new primary; every
/// old key kept decrypt-only, the key-name secret unchanged). The API key, TLS material, CA and
/// `.env` are kept.
///
/// Only for a directory no running stack uses: old passwords stop working at once and the new key
/// seals before any other process holds it. A running deployment rotates in stages with
/// [`crate::rotation::rotate_stage`] (`cargo xtask config rotate --stage add|promote|retire`).
///
/// # Errors
/// [`Error::NothingToRotate`] if the directory holds no deployment; I/O and keyring errors.
pub fn rotate_deployment(
    dir: &Path,
    environment: Environment,
    namespace: &str,
) -> Result<Rotation> {
    for (rel, name) in [
        (layout::ENV_FILE, ".env"),
        (layout::ENCRYPTION_KEYRING, layout::ENCRYPTION_KEYRING),
        (layout::USERS_ACL, layout::USERS_ACL),
    ] {
        if !dir.join(rel).exists() {
            return Err(Error::NothingToRotate {
                path: dir.to_path_buf(),
                missing: name,
            });
        }
    }
    let old = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING))?;
    let rotated = old.rotate(SecretKey::generate()?);
    let bits = password::required_bits(environment);
    let passwords = acl::AclPasswords {
        app: password::generate(bits)?,
        health: password::generate(bits)?,
        monitor: password::generate(bits)?,
        admin: password::generate(bits)?,
    };
    let mut files = Vec::new();
    secret_file(
        dir,
        layout::ENCRYPTION_KEYRING,
        rotated.to_text().as_bytes(),
        &mut files,
    )?;
    write_passwords(dir, &passwords, namespace, &mut files)?;
    Ok(Rotation {
        files,
        primary_key_id: rotated.primary_id(),
        decrypt_only_key_ids: rotated.decrypt_only_ids(),
    })
}

/// Adds `dictionary` to the deployment's keyring as the sealing dictionary (the previous one, if
/// any, stays to open values sealed with it), rewriting the keyring file atomically with mode
/// 0600. Restart the backends to seal with it; drop the old one after the longest TTL.
///
/// # Errors
/// [`Error::NothingToRotate`] without a keyring; I/O and keyring errors (a dictionary id already
/// held).
pub fn add_dictionary(dir: &Path, dictionary: sealcache_codec::Dictionary) -> Result<Vec<u32>> {
    let path = dir.join(layout::ENCRYPTION_KEYRING);
    if !path.exists() {
        return Err(Error::NothingToRotate {
            path: dir.to_path_buf(),
            missing: layout::ENCRYPTION_KEYRING,
        });
    }
    let ring = Keyring::from_file(&path)?.with_dictionary(dictionary, true)?;
    let mut files = Vec::new();
    secret_file(
        dir,
        layout::ENCRYPTION_KEYRING,
        ring.to_text().as_bytes(),
        &mut files,
    )?;
    Ok(ring
        .dictionaries()
        .iter()
        .map(sealcache_codec::Dictionary::id)
        .collect())
}

fn write_passwords(
    dir: &Path,
    passwords: &acl::AclPasswords,
    namespace: &str,
    files: &mut Vec<String>,
) -> Result<()> {
    let pairs: [(&str, &SecretString); 4] = [
        (layout::APP_PASSWORD, &passwords.app),
        (layout::HEALTH_PASSWORD, &passwords.health),
        (layout::MONITOR_PASSWORD, &passwords.monitor),
        (layout::ADMIN_PASSWORD, &passwords.admin),
    ];
    for (rel, secret) in pairs {
        secret_file(dir, rel, secret.expose_secret().as_bytes(), files)?;
    }
    secret_file(
        dir,
        layout::USERS_ACL,
        acl::render(namespace, passwords).as_bytes(),
        files,
    )
}
