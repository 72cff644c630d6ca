//! Reloading the keyring without a restart (docs/security-model.md, "Key rotation").
//!
//! `SIGHUP` reloads the settings (variables, `sealcache.toml`, and with them the keyring file
//! `REDIS_ENCRYPTION_KEYS_FILE`) and swaps the keyring atomically with
//! [`KeyringReload::Checked`]: a keyring that changes the key-name secret or a kept key's
//! material, drops the primary, or drops a key that may still seal live entries is refused, and
//! the running keyring keeps serving. `SIGUSR1` does the same with [`KeyringReload::Forced`],
//! which lets decrypt-only keys go before the longest TTL (their values become misses); the other
//! refusals stay, and neither ever drops the key the process seals with. A refused or unreadable
//! keyring is logged as a warning, counted as a `config_weak` security event and shown in the
//! security status (`keyring_reloads`, check `keyring_reload`) until a later reload is applied;
//! none of these ever carries key material.

use std::sync::Arc;

use sealcache::{AiResponseCache, KeyringReload, KeyringReloaded};
use sealcache_monitor::{CacheObserver, EventSource, Outcome, SecurityEvent, SecurityEventType};
use sealcache_settings::SecuritySettings;

/// Why a reload kept the running keyring. Never holds key material.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReloadError {
    /// The settings (or the keyring file) could not be read or parsed.
    Settings(String),
    /// The settings configure no keyring (the process runs with an ephemeral one, or the
    /// variable was removed): nothing to reload.
    NoKeyring,
    /// The cache refused the keyring.
    Refused(String),
    /// The keyring drops a key under which data-key records are still wrapped (or Redis could
    /// not be asked): see [`AiResponseCache::prepare_key_removal`].
    DataKeys(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Settings(problem) => {
                write!(f, "the settings could not be loaded: {problem}")
            }
            ReloadError::NoKeyring => f.write_str(
                "no keyring is configured (REDIS_ENCRYPTION_KEYS_FILE or REDIS_ENCRYPTION_KEY)",
            ),
            ReloadError::Refused(reason) | ReloadError::DataKeys(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ReloadError {}

/// The signal's name for logs.
fn trigger(mode: KeyringReload) -> &'static str {
    if mode == KeyringReload::Forced {
        "SIGUSR1 (forced)"
    } else {
        "SIGHUP"
    }
}

/// What a reload signal does with the keyring: a keyring that drops key ids first gets every
/// data-key record re-wrapped off them ([`AiResponseCache::prepare_key_removal`]; refused, forced
/// or not, while one is left), then [`apply_keyring`].
///
/// # Errors
/// [`ReloadError`]; the running keyring is unchanged.
pub async fn reload_keyring(
    cache: &AiResponseCache,
    settings: Result<&SecuritySettings, String>,
    mode: KeyringReload,
) -> Result<KeyringReloaded, ReloadError> {
    if let Ok(settings) = settings
        && let Some(keyring) = &settings.keyring
        && let Err(refused) = cache.prepare_key_removal(keyring).await
    {
        let outcome = Err(ReloadError::DataKeys(refused.to_string()));
        report(cache, mode, &outcome);
        return outcome;
    }
    apply_keyring(cache, settings, mode)
}

/// Applies the keyring of freshly loaded `settings` (or reports why it cannot) to `cache`,
/// logging the outcome (key ids only) and counting a refusal as a `config_weak` event.
///
/// # Errors
/// [`ReloadError`]; the running keyring is unchanged.
pub fn apply_keyring(
    cache: &AiResponseCache,
    settings: Result<&SecuritySettings, String>,
    mode: KeyringReload,
) -> Result<KeyringReloaded, ReloadError> {
    let outcome = match settings {
        Err(problem) => Err(ReloadError::Settings(problem)),
        Ok(settings) => match &settings.keyring {
            None => Err(ReloadError::NoKeyring),
            Some(keyring) => cache
                .reload_keyring(keyring, mode)
                .map_err(|e| ReloadError::Refused(e.to_string())),
        },
    };
    report(cache, mode, &outcome);
    outcome
}

/// Logs a reload's outcome (key ids only), counting a refusal as a `config_weak` event and
/// recording one the cache did not see in its status.
fn report(
    cache: &AiResponseCache,
    mode: KeyringReload,
    outcome: &Result<KeyringReloaded, ReloadError>,
) {
    match outcome {
        Ok(done) => {
            let (primary, decrypt_only) = cache.sealed().key_ids();
            tracing::info!(
                target: "sealcache::security",
                signal = trigger(mode),
                primary_key_id = primary,
                decrypt_only_key_ids = ?decrypt_only,
                added = ?done.added,
                removed = ?done.removed,
                "keyring reload applied"
            );
        }
        Err(err) => {
            // A refusal by the cache is counted there; one before it (an unreadable keyring
            // file, no keyring) is counted here: the status shows either.
            if !matches!(err, ReloadError::Refused(_)) {
                cache
                    .sealed()
                    .record_keyring_reload_failure(err.to_string());
            }
            let (primary, decrypt_only) = cache.sealed().key_ids();
            tracing::warn!(
                target: "sealcache::security",
                signal = trigger(mode),
                error = %err,
                primary_key_id = primary,
                decrypt_only_key_ids = ?decrypt_only,
                "keyring reload refused: the running keyring keeps serving"
            );
            let observer: &Arc<dyn CacheObserver> = cache.observer();
            observer.security_event(
                SecurityEvent::new(SecurityEventType::ConfigWeak)
                    .source(EventSource::Configuration)
                    .outcome(Outcome::Blocked)
                    .detail(format!("keyring reload refused: {err}")),
            );
        }
    }
}

/// Loads the settings anew for a reload (blocking file reads, off the async workers).
pub async fn load_settings() -> Result<SecuritySettings, String> {
    match tokio::task::spawn_blocking(SecuritySettings::load).await {
        Ok(loaded) => loaded.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the settings loader stopped: {e}")),
    }
}
