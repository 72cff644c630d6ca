//! A single 32-byte secret and its text form.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::TryRng as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of every key in bytes.
pub const KEY_LEN: usize = 32;

const EXPECTED_TEXT: &str =
    "44 characters of URL-safe or standard base64 (43 without padding) encoding 32 bytes";

/// A 32-byte secret key held in zeroizing memory.
///
/// It has no `Display` and no `Serialize`, and its `Debug` prints `SecretKey(..)`. Its bytes
/// come out only through [`SecretKey::expose_secret`] and its text through
/// [`SecretKey::expose_text`].
///
/// ```
/// use sealcache_codec::SecretKey;
///
/// let key = SecretKey::generate()?;
/// let text = key.expose_text(); // 44 characters of URL-safe base64: the REDIS_ENCRYPTION_KEY form
/// assert_eq!(text.len(), 44);
/// let same = SecretKey::parse(&text)?;
/// assert_eq!(same.expose_secret(), key.expose_secret());
/// assert_eq!(format!("{key:?}"), "SecretKey(..)");
/// // Errors say what was expected, never echo the input.
/// let err = SecretKey::parse("not-a-key").unwrap_err();
/// assert!(!err.to_string().contains("not-a-key"));
/// # Ok::<(), sealcache_codec::Error>(())
/// ```
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    /// Draws a new key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`Error::Randomness`] if the OS generator fails.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::SysRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|_| Error::Randomness)?;
        Ok(Self(bytes))
    }

    /// Wraps raw key bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses the text form: URL-safe base64 with padding (44 characters, the shape of a Fernet
    /// key and of `REDIS_ENCRYPTION_KEY`); standard base64 and unpadded forms are accepted too.
    /// Surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`Error::KeyEncoding`] or [`Error::KeyLength`]; neither echoes the input.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let engine = match (text.len(), text.contains(['+', '/']), text.ends_with('=')) {
            (44, false, true) => &URL_SAFE,
            (44, true, true) => &STANDARD,
            (43, false, false) => &URL_SAFE_NO_PAD,
            (43, true, false) => &STANDARD_NO_PAD,
            _ => return Self::length_error(text),
        };
        let mut buf = Zeroizing::new([0u8; 48]);
        let n = engine
            .decode_slice(text, buf.as_mut())
            .map_err(|_| Error::KeyEncoding {
                expected: EXPECTED_TEXT,
            })?;
        let bytes: [u8; KEY_LEN] = buf
            .get(..n)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::KeyLength { decoded: n })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Explains a wrong-length text: decodes it (if it is base64 at all) only to report the length.
    fn length_error(text: &str) -> Result<Self> {
        let engines = [&URL_SAFE, &STANDARD, &URL_SAFE_NO_PAD, &STANDARD_NO_PAD];
        for engine in engines {
            if let Ok(decoded) = engine.decode(text) {
                let decoded = Zeroizing::new(decoded);
                return Err(Error::KeyLength {
                    decoded: decoded.len(),
                });
            }
        }
        Err(Error::KeyEncoding {
            expected: EXPECTED_TEXT,
        })
    }

    /// The key bytes. Handle with care: never log, print or store them outside a secret file.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The canonical text form (URL-safe base64 with padding, 44 characters) in zeroizing memory.
    #[must_use]
    pub fn expose_text(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE.encode(self.0.as_ref()))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The secret that keys the HMAC of cache key names (docs/architecture.md §4).
///
/// It is separate from the encryption keys and does not change when they rotate: changing it
/// turns every cache entry into a miss.
#[derive(Clone)]
pub struct KeyNameSecret(SecretKey);

impl KeyNameSecret {
    /// HKDF-SHA256 info label under which the name secret is derived from a single key.
    pub const HKDF_INFO: &'static [u8] = b"sealcache key-name secret v1";

    /// Wraps a secret key as the key-name secret.
    #[must_use]
    pub fn new(key: SecretKey) -> Self {
        Self(key)
    }

    /// Derives the name secret from an encryption key with HKDF-SHA256 under [`Self::HKDF_INFO`],
    /// for deployments that configure one `REDIS_ENCRYPTION_KEY` only.
    #[must_use]
    pub fn derive_from(key: &SecretKey) -> Self {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, key.expose_secret());
        let mut okm = Zeroizing::new([0u8; KEY_LEN]);
        // A 32-byte output is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail;
        // if it ever did, the zero key would still be distinct from every real key.
        if hk.expand(Self::HKDF_INFO, okm.as_mut()).is_err() {
            okm.fill(0);
        }
        Self(SecretKey(okm))
    }

    /// The secret bytes. Handle with care.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.0.expose_secret()
    }

    /// The underlying key (for writing a keyring file).
    #[must_use]
    pub fn as_key(&self) -> &SecretKey {
        &self.0
    }
}

impl std::fmt::Debug for KeyNameSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyNameSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_alphabets() {
        let key = SecretKey::from_bytes([0xfb; 32]);
        let text = key.expose_text();
        assert_eq!(text.len(), 44);
        assert!(text.contains('-') || text.contains('_'));
        assert_eq!(
            SecretKey::parse(&text).unwrap().expose_secret(),
            &[0xfb; 32]
        );
        let standard = STANDARD.encode([0xfb; 32]);
        assert_eq!(
            SecretKey::parse(&standard).unwrap().expose_secret(),
            &[0xfb; 32]
        );
        let unpadded = URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert_eq!(
            SecretKey::parse(&unpadded).unwrap().expose_secret(),
            &[0xfb; 32]
        );
    }

    #[test]
    fn wrong_inputs_say_what_was_expected_without_echo() {
        let short = URL_SAFE.encode([7u8; 16]);
        let err = SecretKey::parse(&short).unwrap_err();
        assert!(matches!(err, Error::KeyLength { decoded: 16 }));
        assert!(!err.to_string().contains(&short));
        let garbage = "not a key at all, definitely not base64!!!!";
        let err = SecretKey::parse(garbage).unwrap_err();
        assert!(matches!(err, Error::KeyEncoding { .. }));
        assert!(err.to_string().contains("44 characters"));
        assert!(!format!("{err:?}").contains("definitely"));
    }

    #[test]
    fn derived_name_secret_differs_from_key() {
        let key = SecretKey::generate().unwrap();
        let name = KeyNameSecret::derive_from(&key);
        assert_ne!(name.expose_secret(), key.expose_secret());
        assert_eq!(
            name.expose_secret(),
            KeyNameSecret::derive_from(&key).expose_secret()
        );
        assert_eq!(format!("{name:?}"), "KeyNameSecret(..)");
    }
}
