//! Keys: one primary (seals and opens), any number of decrypt-only keys, and the key-name secret.
//!
//! # Text format (keyring file, `REDIS_ENCRYPTION_KEYS_FILE`)
//!
//! One entry per line (or separated by `;`, so a keyring fits in one variable); `#` starts a
//! comment line; blank lines are ignored. LF or CRLF line ends; one leading UTF-8 byte order mark
//! is ignored.
//!
//! ```text
//! # sealcache keyring v1
//! primary 3 <44-char base64 key>
//! decrypt-only 2 <44-char base64 key>
//! name-secret <44-char base64 key>
//! ```
//!
//! * exactly one `primary` line; ids are decimal u32 and unique;
//! * `seal-dictionary ID BASE64` (at most one) and `dictionary ID BASE64`: trained zstd
//!   dictionaries (standard base64 of zstd's dictionary format; `ID` must be the id in its
//!   header). New values are compressed with the sealing one; the others open older values.
//! * `name-secret` is the HMAC key for cache key names (docs/architecture.md §4). It may be left
//!   out only when the keyring holds a single key, in which case it is derived from that key with
//!   HKDF; [`Keyring::rotate`] writes it out explicitly so it survives the rotation.
//!
//! A single bare key (the shape of `REDIS_ENCRYPTION_KEY`) is also accepted by
//! [`Keyring::parse`]; it becomes primary key id 1.

mod key;
mod text;

pub use key::{KEY_LEN, KeyNameSecret, SecretKey};

use std::path::Path;

use zeroize::Zeroizing;

use crate::dictionary::{Dictionaries, Dictionary};
use crate::error::{Error, Result};

/// The byte order mark an editor may put before the first line.
const BOM: char = '\u{feff}';

/// The key id a single `REDIS_ENCRYPTION_KEY` (or a fresh keyring) gets.
pub const FIRST_KEY_ID: u32 = 1;

/// A set of encryption keys with ids, exactly one of them primary, plus the key-name secret.
///
/// `Debug` shows key ids only.
///
/// ```
/// use sealcache_codec::{Keyring, SecretKey};
///
/// // A fresh keyring (key 1 primary), rotated: key 2 seals, key 1 still opens.
/// let ring = Keyring::generate()?;
/// let rotated = ring.rotate(SecretKey::generate()?);
/// assert_eq!(rotated.primary_id(), 2);
/// assert_eq!(rotated.decrypt_only_ids(), [1]);
///
/// // Its text form (for a 0600 file, `REDIS_ENCRYPTION_KEYS_FILE`) parses back to the same ids.
/// let text = rotated.to_text();
/// let parsed = Keyring::parse(&text)?;
/// assert_eq!(parsed.primary_id(), 2);
/// // After the longest TTL, drop the old key.
/// assert_eq!(parsed.without_key(1)?.decrypt_only_ids(), Vec::<u32>::new());
/// // Debug never shows key material.
/// assert!(!format!("{parsed:?}").contains(text.lines().nth(1).unwrap_or("?").rsplit(' ').next().unwrap_or("?")));
/// # Ok::<(), sealcache_codec::Error>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    primary_id: u32,
    /// Every key, the primary included, in the order given.
    keys: Vec<(u32, SecretKey)>,
    name_secret: KeyNameSecret,
    /// Whether `name_secret` was given explicitly (written out by [`Keyring::to_text`]).
    name_secret_explicit: bool,
    /// Trained zstd dictionaries (not secret; kept and rotated with the keys).
    dictionaries: Dictionaries,
}

impl Keyring {
    /// A keyring with one freshly generated primary key (id 1) and a fresh key-name secret.
    ///
    /// # Errors
    /// [`Error::Randomness`] if the OS generator fails.
    pub fn generate() -> Result<Self> {
        let key = SecretKey::generate()?;
        let name = KeyNameSecret::new(SecretKey::generate()?);
        Ok(Self {
            primary_id: FIRST_KEY_ID,
            keys: vec![(FIRST_KEY_ID, key)],
            name_secret: name,
            name_secret_explicit: true,
            dictionaries: Dictionaries::none(),
        })
    }

    /// A keyring holding one key as primary id 1, its name secret derived by HKDF.
    #[must_use]
    pub fn single(key: SecretKey) -> Self {
        let name_secret = KeyNameSecret::derive_from(&key);
        Self {
            primary_id: FIRST_KEY_ID,
            keys: vec![(FIRST_KEY_ID, key)],
            name_secret,
            name_secret_explicit: false,
            dictionaries: Dictionaries::none(),
        }
    }

    /// Builds a keyring from its parts.
    ///
    /// # Errors
    /// [`Error::DuplicateKeyId`] when two keys share an id.
    pub fn from_parts(
        primary: (u32, SecretKey),
        decrypt_only: Vec<(u32, SecretKey)>,
        name_secret: KeyNameSecret,
    ) -> Result<Self> {
        let primary_id = primary.0;
        let mut keys = Vec::with_capacity(1 + decrypt_only.len());
        keys.push(primary);
        for (id, key) in decrypt_only {
            if keys.iter().any(|(have, _)| *have == id) {
                return Err(Error::DuplicateKeyId(id));
            }
            keys.push((id, key));
        }
        Ok(Self {
            primary_id,
            keys,
            name_secret,
            name_secret_explicit: true,
            dictionaries: Dictionaries::none(),
        })
    }

    /// Parses a single bare key or the keyring text format (see the module docs).
    ///
    /// One leading UTF-8 byte order mark (U+FEFF, which some editors write) is ignored, and so
    /// are CR line ends.
    ///
    /// # Errors
    /// Key encoding and keyring syntax errors; none echoes the input.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.strip_prefix(BOM).unwrap_or(text);
        let trimmed = text.trim();
        if !trimmed.is_empty() && !trimmed.contains(|c: char| c.is_whitespace() || c == ';') {
            return SecretKey::parse(trimmed).map(Self::single);
        }
        text::parse(text)
    }

    /// Reads and parses a keyring file (or a file holding a single key).
    ///
    /// File permissions are not checked here; `sealcache-config-gen`'s validator reports
    /// group- or world-readable secret files.
    ///
    /// # Errors
    /// [`Error::KeyringFile`] when the file cannot be read, then as [`Keyring::parse`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::KeyringFile {
            path: path.to_path_buf(),
            source,
        })?;
        let bytes = Zeroizing::new(bytes);
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::KeyringSyntax {
            line: 0,
            reason: "file is not UTF-8 text",
        })?;
        Self::parse(text)
    }

    /// The next free key id (one above the highest).
    fn next_id(&self) -> u32 {
        self.keys
            .iter()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Rotation: `new_key` becomes the primary with the next free id; every existing key (the old
    /// primary included) stays as decrypt-only, and the key-name secret is kept unchanged.
    ///
    /// Keep the old key for at least the longest TTL, then remove it with
    /// [`Keyring::without_key`]. No re-encryption job is needed.
    #[must_use]
    pub fn rotate(&self, new_key: SecretKey) -> Self {
        let new_id = self.next_id();
        let mut keys = Vec::with_capacity(self.keys.len() + 1);
        keys.push((new_id, new_key));
        keys.extend(self.keys.iter().cloned());
        Self {
            primary_id: new_id,
            keys,
            name_secret: self.name_secret.clone(),
            name_secret_explicit: true,
            dictionaries: self.dictionaries.clone(),
        }
    }

    /// The first stage of a two-phase rotation: `new_key` is added **decrypt-only** with the next
    /// free id (returned beside the keyring); the primary, every other key and the key-name
    /// secret are unchanged. Once every process holds it, make it the primary with
    /// [`Keyring::with_primary`], so that no process ever meets a value sealed under a key it
    /// lacks.
    #[must_use]
    pub fn with_decrypt_only_key(&self, new_key: SecretKey) -> (Self, u32) {
        let new_id = self.next_id();
        let mut out = self.clone();
        out.keys.push((new_id, new_key));
        out.name_secret_explicit = true;
        (out, new_id)
    }

    /// The keyring with key `id` as the primary (the second stage of a two-phase rotation); the
    /// previous primary stays, decrypt-only, and the key-name secret is unchanged.
    ///
    /// # Errors
    /// [`Error::UnknownKeyId`] if no such key exists.
    pub fn with_primary(&self, id: u32) -> Result<Self> {
        let Some(at) = self.keys.iter().position(|(have, _)| *have == id) else {
            return Err(Error::UnknownKeyId(id));
        };
        let mut out = self.clone();
        // The primary first, as everywhere else.
        let primary = out.keys.remove(at);
        out.keys.insert(0, primary);
        out.primary_id = id;
        out.name_secret_explicit = true;
        Ok(out)
    }

    /// The keyring without decrypt-only key `id` (the end of a rotation).
    ///
    /// # Errors
    /// [`Error::UnknownKeyId`] if no such key exists; [`Error::NoPrimaryKey`] if `id` is the primary.
    pub fn without_key(&self, id: u32) -> Result<Self> {
        if id == self.primary_id {
            return Err(Error::NoPrimaryKey);
        }
        if !self.keys.iter().any(|(have, _)| *have == id) {
            return Err(Error::UnknownKeyId(id));
        }
        let mut out = self.clone();
        out.keys.retain(|(have, _)| *have != id);
        out.name_secret_explicit = true;
        Ok(out)
    }

    /// The id of the key that seals.
    #[must_use]
    pub fn primary_id(&self) -> u32 {
        self.primary_id
    }

    /// The ids of the keys that only open.
    #[must_use]
    pub fn decrypt_only_ids(&self) -> Vec<u32> {
        self.keys
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id != self.primary_id)
            .collect()
    }

    /// Every (id, key) pair, the primary first.
    pub fn keys(&self) -> impl Iterator<Item = (u32, &SecretKey)> {
        self.keys.iter().map(|(id, key)| (*id, key))
    }

    /// The key with `id`, if present.
    #[must_use]
    pub fn key(&self, id: u32) -> Option<&SecretKey> {
        self.keys
            .iter()
            .find(|(have, _)| *have == id)
            .map(|(_, key)| key)
    }

    /// The HMAC key for cache key names.
    #[must_use]
    pub fn name_secret(&self) -> &KeyNameSecret {
        &self.name_secret
    }

    /// The compression dictionaries (see [`crate::Dictionary`]).
    #[must_use]
    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dictionaries
    }

    /// The keyring with `dictionary` added; with `seal`, new values are compressed with it (the
    /// previous sealing dictionary stays, to open values sealed with it).
    ///
    /// # Errors
    /// [`Error::DuplicateDictionaryId`] when a dictionary with that id is already held.
    pub fn with_dictionary(&self, dictionary: Dictionary, seal: bool) -> Result<Self> {
        let mut out = self.clone();
        out.dictionaries.add(dictionary, seal)?;
        out.name_secret_explicit = true;
        Ok(out)
    }

    /// The keyring without dictionary `id` (once the longest TTL has passed since it stopped
    /// sealing).
    #[must_use]
    pub fn without_dictionary(&self, id: u32) -> Self {
        let mut out = self.clone();
        out.dictionaries.remove(id);
        out.name_secret_explicit = true;
        out
    }

    /// The keyring in its text format, in zeroizing memory, ready for a 0600 file.
    ///
    /// The name secret is always written out, so a derived one becomes explicit.
    #[must_use]
    pub fn to_text(&self) -> Zeroizing<String> {
        text::render(self)
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("primary_id", &self.primary_id)
            .field("decrypt_only_ids", &self.decrypt_only_ids())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
