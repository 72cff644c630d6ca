//! AES-256-GCM from ring 0.17 (feature `ring`, the default): the stitched implementation (CTR and
//! GHASH in one pass, VAES/AVX-512 or AES-NI/CLMUL where the CPU has them), the same one rustls
//! uses.
//!
//! # Security
//! ring decrypts while it authenticates; when the tag does not verify it overwrites the whole
//! output with zeros before returning the error (ring's `open_within`), so no plaintext is
//! returned, kept or observable unless the tag verifies. Here the output is the caller's buffer;
//! [`Cipher::decrypt`] callers never read it after an error.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as RingNonce, UnboundKey};

use super::{Cipher, GCM_MAX_PLAINTEXT, KeySlots, Nonce, Tag};
use crate::envelope::ALG_AES_256_GCM;
use crate::error::{Error, Result};
use crate::keyring::Keyring;

/// AES-256-GCM (ring) over every key of a [`Keyring`]; the primary seals.
///
/// Key schedules are prepared once. Seals are counted per key id ([`Cipher::seal_count`]).
pub struct RingAes256Gcm {
    slots: KeySlots<LessSafeKey>,
}

impl RingAes256Gcm {
    /// Prepares a cipher for every key of `keyring`; the primary seals.
    #[must_use]
    pub fn new(keyring: &Keyring) -> Self {
        Self {
            // A 32-byte key is always accepted; `Option` keeps this infallible.
            slots: KeySlots::new(keyring, |key| {
                UnboundKey::new(&AES_256_GCM, key.expose_secret())
                    .ok()
                    .map(LessSafeKey::new)
            }),
        }
    }

    /// Every key id with its seal count, the primary first.
    #[must_use]
    pub fn seal_counts(&self) -> Vec<(u32, u64)> {
        self.slots.seal_counts()
    }
}

impl std::fmt::Debug for RingAes256Gcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingAes256Gcm")
            .field("key_ids", &self.slots.ids())
            .finish_non_exhaustive()
    }
}

impl Cipher for RingAes256Gcm {
    fn algorithm(&self) -> u8 {
        ALG_AES_256_GCM
    }

    fn sealing_key_id(&self) -> u32 {
        self.slots.primary().map_or(0, |s| s.id)
    }

    fn has_key(&self, key_id: u32) -> bool {
        self.slots.get(key_id).is_some()
    }

    fn encrypt_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag> {
        let slot = self.slots.primary()?;
        slot.seals.count(slot.id)?;
        let tag = slot
            .key
            .seal_in_place_separate_tag(
                RingNonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                buf,
            )
            .map_err(|_| Error::PlaintextTooLarge {
                size: buf.len(),
                limit: GCM_MAX_PLAINTEXT,
            })?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
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
        let slot = self.slots.get(key_id).ok_or(Error::UnknownKeyId(key_id))?;
        if out.len() != ciphertext.len() {
            return Err(Error::Unauthentic);
        }
        out.copy_from_slice(ciphertext);
        // On a tag mismatch ring zeroes `out` before it returns the error.
        slot.key
            .open_in_place_separate_tag(
                RingNonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                ring::aead::Tag::from(*tag),
                out,
                0..,
            )
            .map(|_| ())
            .map_err(|_| Error::Unauthentic)
    }

    fn decrypt_in_place(
        &self,
        key_id: u32,
        nonce: &Nonce,
        aad: &[u8],
        buf: &mut [u8],
        tag: &Tag,
    ) -> Result<()> {
        let slot = self.slots.get(key_id).ok_or(Error::UnknownKeyId(key_id))?;
        // On a tag mismatch ring zeroes `buf` before it returns the error.
        slot.key
            .open_in_place_separate_tag(
                RingNonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                ring::aead::Tag::from(*tag),
                buf,
                0..,
            )
            .map(|_| ())
            .map_err(|_| Error::Unauthentic)
    }

    fn seal_count(&self, key_id: u32) -> Option<u64> {
        self.slots.get(key_id).map(|s| s.seals.get())
    }
}
