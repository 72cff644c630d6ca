//! The `Cipher` seam and its AES-256-GCM implementation over a [`Keyring`].

use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut as _, Aes256Gcm, KeyInit as _};

use crate::envelope::{ALG_AES_256_GCM, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::keyring::Keyring;

/// A 96-bit AEAD nonce.
pub type Nonce = [u8; NONCE_LEN];
/// A 128-bit AEAD tag.
pub type Tag = [u8; TAG_LEN];

/// Seals per key after which a warning is logged (2^30).
pub const NONCE_BUDGET_WARNING: u64 = 1 << 30;
/// Seals per key after which sealing is refused (2^32, the NIST SP 800-38D bound for random
/// 96-bit nonces). Rotate the key long before.
pub const NONCE_BUDGET_LIMIT: u64 = 1 << 32;

/// The longest plaintext one GCM invocation accepts (2^36 - 32 bytes).
const GCM_MAX_PLAINTEXT: usize = (1 << 36) - 32;

/// An AEAD with key ids: the seam between the envelope and the key material.
///
/// [`crate::ValueCodec`] lays out the envelope, builds the associated data and draws nonces; a
/// `Cipher` only encrypts with its sealing key and decrypts with any key it holds.
pub trait Cipher: Send + Sync + std::fmt::Debug {
    /// The envelope's algorithm byte for this cipher.
    fn algorithm(&self) -> u8;

    /// The id of the key that [`Cipher::encrypt_in_place`] uses.
    fn sealing_key_id(&self) -> u32;

    /// True when the cipher holds key `key_id`.
    fn has_key(&self, key_id: u32) -> bool;

    /// Encrypts `buf` in place with the sealing key and returns the tag.
    ///
    /// # Security
    /// The nonce **must never** repeat for the same key. [`crate::ValueCodec`] draws a fresh
    /// random nonce for every call; call this directly only with a nonce you can prove unique.
    ///
    /// # Errors
    /// [`Error::NonceBudgetExhausted`] once the key has sealed [`NONCE_BUDGET_LIMIT`] values.
    fn encrypt_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag>;

    /// Authenticates `ciphertext` and `tag` under key `key_id`, then decrypts into `out`
    /// (same length as `ciphertext`). Nothing is written to `out` unless the tag verifies.
    ///
    /// # Errors
    /// [`Error::UnknownKeyId`] for a key the cipher lacks; [`Error::Unauthentic`] for everything
    /// the tag rejects.
    fn decrypt(
        &self,
        key_id: u32,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &Tag,
        out: &mut [u8],
    ) -> Result<()>;

    /// How many values key `key_id` has sealed in this process, if the cipher holds it.
    fn seal_count(&self, key_id: u32) -> Option<u64>;
}

struct Slot {
    id: u32,
    aead: Aes256Gcm,
    seals: AtomicU64,
}

/// AES-256-GCM with a random 96-bit nonce over every key of a [`Keyring`].
///
/// Key schedules are prepared once; the AES crate zeroizes them on drop. Seals are counted per
/// key id with an atomic counter ([`Cipher::seal_count`]).
pub struct Aes256GcmCipher {
    /// Primary first.
    slots: Vec<Slot>,
}

impl Aes256GcmCipher {
    /// Prepares a cipher for every key of `keyring`; the primary seals.
    #[must_use]
    pub fn new(keyring: &Keyring) -> Self {
        let mut slots: Vec<Slot> = keyring
            .keys()
            .map(|(id, key)| Slot {
                id,
                aead: Aes256Gcm::new(key.expose_secret().into()),
                seals: AtomicU64::new(0),
            })
            .collect();
        // Keep the primary in slot 0 so sealing never searches.
        if let Some(pos) = slots.iter().position(|s| s.id == keyring.primary_id()) {
            slots.swap(0, pos);
        }
        Self { slots }
    }

    /// Every key id with its seal count, the primary first.
    #[must_use]
    pub fn seal_counts(&self) -> Vec<(u32, u64)> {
        self.slots
            .iter()
            .map(|s| (s.id, s.seals.load(Ordering::Relaxed)))
            .collect()
    }

    fn slot(&self, key_id: u32) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == key_id)
    }
}

impl std::fmt::Debug for Aes256GcmCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aes256GcmCipher")
            .field(
                "key_ids",
                &self.slots.iter().map(|s| s.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Cipher for Aes256GcmCipher {
    fn algorithm(&self) -> u8 {
        ALG_AES_256_GCM
    }

    fn sealing_key_id(&self) -> u32 {
        self.slots.first().map_or(0, |s| s.id)
    }

    fn has_key(&self, key_id: u32) -> bool {
        self.slot(key_id).is_some()
    }

    fn encrypt_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag> {
        let slot = self.slots.first().ok_or(Error::NoPrimaryKey)?;
        // Random 96-bit nonces: the collision probability stays negligible only far below 2^32
        // seals per key (NIST SP 800-38D §8.3). Count every seal, warn once at 2^30, refuse at 2^32.
        let before = slot.seals.fetch_add(1, Ordering::Relaxed);
        if before >= NONCE_BUDGET_LIMIT {
            slot.seals.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::NonceBudgetExhausted { key_id: slot.id });
        }
        if before == NONCE_BUDGET_WARNING {
            tracing::warn!(
                key_id = slot.id,
                seals = before,
                "encryption key has sealed 2^30 values; rotate it (config generate --rotate)"
            );
        }
        let tag = slot
            .aead
            .encrypt_inout_detached(nonce.into(), aad, buf.into())
            .map_err(|_| Error::PlaintextTooLarge {
                size: buf.len(),
                limit: GCM_MAX_PLAINTEXT,
            })?;
        Ok(tag.into())
    }

    fn decrypt(
        &self,
        key_id: u32,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &Tag,
        out: &mut [u8],
    ) -> Result<()> {
        let slot = self.slot(key_id).ok_or(Error::UnknownKeyId(key_id))?;
        let buf = InOutBuf::new(ciphertext, out).map_err(|_| Error::Unauthentic)?;
        // aes-gcm verifies the tag in constant time before it writes any plaintext to `out`.
        slot.aead
            .decrypt_inout_detached(nonce.into(), aad, buf, tag.into())
            .map_err(|_| Error::Unauthentic)
    }

    fn seal_count(&self, key_id: u32) -> Option<u64> {
        self.slot(key_id).map(|s| s.seals.load(Ordering::Relaxed))
    }
}
