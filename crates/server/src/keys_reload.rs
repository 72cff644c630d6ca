//! The scoped API keys of `SEALCACHE_API_KEYS_FILE`: loaded at start (a bad file refuses to
//! start) and again on each reload signal (a bad file keeps the running keys, counted and
//! logged). Errors name the file's line and field, never a key or digest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealcache_config_gen::api_keys::{self, ApiKeysFile, KeysFileError};
use sealcache_monitor::{CacheObserver, EventSource, Outcome, SecurityEvent, SecurityEventType};

use crate::auth::{AmbiguousKey, ApiKeys};

/// How long a reload waits for a keys file that is gone to come back before revoking its keys.
const GONE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the keys file was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysLoadError {
    /// The file could not be read or is not a valid keys file.
    #[error("SEALCACHE_API_KEYS_FILE {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong (line and field, never a value).
        #[source]
        source: KeysFileError,
    },
    /// A key of the file is also a legacy key.
    #[error("SEALCACHE_API_KEYS_FILE {}: {source}", path.display())]
    Ambiguous {
        /// The file.
        path: PathBuf,
        /// Which key.
        #[source]
        source: AmbiguousKey,
    },
}

fn read(path: &Path) -> Result<ApiKeysFile, KeysLoadError> {
    api_keys::load(path).map_err(|source| KeysLoadError::File {
        path: path.to_owned(),
        source,
    })
}

/// Loads the keys file at `path` (none: no scoped keys) into `keys`, at start.
///
/// # Errors
/// [`KeysLoadError`]: the server must not start (fail closed).
pub fn load_at_start(keys: &ApiKeys, path: Option<&Path>) -> Result<(), KeysLoadError> {
    let file = match path {
        Some(path) => read(path)?,
        None => return Ok(()),
    };
    apply(keys, path, &file)?;
    let posture = keys.posture();
    tracing::info!(
        target: "sealcache::security",
        scoped_keys = posture.scoped_keys,
        tenants = posture.tenants,
        "API keys file loaded"
    );
    Ok(())
}

fn apply(keys: &ApiKeys, path: Option<&Path>, file: &ApiKeysFile) -> Result<(), KeysLoadError> {
    keys.replace_scoped(file)
        .map_err(|source| KeysLoadError::Ambiguous {
            path: path.map(Path::to_owned).unwrap_or_default(),
            source,
        })
}

/// Reloads the keys file at `path` into `keys` (a reload signal): applied whole, or not at all.
/// A file that cannot be read, is writable by group or others, or is invalid keeps the running
/// keys, is logged as a warning, counted as a `config_weak` security event and in the status
/// (`api_keys.reloads_refused`). A file that is gone, and still gone a second later, revokes
/// every scoped key (logged, counted as `config_weak`). No path any more (the setting was removed): the scoped keys are dropped.
///
/// # Errors
/// [`KeysLoadError`] when the running keys were kept.
pub async fn reload(
    keys: &ApiKeys,
    path: Option<PathBuf>,
    observer: &Arc<dyn CacheObserver>,
) -> Result<(), KeysLoadError> {
    let read_now = |p: PathBuf| async move {
        match tokio::task::spawn_blocking(move || read(&p)).await {
            Ok(loaded) => Some(loaded),
            Err(e) => {
                tracing::error!(error = %e, "the API keys file reader stopped");
                None
            }
        }
    };
    let gone = |loaded: &Result<ApiKeysFile, KeysLoadError>| {
        matches!(loaded, Err(KeysLoadError::File {
            source: KeysFileError::Io { source: io, .. },
            ..
        }) if io.kind() == std::io::ErrorKind::NotFound)
    };
    let loaded = match path.clone() {
        None => Ok(ApiKeysFile::default()),
        Some(p) => {
            let Some(mut loaded) = read_now(p.clone()).await else {
                return Ok(());
            };
            // An editor or tool that moves the old file away before writing the new one leaves
            // a moment without it: read again a second later before revoking anything.
            if gone(&loaded) {
                tokio::time::sleep(GONE_GRACE).await;
                let Some(again) = read_now(p).await else {
                    return Ok(());
                };
                loaded = again;
            }
            loaded
        }
    };
    // A file that is gone authorizes nothing: its scoped keys are revoked (an operator who
    // deletes the file means it), logged and counted; an unreadable or invalid one keeps them.
    let loaded = match loaded {
        Err(KeysLoadError::File {
            path: gone,
            source: KeysFileError::Io { source: io, .. },
        }) if io.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                target: "sealcache::security",
                path = %gone.display(),
                "API keys file is gone: every scoped key is revoked (the legacy keys stay)"
            );
            observer.security_event(
                SecurityEvent::new(SecurityEventType::ConfigWeak)
                    .source(EventSource::Configuration)
                    .outcome(Outcome::Blocked)
                    .detail(format!(
                        "API keys file {} is gone: every scoped key is revoked",
                        gone.display()
                    )),
            );
            Ok(ApiKeysFile::default())
        }
        other => other,
    };
    let outcome = loaded.and_then(|file| apply(keys, path.as_deref(), &file));
    match &outcome {
        Ok(()) => {
            let posture = keys.posture();
            tracing::info!(
                target: "sealcache::security",
                scoped_keys = posture.scoped_keys,
                tenants = posture.tenants,
                "API keys file reload applied"
            );
        }
        Err(err) => {
            keys.record_refused_reload();
            tracing::warn!(
                target: "sealcache::security",
                error = %err,
                "API keys file reload refused: the running keys keep serving"
            );
            observer.security_event(
                SecurityEvent::new(SecurityEventType::ConfigWeak)
                    .source(EventSource::Configuration)
                    .outcome(Outcome::Blocked)
                    .detail(format!("API keys file reload refused: {err}")),
            );
        }
    }
    outcome
}
