//! `ValueCodec`: compress, then encrypt, into envelope v1, and back.

use std::cell::RefCell;
use std::time::SystemTime;

use crate::cipher::{Cipher, DefaultCipher, Nonce, Tag};
use crate::compress::{Compressor, Zstd, zstd_decompress_capped};
use crate::dictionary::Dictionaries;
use crate::envelope::{
    self, CIPHERTEXT_OFFSET, FLAG_ZSTD, HEADER_LEN, Header, OVERHEAD, SealContext, TAG_LEN,
    VERSION_1,
};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::nonce::fresh_nonce;

/// Default cap on a value's plaintext size, sealed or opened (16 MiB).
pub const DEFAULT_MAX_PLAINTEXT: usize = 16 << 20;

thread_local! {
    /// Per-thread scratch for the joined parts (`seal_parts`) or the decrypted payload (open).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Per-thread buffer for the associated data.
    static AAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a thread-local buffer, or a fresh one if the buffer is already in use
/// (re-entrant calls from inside a `Serialize` impl): never a `RefCell` panic.
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

/// What is done with stored values that are legacy plaintext JSON (from the Python template).
///
/// The default rejects them (a miss plus a `legacy_rejected` event). Accepting them for a bounded
/// migration window is a weakening, reachable only through [`ValueCodec::dangerous`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegacyPolicy(LegacyInner);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum LegacyInner {
    #[default]
    Reject,
    AcceptJsonUntil(SystemTime),
}

impl LegacyPolicy {
    /// Reject every legacy value (the default).
    #[must_use]
    pub fn reject() -> Self {
        Self(LegacyInner::Reject)
    }

    /// Until when legacy JSON is accepted, if it is.
    #[must_use]
    pub fn accepts_until(&self) -> Option<SystemTime> {
        match self.0 {
            LegacyInner::Reject => None,
            LegacyInner::AcceptJsonUntil(t) => Some(t),
        }
    }

    pub(crate) fn accept_json_until(deadline: SystemTime) -> Self {
        Self(LegacyInner::AcceptJsonUntil(deadline))
    }

    fn accepts_now(&self) -> bool {
        self.accepts_until().is_some_and(|t| SystemTime::now() < t)
    }
}

/// Where an opened value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A v1 envelope that authenticated under key `key_id`.
    Sealed {
        /// The key that sealed it.
        key_id: u32,
        /// Whether the payload was zstd-compressed.
        compressed: bool,
    },
    /// Legacy plaintext JSON accepted by the migration policy. Count it and re-store it sealed.
    LegacyPlaintext,
}

/// A sealed value ready for `SET`, with the sizes the monitor records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    bytes: Vec<u8>,
    plain_len: usize,
    compressed: bool,
    key_id: u32,
}

impl Sealed {
    /// The stored bytes (the envelope).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The stored bytes, by value.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Size of the plaintext.
    #[must_use]
    pub fn plain_len(&self) -> usize {
        self.plain_len
    }

    /// Size of the payload inside the envelope (compressed size when compressed).
    #[must_use]
    pub fn payload_len(&self) -> usize {
        self.bytes.len() - OVERHEAD
    }

    /// Size of the stored envelope.
    #[must_use]
    pub fn stored_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the payload is zstd-compressed.
    #[must_use]
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// The key id that sealed it.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

/// An opened value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    plaintext: Vec<u8>,
    source: Source,
}

impl Opened {
    /// The plaintext.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.plaintext
    }

    /// The plaintext, by value.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.plaintext
    }

    /// Where it came from.
    #[must_use]
    pub fn source(&self) -> Source {
        self.source
    }
}

/// Seals values into envelope v1 and opens them: compress (above a threshold), then AES-256-GCM
/// with a fresh random nonce, bound to the value's namespace and Redis key.
///
/// `ValueCodec` is `Send + Sync`; share one (in an `Arc`) across tasks. Compression contexts,
/// scratch buffers and nonce generators are per thread and reused.
///
/// # Example
///
/// ```
/// use sealcache_codec::{Keyring, SealContext, ValueCodec};
///
/// let codec = ValueCodec::new(&Keyring::generate()?);
/// let ctx = SealContext::new("ai_cache", "ai_cache:v2:summarize:00ff");
/// let sealed = codec.seal(&ctx, b"a cached model answer")?;
/// assert_eq!(sealed.as_bytes()[0], 0x01); // envelope version
/// assert_eq!(codec.open(&ctx, sealed.as_bytes())?.as_bytes(), b"a cached model answer");
///
/// // The same bytes under another Redis key do not open.
/// let other = SealContext::new("ai_cache", "ai_cache:v2:summarize:ff00");
/// assert!(codec.open(&other, sealed.as_bytes()).is_err());
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ValueCodec<C = Zstd, K = DefaultCipher> {
    compressor: C,
    cipher: K,
    max_plaintext: usize,
    legacy: LegacyPolicy,
    dictionaries: Dictionaries,
}

impl ValueCodec<Zstd, DefaultCipher> {
    /// zstd at the default level and threshold (with the keyring's sealing dictionary, if it has
    /// one), AES-256-GCM ([`DefaultCipher`]) over `keyring`, 16 MiB cap, legacy values rejected.
    #[must_use]
    pub fn new(keyring: &Keyring) -> Self {
        Self::with_parts(Zstd::default(), DefaultCipher::new(keyring))
            .with_dictionaries(keyring.dictionaries().clone())
    }
}

impl<C: Compressor, K: Cipher> ValueCodec<C, K> {
    /// A codec from a compressor and a cipher, with the default cap and legacy rejection.
    #[must_use]
    pub fn with_parts(compressor: C, cipher: K) -> Self {
        Self {
            compressor,
            cipher,
            max_plaintext: DEFAULT_MAX_PLAINTEXT,
            legacy: LegacyPolicy::reject(),
            dictionaries: Dictionaries::none(),
        }
    }

    /// Seals with `dictionaries`' sealing dictionary (if any) and opens values compressed with
    /// any of them. Values without a dictionary always open.
    #[must_use]
    pub fn with_dictionaries(mut self, dictionaries: Dictionaries) -> Self {
        self.dictionaries = dictionaries;
        self
    }

    /// The dictionaries in use.
    #[must_use]
    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dictionaries
    }

    /// Sets the cap on plaintext size for sealing and for decompression on open.
    #[must_use]
    pub fn with_max_plaintext(mut self, limit: usize) -> Self {
        self.max_plaintext = limit;
        self
    }

    /// Options that weaken the codec. Audit every use.
    #[must_use]
    pub fn dangerous(self) -> crate::danger::DangerousCodecOptions<C, K> {
        crate::danger::DangerousCodecOptions::new(self)
    }

    pub(crate) fn set_legacy_policy(&mut self, policy: LegacyPolicy) {
        self.legacy = policy;
    }

    /// The cipher (seal counts, key ids).
    #[must_use]
    pub fn cipher(&self) -> &K {
        &self.cipher
    }

    /// The compressor.
    #[must_use]
    pub fn compressor(&self) -> &C {
        &self.compressor
    }

    /// The plaintext cap in bytes.
    #[must_use]
    pub fn max_plaintext(&self) -> usize {
        self.max_plaintext
    }

    /// The legacy policy in force.
    #[must_use]
    pub fn legacy_policy(&self) -> LegacyPolicy {
        self.legacy
    }

    /// Seals `plain` for the Redis key in `ctx`.
    ///
    /// # Errors
    /// [`Error::PlaintextTooLarge`] above the cap; [`Error::Randomness`], [`Error::Compression`],
    /// [`Error::NonceBudgetExhausted`] and [`Error::ContextTooLong`] for the rare rest.
    pub fn seal(&self, ctx: &SealContext<'_>, plain: &[u8]) -> Result<Sealed> {
        self.seal_with_nonce(ctx, plain, fresh_nonce)
    }

    /// Seals the concatenation of `parts` (for example a fixed prefix and a body) without the
    /// caller building it: the envelope is exactly [`ValueCodec::seal`]'s of the joined bytes.
    /// The parts are joined in a per-thread buffer that is reused (no allocation per call).
    ///
    /// # Errors
    /// As [`ValueCodec::seal`].
    pub fn seal_parts(&self, ctx: &SealContext<'_>, parts: &[&[u8]]) -> Result<Sealed> {
        self.seal_parts_with_nonce(ctx, parts, fresh_nonce)
    }

    pub(crate) fn seal_parts_with_nonce(
        &self,
        ctx: &SealContext<'_>,
        parts: &[&[u8]],
        nonce: impl FnOnce() -> Result<Nonce>,
    ) -> Result<Sealed> {
        if let [one] = parts {
            return self.seal_with_nonce(ctx, one, nonce);
        }
        let size = parts.iter().map(|p| p.len()).sum::<usize>();
        if size > self.max_plaintext {
            return Err(Error::PlaintextTooLarge {
                size,
                limit: self.max_plaintext,
            });
        }
        with_buffer(&SCRATCH, |joined| {
            joined.clear();
            joined.reserve(size);
            for part in parts {
                joined.extend_from_slice(part);
            }
            self.seal_with_nonce(ctx, joined, nonce)
        })
    }

    /// [`ValueCodec::seal`] with the nonce from `nonce` (always [`fresh_nonce`] outside tests).
    ///
    /// One buffer, sized once: the header's place, then the payload compressed straight after
    /// it (or the plaintext copied there), encrypted in place, then the tag.
    pub(crate) fn seal_with_nonce(
        &self,
        ctx: &SealContext<'_>,
        plain: &[u8],
        nonce: impl FnOnce() -> Result<Nonce>,
    ) -> Result<Sealed> {
        if plain.len() > self.max_plaintext {
            return Err(Error::PlaintextTooLarge {
                size: plain.len(),
                limit: self.max_plaintext,
            });
        }
        let mut out = Vec::with_capacity(
            OVERHEAD
                + plain
                    .len()
                    .max(zstd::zstd_safe::compress_bound(plain.len())),
        );
        out.extend_from_slice(&[0; CIPHERTEXT_OFFSET]);
        let compressed =
            self.compressor
                .compress_append(plain, self.dictionaries.sealing(), &mut out)?;
        if !compressed {
            out.extend_from_slice(plain);
        }
        let key_id = self.cipher.sealing_key_id();
        let header = Header {
            alg: self.cipher.algorithm(),
            flags: if compressed { FLAG_ZSTD } else { 0 },
            key_id,
        }
        .to_bytes();
        // A fresh random nonce for every seal: never reuse one under the same key.
        let nonce: Nonce = nonce()?;
        out[..HEADER_LEN].copy_from_slice(&header);
        out[HEADER_LEN..CIPHERTEXT_OFFSET].copy_from_slice(&nonce);
        let tag = with_buffer(&AAD, |aad| {
            envelope::associated_data(&header, ctx, aad)?;
            let body = out.get_mut(CIPHERTEXT_OFFSET..).ok_or(Error::Truncated)?;
            self.cipher.encrypt_in_place(&nonce, aad, body)
        })?;
        out.extend_from_slice(&tag);
        Ok(Sealed {
            bytes: out,
            plain_len: plain.len(),
            compressed,
            key_id,
        })
    }

    /// Opens a stored value for the Redis key in `ctx`.
    ///
    /// The GCM tag is verified before any plaintext exists; decompression runs only after that,
    /// under the cap.
    ///
    /// # Errors
    /// The stored-value family of [`Error`] ([`Error::is_stored_value_failure`]).
    pub fn open(&self, ctx: &SealContext<'_>, stored: &[u8]) -> Result<Opened> {
        // Dispatch on the version byte first (a public byte: a plain comparison is fine).
        let first = *stored.first().ok_or(Error::Truncated)?;
        if envelope::looks_like_legacy_json(first) {
            return self.open_legacy(stored);
        }
        if first != VERSION_1 {
            return Err(Error::UnsupportedVersion(first));
        }
        let header = Header::parse_v1(stored)?;
        if !self.cipher.has_key(header.key_id) {
            return Err(Error::UnknownKeyId(header.key_id));
        }
        let compressed = header.flags & FLAG_ZSTD != 0;
        let tag_at = stored.len() - TAG_LEN;
        let nonce: Nonce = stored[HEADER_LEN..CIPHERTEXT_OFFSET]
            .try_into()
            .map_err(|_| Error::Truncated)?;
        let tag: Tag = stored[tag_at..].try_into().map_err(|_| Error::Truncated)?;
        let ciphertext = &stored[CIPHERTEXT_OFFSET..tag_at];
        let header_bytes = header.to_bytes();

        // The ciphertext is copied once, into the buffer that then holds the plaintext, and
        // decrypted there: no plaintext exists anywhere unless the tag verifies.
        let decrypt = |buf: &mut [u8]| {
            with_buffer(&AAD, |aad| {
                envelope::associated_data(&header_bytes, ctx, aad)?;
                self.cipher
                    .decrypt_in_place(header.key_id, &nonce, aad, buf, &tag)
            })
        };
        let plaintext = if compressed {
            with_buffer(&SCRATCH, |scratch| {
                scratch.clear();
                scratch.extend_from_slice(ciphertext);
                decrypt(scratch)?;
                zstd_decompress_capped(scratch, self.max_plaintext, &self.dictionaries)
            })?
        } else {
            let mut out = ciphertext.to_vec();
            decrypt(&mut out)?;
            if out.len() > self.max_plaintext {
                return Err(Error::DecompressedTooLarge {
                    limit: self.max_plaintext,
                });
            }
            out
        };
        Ok(Opened {
            plaintext,
            source: Source::Sealed {
                key_id: header.key_id,
                compressed,
            },
        })
    }

    fn open_legacy(&self, stored: &[u8]) -> Result<Opened> {
        let is_container = matches!(stored.first(), Some(b'{' | b'['));
        if !self.legacy.accepts_now() || !is_container {
            return Err(Error::LegacyRejected);
        }
        if stored.len() > self.max_plaintext {
            return Err(Error::DecompressedTooLarge {
                limit: self.max_plaintext,
            });
        }
        // Only JSON is ever parsed, and only to check it is JSON: nothing executable.
        serde_json::from_slice::<serde::de::IgnoredAny>(stored)
            .map_err(|_| Error::LegacyRejected)?;
        Ok(Opened {
            plaintext: stored.to_vec(),
            source: Source::LegacyPlaintext,
        })
    }
}

#[cfg(test)]
mod agreement;
#[cfg(test)]
mod tests;
