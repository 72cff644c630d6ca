//! Trained zstd dictionaries: smaller and faster small values, distributed with the keyring.
//!
//! A dictionary is zstd's own format (magic `0xEC30A437`, then a 32-bit dictionary id). The id
//! travels in the zstd frame header, which is **inside** the AEAD-protected payload: it is
//! authenticated like the rest of the value (a value cannot be made to decompress with another
//! dictionary without failing the tag), and envelope v1 is unchanged (flag bit 0 still means "a
//! zstd frame"; no new header bit). A value sealed without a dictionary has no id in its frame
//! and opens as before, so a dictionary is never needed to open older values.
//!
//! Rotation works like keys: the keyring names at most one `seal-dictionary` (used for new
//! values) and any number of `dictionary` entries (kept to open values sealed with them, for at
//! least the longest TTL). A value whose frame names a dictionary the keyring does not hold is
//! [`crate::Error::UnknownDictionary`]: a miss, never a guess.

use std::sync::Arc;

use crate::error::{Error, Result};

/// The magic number that opens a zstd dictionary.
const DICTIONARY_MAGIC: [u8; 4] = 0xEC30_A437_u32.to_le_bytes();

/// One zstd dictionary with its id. Not secret, but kept with the keyring.
#[derive(Clone, PartialEq, Eq)]
pub struct Dictionary {
    id: u32,
    bytes: Arc<[u8]>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Dictionary {
    /// A dictionary from zstd's dictionary format (as `zstd --train` or [`Dictionary::train`]
    /// write it).
    ///
    /// # Errors
    /// [`Error::InvalidDictionary`] when the bytes are not a zstd dictionary with a non-zero id.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.get(..4) != Some(&DICTIONARY_MAGIC[..]) {
            return Err(Error::InvalidDictionary("not a zstd dictionary"));
        }
        let id = zstd::zstd_safe::get_dict_id_from_dict(&bytes)
            .ok_or(Error::InvalidDictionary("the dictionary has no id"))?
            .get();
        check_usable(&bytes)?;
        Ok(Self { id, bytes })
    }

    /// Trains a dictionary of at most `max_size` bytes on `samples` (zstd's trainer; feature
    /// `dictionary-training`). Use a few hundred samples of real values of the deployment (never
    /// another tenant's); 16 KiB suits AI answers of a few KiB.
    ///
    /// # Errors
    /// [`Error::InvalidDictionary`] when training fails (too few or too small samples).
    #[cfg(feature = "dictionary-training")]
    pub fn train<S: AsRef<[u8]>>(samples: &[S], max_size: usize) -> Result<Self> {
        let bytes = zstd::dict::from_samples(samples, max_size).map_err(|_| {
            Error::InvalidDictionary("training failed (too few or too small samples)")
        })?;
        Self::from_bytes(bytes)
    }

    /// The dictionary id (in its header, and in the frame of every value sealed with it).
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The dictionary bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Proves zstd can load the dictionary and round-trip a value with it: a damaged dictionary with
/// an intact header is refused when the keyring loads, not at the first seal.
fn check_usable(bytes: &[u8]) -> Result<()> {
    const DAMAGED: Error =
        Error::InvalidDictionary("the dictionary is damaged (zstd cannot use it)");
    let probe: Vec<u8> = (0u8..=255).cycle().take(1024).collect();
    let mut compressor =
        zstd::bulk::Compressor::with_dictionary(crate::compress::DEFAULT_ZSTD_LEVEL, bytes)
            .map_err(|_| DAMAGED)?;
    let frame = compressor.compress(&probe).map_err(|_| DAMAGED)?;
    let mut decompressor = zstd::bulk::Decompressor::with_dictionary(bytes).map_err(|_| DAMAGED)?;
    let back = decompressor
        .decompress(&frame, probe.len())
        .map_err(|_| DAMAGED)?;
    if back == probe { Ok(()) } else { Err(DAMAGED) }
}

/// The dictionaries of a keyring: at most one to seal with, and every one to open with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dictionaries {
    seal: Option<u32>,
    all: Vec<Dictionary>,
}

impl Dictionaries {
    /// No dictionary (values are compressed without one).
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds `dictionary`, for sealing too when `seal` (the previous sealing dictionary stays, for
    /// opening only). Adding one already held is a no-op, or makes it the sealing one again.
    ///
    /// # Errors
    /// [`Error::DuplicateDictionaryId`] when a *different* dictionary with that id is held.
    pub fn add(&mut self, dictionary: Dictionary, seal: bool) -> Result<()> {
        if let Some(held) = self.get(dictionary.id) {
            // The same dictionary again (training is deterministic): at most a promotion.
            if held.bytes == dictionary.bytes {
                if seal {
                    self.seal = Some(dictionary.id);
                }
                return Ok(());
            }
            return Err(Error::DuplicateDictionaryId(dictionary.id));
        }
        if seal {
            self.seal = Some(dictionary.id);
        }
        self.all.push(dictionary);
        Ok(())
    }

    /// Removes the dictionary `id` (after the longest TTL has passed since it stopped sealing).
    pub fn remove(&mut self, id: u32) {
        self.all.retain(|d| d.id != id);
        if self.seal == Some(id) {
            self.seal = None;
        }
    }

    /// The dictionary new values are sealed with, if any.
    #[must_use]
    pub fn sealing(&self) -> Option<&Dictionary> {
        self.seal.and_then(|id| self.get(id))
    }

    /// The dictionary `id`, if held.
    #[must_use]
    pub fn get(&self, id: u32) -> Option<&Dictionary> {
        self.all.iter().find(|d| d.id == id)
    }

    /// Every dictionary, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &Dictionary> {
        self.all.iter()
    }

    /// True when there is none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}
