//! The active keyring of a running cache, and its replacement without a restart.
//!
//! A reload swaps the whole codec at once (readers hold an `Arc` to the one they started with), so
//! a request never seals under one keyring and opens under a half-replaced one. It is refused when
//! it would break entries that are still alive:
//! - the key-name secret differs (every entry's Redis key would change: a mass miss);
//! - a kept key id carries different material (its entries would no longer authenticate);
//! - it drops the current primary key, or a key that sealed entries less than their longest TTL
//!   ago (as far as this process can know: a key it found decrypt-only at start counts as primary
//!   until the process started), or a key that sealed an entry (with a per-call TTL longer than
//!   that) which has not expired yet;
//! - a kept dictionary id carries different bytes, or (unless forced) a dictionary is dropped
//!   (entries compressed with it would no longer open).
//!
//! [`KeyringReload::Forced`] lets decrypt-only keys and dictionaries go before their entries
//! expire; it never drops the current primary (the key this process seals with: every entry it
//! sealed since its promotion would become a miss), and never changes the name secret or a kept
//! key's material. When a reload removes any key, the cache flushes its L1 tier, so no copy of an
//! entry sealed under a dropped (perhaps leaked) key is served afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sealcache_codec::{Keyring, ValueCodec};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, KeyringRefusal, Result};
use crate::key::KeyScheme;

/// How strictly [`crate::SealedCache::reload_keyring`] guards live entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringReload {
    /// Refuse a keyring that drops a key which may still seal live entries.
    Checked,
    /// Drop decrypt-only keys and dictionaries anyway (entries sealed under them become misses
    /// and `unknown_key_id` events). Dropping the current primary, name-secret and key-material
    /// changes are refused all the same.
    Forced,
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyringReloaded {
    /// The primary key id before the reload.
    pub previous_primary: u32,
    /// The primary key id now.
    pub primary: u32,
    /// Key ids added.
    pub added: Vec<u32>,
    /// Key ids removed.
    pub removed: Vec<u32>,
}

pub use sealcache_api::status::KeyringReloadStatus;

/// The codec and key ids in use now.
pub(crate) struct Active {
    pub(crate) codec: ValueCodec,
    pub(crate) primary_key_id: u32,
    pub(crate) decrypt_only_key_ids: Vec<u32>,
    /// SHA-256 of each key's material: a kept id must keep its key.
    fingerprints: HashMap<u32, [u8; 32]>,
    /// SHA-256 of each dictionary: a kept id must keep its bytes.
    dictionaries: HashMap<u32, [u8; 32]>,
}

impl Active {
    pub(crate) fn new(keyring: &Keyring, codec: ValueCodec) -> Self {
        Self {
            codec,
            primary_key_id: keyring.primary_id(),
            decrypt_only_key_ids: keyring.decrypt_only_ids(),
            fingerprints: fingerprints(keyring),
            dictionaries: new_dictionaries(keyring),
        }
    }
}

fn new_dictionaries(keyring: &Keyring) -> HashMap<u32, [u8; 32]> {
    keyring
        .dictionaries()
        .iter()
        .map(|d| (d.id(), Sha256::digest(d.as_bytes()).into()))
        .collect()
}

fn fingerprints(keyring: &Keyring) -> HashMap<u32, [u8; 32]> {
    keyring
        .keys()
        .map(|(id, key)| (id, Sha256::digest(key.expose_secret()).into()))
        .collect()
}

/// The active keyring and when each key last sealed.
pub(crate) struct ActiveKeyring {
    active: RwLock<Arc<Active>>,
    /// When each key stopped being the primary (as seen by this process).
    retired_at: Mutex<HashMap<u32, Instant>>,
    /// The latest expiry of an entry each key sealed (in this process).
    sealed_until: Mutex<HashMap<u32, Instant>>,
    /// Reloads applied and refused.
    reloads: Mutex<KeyringReloadStatus>,
}

impl ActiveKeyring {
    pub(crate) fn new(keyring: &Keyring, codec: ValueCodec) -> Self {
        let started = Instant::now();
        let retired_at = keyring
            .decrypt_only_ids()
            .into_iter()
            .map(|id| (id, started))
            .collect();
        Self {
            active: RwLock::new(Arc::new(Active::new(keyring, codec))),
            retired_at: Mutex::new(retired_at),
            sealed_until: Mutex::new(HashMap::new()),
            reloads: Mutex::new(KeyringReloadStatus::default()),
        }
    }

    /// Counts a reload's outcome (`Err`: the reason, which never holds key material).
    pub(crate) fn record_reload(&self, outcome: std::result::Result<(), String>) {
        let mut reloads = self.reloads.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(()) => {
                reloads.applied += 1;
                reloads.last_refusal = None;
            }
            Err(reason) => {
                reloads.refused += 1;
                reloads.last_refusal = Some(reason);
            }
        }
    }

    /// Reloads so far.
    pub(crate) fn reloads(&self) -> KeyringReloadStatus {
        self.reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records that `key_id` sealed an entry living `ttl`.
    pub(crate) fn sealed(&self, key_id: u32, ttl: Duration) {
        let until = Instant::now() + ttl;
        let mut sealed = self
            .sealed_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = sealed.entry(key_id).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// The codec and ids in use now (one `Arc` clone).
    pub(crate) fn current(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keyring after the checks in the module docs; `keys` is the cache's key
    /// scheme (the name secret must derive the same names), `live_for` the longest TTL an entry
    /// may have.
    pub(crate) fn reload(
        &self,
        keyring: &Keyring,
        keys: &KeyScheme,
        live_for: Duration,
        mode: KeyringReload,
    ) -> Result<KeyringReloaded> {
        // Derived names compared, never the secrets themselves.
        let probe_request = crate::key::AiRequest::new("keyring-reload", "probe");
        let probe = KeyScheme::new(keys.namespace(), keyring.name_secret())?;
        if probe.ai_key(&probe_request)? != keys.ai_key(&probe_request)? {
            return Err(Error::KeyringRefused {
                reason: KeyringRefusal::NameSecretChanged,
            });
        }
        let mut retired = self
            .retired_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        let new_prints = fingerprints(keyring);
        for (id, print) in &new_prints {
            if active.fingerprints.get(id).is_some_and(|old| old != print) {
                return Err(Error::KeyringRefused {
                    reason: KeyringRefusal::KeyMaterialChanged { key_id: *id },
                });
            }
        }
        for (id, print) in &new_dictionaries(keyring) {
            if active.dictionaries.get(id).is_some_and(|old| old != print) {
                return Err(Error::KeyringRefused {
                    reason: KeyringRefusal::DictionaryChanged { dictionary_id: *id },
                });
            }
        }
        let now = Instant::now();
        let mut removed: Vec<u32> = active
            .fingerprints
            .keys()
            .filter(|id| !new_prints.contains_key(id))
            .copied()
            .collect();
        removed.sort_unstable();
        // Never, forced or not: the primary sealed every entry this process wrote since its
        // promotion, and a keyring without it turns them all into misses at once.
        if removed.contains(&active.primary_key_id) {
            return Err(Error::KeyringRefused {
                reason: KeyringRefusal::DropsPrimary {
                    key_id: active.primary_key_id,
                },
            });
        }
        if mode == KeyringReload::Checked {
            let kept = new_dictionaries(keyring);
            if let Some(id) = active.dictionaries.keys().find(|id| !kept.contains_key(id)) {
                return Err(Error::KeyringRefused {
                    reason: KeyringRefusal::DropsDictionary { dictionary_id: *id },
                });
            }
            let sealed_until = self
                .sealed_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for id in &removed {
                let since = retired.get(id).map_or(Duration::ZERO, |t| now - *t);
                let policy_left = live_for.saturating_sub(since);
                let sealed_left = sealed_until
                    .get(id)
                    .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
                let left = policy_left.max(sealed_left);
                if !left.is_zero() {
                    return Err(Error::KeyringRefused {
                        reason: KeyringRefusal::DropsLiveKey {
                            key_id: *id,
                            live_for_secs: left.as_secs().max(1),
                        },
                    });
                }
            }
        }
        let mut added: Vec<u32> = new_prints
            .keys()
            .filter(|id| !active.fingerprints.contains_key(id))
            .copied()
            .collect();
        added.sort_unstable();
        let previous_primary = active.primary_key_id;
        let mut codec = ValueCodec::new(keyring).with_max_plaintext(active.codec.max_plaintext());
        if let Some(until) = active.codec.legacy_policy().accepts_until() {
            codec = codec
                .dangerous()
                .accept_legacy_plaintext_until(until)
                .done();
        }
        if previous_primary != keyring.primary_id() {
            retired.insert(previous_primary, now);
        }
        retired.remove(&keyring.primary_id());
        let mut sealed_until = self
            .sealed_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for id in &removed {
            retired.remove(id);
            sealed_until.remove(id);
        }
        *active = Arc::new(Active::new(keyring, codec));
        Ok(KeyringReloaded {
            previous_primary,
            primary: keyring.primary_id(),
            added,
            removed,
        })
    }
}
