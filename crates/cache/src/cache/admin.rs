//! Operations on a running cache: keyring reload, Redis password change, counters.

use std::time::Duration;

use sealcache_codec::Keyring;

use super::{CacheStats, SealedCache};
use crate::error::Result;
use crate::keyring_reload::{KeyringReload, KeyringReloaded};

impl SealedCache {
    /// Replaces the keyring without a restart (see `docs/security-model.md`, "Key rotation"):
    /// atomically for every request, refused (and the running keyring kept) when the key-name
    /// secret or a kept key's material differs, or, unless `mode` is [`KeyringReload::Forced`],
    /// when it drops a key that may still seal entries younger than `live_for` (the longest TTL).
    ///
    /// # Errors
    /// [`Error::KeyringRefused`](crate::Error::KeyringRefused) naming the reason.
    pub fn reload_keyring(
        &self,
        keyring: &Keyring,
        live_for: Duration,
        mode: KeyringReload,
    ) -> Result<KeyringReloaded> {
        let outcome = self
            .inner
            .keyring
            .reload(keyring, &self.inner.keys, live_for, mode);
        self.inner.keyring.record_reload(
            outcome
                .as_ref()
                .map(|_| ())
                .map_err(std::string::ToString::to_string),
        );
        let reloaded = outcome?;
        // Unwrapped data keys carry the old keyring's dictionaries: read again under the new one.
        self.inner.data_keys.clear();
        if reloaded.primary != reloaded.previous_primary
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            // Data-key records are wrapped under the primary: re-wrapped under the new one, so
            // that retiring the old key leaves no record only it opens.
            let cache = self.clone();
            handle.spawn(async move {
                if let Err(err) = cache.rewrap_data_keys().await {
                    tracing::warn!(
                        target: "sealcache::security",
                        error = %err,
                        "data keys could not all be re-wrapped under the new primary key"
                    );
                }
            });
        }
        if !reloaded.removed.is_empty() {
            // L1 holds opened copies: one sealed under a dropped key (perhaps dropped because it
            // leaked) must not outlive the key. L1 does not record which key sealed a copy, so
            // all of it goes; the removal bumps every shard's generation, so a read that opened
            // its value under the old keyring cannot fill L1 after this.
            self.drop_l1_prefix("");
        }
        tracing::info!(
            target: "sealcache::security",
            primary = reloaded.primary,
            previous_primary = reloaded.previous_primary,
            added = ?reloaded.added,
            removed = ?reloaded.removed,
            "keyring reloaded"
        );
        Ok(reloaded)
    }

    /// Counts a keyring reload that failed before it reached the cache (the keyring file could
    /// not be read, or no keyring is configured any more), as a refusal in the security status.
    /// `reason` must not hold key material.
    pub fn record_keyring_reload_failure(&self, reason: impl Into<String>) {
        self.inner.keyring.record_reload(Err(reason.into()));
    }

    /// Authenticates new Redis connections (the data connection and the L1 invalidation
    /// subscription) with `password` from now on, for a rotated ACL password: connections open
    /// now stay authenticated (Redis does not re-check them), the shared data connection is
    /// replaced once the commands in flight on it finish.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for an application-owned connection, or when the client cannot be built.
    pub fn set_redis_password(&self, password: &str) -> Result<()> {
        self.inner.backend.set_password(password)?;
        if let Some(coherence) = &self.inner.coherence {
            coherence.set_password(password);
        }
        *self
            .inner
            .password_generation
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(crate::posture::password_generation(password));
        tracing::info!(target: "sealcache::security", "Redis password replaced for new connections");
        Ok(())
    }

    /// The primary key id and the decrypt-only key ids in use now.
    #[must_use]
    pub fn key_ids(&self) -> (u32, Vec<u32>) {
        let active = self.inner.keyring.current();
        (active.primary_key_id, active.decrypt_only_key_ids.clone())
    }

    /// Performance figures.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.inner.monitor.performance_summary()
    }

    /// The Redis circuit breaker's state.
    #[must_use]
    pub fn breaker_state(&self) -> sealcache_monitor::BreakerState {
        self.inner.backend.breaker_state()
    }

    /// Entries in the L1 tier now (0 when L1 is off).
    #[must_use]
    pub fn l1_entries(&self) -> u64 {
        self.inner.l1.as_ref().map_or(0, |l1| l1.len() as u64)
    }

    /// Bytes held by the L1 tier now, as weighed against `l1_max_bytes` (0 when L1 is off).
    #[must_use]
    pub fn l1_bytes(&self) -> u64 {
        self.inner.l1.as_ref().map_or(0, |l1| l1.bytes() as u64)
    }
}
