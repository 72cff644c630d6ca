//! The scoped API keys of `SEALCACHE_API_KEYS_FILE`: loaded at start (a bad file refuses to
//! start) and again on each reload signal (a bad file keeps the running keys, counted and
//! logged). Errors name the file's line and field, never a key or digest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealcache_config_gen::api_keys::{self, ApiKeysFile, KeysFileError};
use sealcache_monitor::{CacheObserver, EventSource, Outcome, SecurityEvent, SecurityEventType};

use crate::auth::{AmbiguousKey, ApiKeys};

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
/// A file that cannot be read or is invalid keeps the running keys, is logged as a warning,
/// counted as a `config_weak` security event and in the status (`api_keys.reloads_refused`).
/// No path any more (the setting was removed): the scoped keys are dropped.
///
/// # Errors
/// [`KeysLoadError`] when the running keys were kept.
pub async fn reload(
    keys: &ApiKeys,
    path: Option<PathBuf>,
    observer: &Arc<dyn CacheObserver>,
) -> Result<(), KeysLoadError> {
    let loaded = match path.clone() {
        None => Ok(ApiKeysFile::default()),
        Some(p) => match tokio::task::spawn_blocking(move || read(&p)).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "the API keys file reader stopped");
                return Ok(());
            }
        },
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
