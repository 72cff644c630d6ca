//! AES-256-GCM from RustCrypto `aes-gcm` (feature `rustcrypto`): pure Rust, constant time, AES-NI
//! when the CPU has it.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut as _, Aes256Gcm, KeyInit as _};

use super::{Cipher, GCM_MAX_PLAINTEXT, KeySlots, Nonce, Tag};
use crate::envelope::ALG_AES_256_GCM;
use crate::error::{Error, Result};
use crate::keyring::Keyring;

/// AES-256-GCM (RustCrypto `aes-gcm`) over every key of a [`Keyring`].
///
/// Key schedules are prepared once; the AES crate zeroizes them on drop. Seals are counted per
/// key id with an atomic counter ([`Cipher::seal_count`]).
pub struct Aes256GcmCipher {
    slots: KeySlots<Aes256Gcm>,
}

impl Aes256GcmCipher {
    /// Prepares a cipher for every key of `keyring`; the primary seals.
    #[must_use]
    pub fn new(keyring: &Keyring) -> Self {
        Self {
            slots: KeySlots::new(keyring, |key| {
                Some(Aes256Gcm::new(key.expose_secret().into()))
            }),
        }
    }

    /// Every key id with its seal count, the primary first.
    #[must_use]
    pub fn seal_counts(&self) -> Vec<(u32, u64)> {
        self.slots.seal_counts()
    }
}

impl std::fmt::Debug for Aes256GcmCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aes256GcmCipher")
            .field("key_ids", &self.slots.ids())
            .finish_non_exhaustive()
    }
}

impl Cipher for Aes256GcmCipher {
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
        let slot = self.slots.get(key_id).ok_or(Error::UnknownKeyId(key_id))?;
        let buf = InOutBuf::new(ciphertext, out).map_err(|_| Error::Unauthentic)?;
        // aes-gcm verifies the tag in constant time before it writes any plaintext to `out`.
        slot.key
            .decrypt_inout_detached(nonce.into(), aad, buf, tag.into())
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
        // aes-gcm verifies the tag in constant time before it decrypts: on a failure `buf` still
        // holds the ciphertext.
        slot.key
            .decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
            .map_err(|_| Error::Unauthentic)
    }

    fn seal_count(&self, key_id: u32) -> Option<u64> {
        self.slots.get(key_id).map(|s| s.seals.get())
    }
}
