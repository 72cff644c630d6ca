//! The `Cipher` seam and its AES-256-GCM implementations over a [`crate::Keyring`].
//!
//! Two implementations of one algorithm (envelope algorithm byte `0x01`), byte-compatible: values
//! sealed by either open with the other (tested both ways, and the GCM test vectors run through
//! both).
//! * [`RingAes256Gcm`] (feature `ring`, the default): ring 0.17's stitched AES-GCM, CTR and GHASH
//!   in one pass. It authenticates while it decrypts and **wipes the output when the tag fails**,
//!   so no plaintext is returned, kept or observable unless the tag verifies.
//! * [`Aes256GcmCipher`] (feature `rustcrypto`): RustCrypto `aes-gcm`, pure Rust; it verifies the
//!   tag before it writes any plaintext. The cross-check in tests.
//!
//! Both count seals per key id against the nonce budget ([`NONCE_BUDGET_WARNING`],
//! [`NONCE_BUDGET_LIMIT`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::envelope::{NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};

#[cfg(not(any(feature = "ring", feature = "rustcrypto")))]
compile_error!(
    "sealcache-codec needs an AES-256-GCM implementation: enable `ring` (default) or `rustcrypto`"
);

#[cfg(feature = "ring")]
mod ring_gcm;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;

#[cfg(feature = "ring")]
pub use ring_gcm::RingAes256Gcm;
#[cfg(feature = "rustcrypto")]
pub use rustcrypto::Aes256GcmCipher;

/// The cipher [`crate::ValueCodec::new`] uses: [`RingAes256Gcm`] with the `ring` feature (the
/// default), else [`Aes256GcmCipher`].
#[cfg(feature = "ring")]
pub type DefaultCipher = RingAes256Gcm;
/// The cipher [`crate::ValueCodec::new`] uses: [`RingAes256Gcm`] with the `ring` feature (the
/// default), else [`Aes256GcmCipher`].
#[cfg(all(not(feature = "ring"), feature = "rustcrypto"))]
pub type DefaultCipher = Aes256GcmCipher;

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
pub(crate) const GCM_MAX_PLAINTEXT: usize = (1 << 36) - 32;

/// One prepared key of a cipher: its id, its key schedule and its seal counter.
pub(crate) struct Slot<K> {
    pub(crate) id: u32,
    pub(crate) key: K,
    pub(crate) seals: SealCounter,
}

/// The prepared keys of a keyring, the primary first (sealing never searches).
pub(crate) struct KeySlots<K> {
    slots: Vec<Slot<K>>,
    primary_id: u32,
}

impl<K> KeySlots<K> {
    /// Prepares every key of `keyring` with `prepare`.
    pub(crate) fn new(
        keyring: &crate::keyring::Keyring,
        prepare: impl Fn(&crate::keyring::SecretKey) -> Option<K>,
    ) -> Self {
        let mut slots: Vec<Slot<K>> = keyring
            .keys()
            .filter_map(|(id, secret)| {
                Some(Slot {
                    id,
                    key: prepare(secret)?,
                    seals: SealCounter::default(),
                })
            })
            .collect();
        if let Some(pos) = slots.iter().position(|s| s.id == keyring.primary_id()) {
            slots.swap(0, pos);
        }
        Self {
            slots,
            primary_id: keyring.primary_id(),
        }
    }

    /// The sealing key: the keyring's primary, never another key that happens to come first (a
    /// primary whose preparation failed fails closed instead).
    pub(crate) fn primary(&self) -> Result<&Slot<K>> {
        self.slots
            .first()
            .filter(|s| s.id == self.primary_id)
            .ok_or(Error::NoPrimaryKey)
    }

    /// The key with id `key_id`.
    pub(crate) fn get(&self, key_id: u32) -> Option<&Slot<K>> {
        self.slots.iter().find(|s| s.id == key_id)
    }

    /// Every key id with its seal count, the primary first.
    pub(crate) fn seal_counts(&self) -> Vec<(u32, u64)> {
        self.slots.iter().map(|s| (s.id, s.seals.get())).collect()
    }

    /// The key ids, the primary first (for `Debug`: never key material).
    pub(crate) fn ids(&self) -> Vec<u32> {
        self.slots.iter().map(|s| s.id).collect()
    }
}

/// One key's seal counter: the nonce budget.
#[derive(Debug, Default)]
pub(crate) struct SealCounter(AtomicU64);

impl SealCounter {
    /// Counts one seal under key `key_id`, or refuses it when the budget is spent.
    ///
    /// Random 96-bit nonces: the collision probability stays negligible only far below 2^32 seals
    /// per key (NIST SP 800-38D §8.3). Count every seal, warn once at 2^30, refuse at 2^32.
    pub(crate) fn count(&self, key_id: u32) -> Result<()> {
        let before = self.0.fetch_add(1, Ordering::Relaxed);
        if before >= NONCE_BUDGET_LIMIT {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::NonceBudgetExhausted { key_id });
        }
        if before == NONCE_BUDGET_WARNING {
            tracing::warn!(
                key_id,
                seals = before,
                "encryption key has sealed 2^30 values; rotate it (config generate --rotate)"
            );
        }
        Ok(())
    }

    /// Seals counted so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

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

    /// Authenticates `ciphertext` and `tag` under key `key_id` and decrypts into `out` (same
    /// length as `ciphertext`). No plaintext is left in `out` unless the tag verifies: an
    /// implementation either verifies before it writes, or (decrypting while it authenticates)
    /// wipes `out` before it returns the error.
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

    /// As [`Cipher::decrypt`], in place: `buf` holds the ciphertext and, once the tag verifies,
    /// the plaintext. The open path uses this so the ciphertext is copied once into the buffer
    /// that becomes the plaintext (no zero-filled output buffer beside it). The default copies
    /// `buf` and calls [`Cipher::decrypt`]; both built-in ciphers work in place.
    ///
    /// # Security
    /// No plaintext is left in `buf` unless the tag verifies: an implementation either verifies
    /// before it writes, or wipes `buf` before it returns the error.
    ///
    /// # Errors
    /// As [`Cipher::decrypt`].
    fn decrypt_in_place(
        &self,
        key_id: u32,
        nonce: &Nonce,
        aad: &[u8],
        buf: &mut [u8],
        tag: &Tag,
    ) -> Result<()> {
        let ciphertext = buf.to_vec();
        let opened = self.decrypt(key_id, nonce, aad, &ciphertext, tag, buf);
        if opened.is_err() {
            buf.fill(0);
        }
        opened
    }

    /// How many values key `key_id` has sealed in this process, if the cipher holds it.
    fn seal_count(&self, key_id: u32) -> Option<u64>;
}
