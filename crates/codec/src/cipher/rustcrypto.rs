//! AES-256-GCM from RustCrypto `aes-gcm` (feature `rustcrypto`): pure Rust, constant time, AES-NI
//! when the CPU has it.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut as _, Aes256Gcm, KeyInit as _};

use super::{Cipher, GCM_MAX_PLAINTEXT, Nonce, SealCounter, Tag};
use crate::envelope::ALG_AES_256_GCM;
use crate::error::{Error, Result};
use crate::keyring::Keyring;

struct Slot {
    id: u32,
    aead: Aes256Gcm,
    seals: SealCounter,
}

/// AES-256-GCM (RustCrypto `aes-gcm`) over every key of a [`Keyring`].
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
                seals: SealCounter::default(),
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
        self.slots.iter().map(|s| (s.id, s.seals.get())).collect()
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
        slot.seals.count(slot.id)?;
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
        self.slot(key_id).map(|s| s.seals.get())
    }
}
