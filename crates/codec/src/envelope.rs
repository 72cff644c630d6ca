//! Envelope v1: the byte layout of a sealed value, as stored raw in Redis.
//!
//! ```text
//! offset len  field
//! 0      1    version = 0x01   (never '{' '[' '"': legacy plaintext JSON stays recognisable)
//! 1      1    alg     = 0x01 AES-256-GCM, random 96-bit nonce (0x02 AES-256-GCM-SIV reserved)
//! 2      1    flags   bit0 zstd; every other bit must be 0 (reject otherwise)
//! 3      4    key_id  u32 big-endian, which keyring key sealed it
//! 7      12   nonce   from a CSPRNG seeded by the OS, fresh for every seal
//! 19     n+16 ciphertext || tag
//! ```
//!
//! Associated data (authenticated, not stored):
//!
//! ```text
//! AAD_LABEL || header[0..7] || u32be(len(namespace)) || namespace || u32be(len(redis_key)) || redis_key
//! ```
//!
//! The full Redis key is bound so that a value copied onto another entry's key (or into another
//! namespace) fails authentication instead of being served as that entry's answer. The header is
//! bound so that no header byte (key id, flags) can be changed without detection. The label
//! separates these AEAD inputs from any other use of the same key.

use crate::error::{Error, Result};

/// Envelope version 1.
pub const VERSION_1: u8 = 0x01;
/// AES-256-GCM with a random 96-bit nonce.
pub const ALG_AES_256_GCM: u8 = 0x01;
/// AES-256-GCM-SIV (reserved; not implemented, rejected on read).
pub const ALG_AES_256_GCM_SIV_RESERVED: u8 = 0x02;
/// Flag bit 0: the plaintext was zstd-compressed before encryption.
pub const FLAG_ZSTD: u8 = 0b0000_0001;
/// Every flag bit this version defines.
pub const KNOWN_FLAGS: u8 = FLAG_ZSTD;
/// Length of the public header (version, alg, flags, key id).
pub const HEADER_LEN: usize = 7;
/// Length of the GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the GCM tag.
pub const TAG_LEN: usize = 16;
/// Offset of the ciphertext.
pub const CIPHERTEXT_OFFSET: usize = HEADER_LEN + NONCE_LEN;
/// Bytes an envelope adds to its (possibly compressed) payload: 35.
pub const OVERHEAD: usize = CIPHERTEXT_OFFSET + TAG_LEN;
/// Domain label that opens the associated data.
pub const AAD_LABEL: &[u8] = b"sealcache envelope v1\0";

/// Where a sealed value is stored: the AEAD binds the value to it.
///
/// # Security
///
/// Pass the **full** Redis key exactly as it is written to Redis, and the namespace it lives in.
/// Opening with a different context fails with [`Error::Unauthentic`]; that is what stops a
/// value copied onto another key from being served.
///
/// ```
/// use sealcache_codec::{Error, Keyring, SealContext, ValueCodec};
///
/// let codec = ValueCodec::new(&Keyring::generate()?);
/// let here = SealContext::new("ai_cache", "ai_cache:v2:qa:1f2e");
/// let sealed = codec.seal(&here, br#"{"answer": 42}"#)?;
/// assert_eq!(codec.open(&here, sealed.as_bytes())?.as_bytes(), br#"{"answer": 42}"#);
/// // The same bytes under another key, or in another namespace, are refused.
/// let there = SealContext::new("ai_cache", "ai_cache:v2:qa:9a9a");
/// assert!(matches!(codec.open(&there, sealed.as_bytes()), Err(Error::Unauthentic)));
/// let other_ns = SealContext::new("other", "ai_cache:v2:qa:1f2e");
/// assert!(matches!(codec.open(&other_ns, sealed.as_bytes()), Err(Error::Unauthentic)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    namespace: &'a str,
    redis_key: &'a str,
}

impl<'a> SealContext<'a> {
    /// A context for `redis_key` inside `namespace`.
    #[must_use]
    pub const fn new(namespace: &'a str, redis_key: &'a str) -> Self {
        Self {
            namespace,
            redis_key,
        }
    }

    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &'a str {
        self.namespace
    }

    /// The full Redis key.
    #[must_use]
    pub fn redis_key(&self) -> &'a str {
        self.redis_key
    }
}

/// The parsed public header of a v1 envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) alg: u8,
    pub(crate) flags: u8,
    pub(crate) key_id: u32,
}

impl Header {
    pub(crate) fn to_bytes(self) -> [u8; HEADER_LEN] {
        let id = self.key_id.to_be_bytes();
        [VERSION_1, self.alg, self.flags, id[0], id[1], id[2], id[3]]
    }

    /// Parses and checks the header of a value already known to start with [`VERSION_1`].
    ///
    /// Checks run in header order so that each failure is decided by public bytes only.
    pub(crate) fn parse_v1(stored: &[u8]) -> Result<Self> {
        if stored.len() < OVERHEAD {
            return Err(Error::Truncated);
        }
        let alg = stored[1];
        if alg != ALG_AES_256_GCM {
            return Err(Error::UnsupportedAlgorithm(alg));
        }
        let flags = stored[2];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::UnsupportedFlags(flags));
        }
        let key_id = u32::from_be_bytes([stored[3], stored[4], stored[5], stored[6]]);
        Ok(Self { alg, flags, key_id })
    }
}

/// Writes the associated data for `header` and `ctx` into `out` (cleared first).
pub(crate) fn associated_data(
    header: &[u8; HEADER_LEN],
    ctx: &SealContext<'_>,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    out.reserve(AAD_LABEL.len() + HEADER_LEN + 8 + ctx.namespace.len() + ctx.redis_key.len());
    out.extend_from_slice(AAD_LABEL);
    out.extend_from_slice(header);
    for part in [ctx.namespace.as_bytes(), ctx.redis_key.as_bytes()] {
        let len = u32::try_from(part.len()).map_err(|_| Error::ContextTooLong)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(())
}

/// True when `first` is the first byte of a JSON document the legacy template would have stored.
pub(crate) fn looks_like_legacy_json(first: u8) -> bool {
    matches!(first, b'{' | b'[' | b'"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_make_contexts_unambiguous() {
        let header = Header {
            alg: ALG_AES_256_GCM,
            flags: 0,
            key_id: 1,
        }
        .to_bytes();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        associated_data(&header, &SealContext::new("ab", "c"), &mut a).unwrap();
        associated_data(&header, &SealContext::new("a", "bc"), &mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn version_byte_is_never_a_json_opener() {
        assert!(!looks_like_legacy_json(VERSION_1));
        assert_eq!(OVERHEAD, 35);
    }
}
