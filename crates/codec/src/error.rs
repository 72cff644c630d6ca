//! The codec's one error type.

use std::path::PathBuf;

/// The kinds of [`Error`], closed on purpose (no `#[non_exhaustive]`): a caller's `match` over
/// them is exhaustive, so a new kind is a compile error where failures are counted, never a
/// silent misclassification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A stored value whose header or payload is malformed: [`Error::Truncated`],
    /// [`Error::UnsupportedVersion`], [`Error::UnsupportedAlgorithm`],
    /// [`Error::UnsupportedFlags`], [`Error::CorruptPayload`].
    MalformedEnvelope,
    /// [`Error::UnknownKeyId`].
    UnknownKeyId,
    /// [`Error::UnknownDictionary`].
    UnknownDictionary,
    /// [`Error::Unauthentic`]: the tag did not verify (tampered, wrong key, other cache key).
    Unauthentic,
    /// [`Error::DecompressedTooLarge`].
    DecompressedTooLarge,
    /// [`Error::LegacyRejected`].
    LegacyRejected,
    /// Unusable key material (configuration).
    KeyMaterial,
    /// Sealing failed, or the caller's input or type did not fit (not a security event).
    Sealing,
}

/// Everything that can go wrong while sealing, opening or loading keys.
///
/// Variants fall into three families:
///
/// * **Bad stored input** (what `open` can meet in Redis): [`Error::Truncated`],
///   [`Error::UnsupportedVersion`], [`Error::UnsupportedAlgorithm`], [`Error::UnsupportedFlags`],
///   [`Error::UnknownKeyId`], [`Error::Unauthentic`], [`Error::DecompressedTooLarge`],
///   [`Error::CorruptPayload`], [`Error::LegacyRejected`]. Only the first five are decided by the
///   public 7-byte header; everything the GCM tag decides is the single [`Error::Unauthentic`], so
///   `open` is no oracle. [`Error::kind`] groups them for counting.
/// * **Bad key material** (configuration): [`Error::KeyEncoding`], [`Error::KeyLength`],
///   [`Error::KeyringSyntax`], [`Error::DuplicateKeyId`], [`Error::NoPrimaryKey`],
///   [`Error::MultiplePrimaryKeys`], [`Error::KeyringFile`].
/// * **Caller misuse or environment failure while sealing**: [`Error::PlaintextTooLarge`],
///   [`Error::ContextTooLong`], [`Error::NonceBudgetExhausted`], [`Error::Randomness`], [`Error::Compression`],
///   [`Error::Serialize`], [`Error::Deserialize`].
///
/// No `Display` or `Debug` output of this type ever contains plaintext, key bytes or the text
/// that failed to parse as a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stored value is shorter than the smallest possible envelope (header, nonce and tag).
    #[error("sealed value is truncated")]
    Truncated,
    /// The first byte names an envelope version this build does not read.
    #[error("sealed value has unsupported envelope version {0:#04x}")]
    UnsupportedVersion(u8),
    /// The algorithm byte names a cipher this build does not implement.
    #[error("sealed value has unsupported algorithm {0:#04x}")]
    UnsupportedAlgorithm(u8),
    /// Reserved flag bits are set.
    #[error("sealed value has unsupported flags {0:#04x}")]
    UnsupportedFlags(u8),
    /// The value was sealed with a key id that the keyring does not hold (rotated out, or foreign).
    #[error("sealed value names unknown key id {0}")]
    UnknownKeyId(u32),
    /// The (authentic) value was compressed with a dictionary the keyring does not hold (rotated
    /// out too early, or from another deployment).
    #[error("sealed value needs unknown compression dictionary {0}")]
    UnknownDictionary(u32),
    /// The GCM tag did not verify: the value was modified, sealed with another key, or sealed
    /// for another Redis key or namespace. Deliberately says nothing more.
    #[error("sealed value failed authentication")]
    Unauthentic,
    /// The authenticated payload would decompress to more than the configured cap.
    #[error("sealed value decompresses beyond the {limit}-byte limit")]
    DecompressedTooLarge {
        /// The configured cap in bytes.
        limit: usize,
    },
    /// The payload authenticated but its compressed stream is invalid. Only a holder of the key can
    /// produce this, so it is treated as a bad envelope.
    #[error("sealed value has a corrupt compressed payload")]
    CorruptPayload,
    /// The stored value is legacy plaintext (JSON) and the legacy policy rejects it.
    #[error("stored value is legacy plaintext, which the legacy policy rejects")]
    LegacyRejected,

    /// A key's text is not base64 of the expected shape.
    #[error("invalid key encoding: expected {expected}")]
    KeyEncoding {
        /// What was expected, e.g. "44 characters of URL-safe or standard base64".
        expected: &'static str,
    },
    /// A key decoded to the wrong number of bytes.
    #[error("invalid key length: decoded to {decoded} bytes, expected 32")]
    KeyLength {
        /// The number of bytes the text decoded to.
        decoded: usize,
    },
    /// A keyring line does not follow the documented format.
    #[error("keyring line {line}: {reason}")]
    KeyringSyntax {
        /// 1-based line number (entries separated by `;` count as lines).
        line: usize,
        /// What is wrong, without the line's content.
        reason: &'static str,
    },
    /// Two keyring entries share an id.
    #[error("keyring holds key id {0} twice")]
    DuplicateKeyId(u32),
    /// The keyring has no entry marked `primary`.
    #[error("keyring has no primary key")]
    NoPrimaryKey,
    /// The keyring has more than one entry marked `primary`.
    #[error("keyring has more than one primary key")]
    MultiplePrimaryKeys,
    /// Bytes that are not a zstd dictionary (or training failed).
    #[error("invalid compression dictionary: {0}")]
    InvalidDictionary(&'static str),
    /// Two dictionaries with one id.
    #[error("duplicate compression dictionary id {0}")]
    DuplicateDictionaryId(u32),
    /// A keyring file could not be read.
    #[error("cannot read keyring file {path}")]
    KeyringFile {
        /// The file's path.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// The value to seal is larger than the configured maximum plaintext size.
    #[error("value of {size} bytes exceeds the {limit}-byte limit")]
    PlaintextTooLarge {
        /// The value's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A namespace or Redis key longer than 4 GiB was given as sealing context.
    #[error("sealing context is too long")]
    ContextTooLong,
    /// The sealing key has sealed as many values as random 96-bit nonces safely allow (2^32).
    #[error("key {key_id} has exhausted its nonce budget; rotate the encryption key")]
    NonceBudgetExhausted {
        /// The exhausted key's id.
        key_id: u32,
    },
    /// The operating system's random number generator failed.
    #[error("operating system randomness unavailable")]
    Randomness,
    /// The compressor failed while sealing.
    #[error("compression failed")]
    Compression,
    /// A value could not be serialized to JSON (message withheld: it may quote the value).
    #[error("value could not be serialized to JSON")]
    Serialize,
    /// An opened value did not deserialize into the requested type. The position is given; the
    /// serde message is withheld because it can quote plaintext.
    #[error("opened value does not match the requested type (line {line}, column {column})")]
    Deserialize {
        /// Line of the JSON text where deserialization stopped.
        line: usize,
        /// Column of the JSON text where deserialization stopped.
        column: usize,
    },
}

impl Error {
    /// The kind of failure, for callers that count or route errors (the cache maps each kind to
    /// its security event with one exhaustive match).
    ///
    /// ```
    /// use sealcache_codec::{Error, ErrorKind};
    /// assert_eq!(Error::Unauthentic.kind(), ErrorKind::Unauthentic);
    /// assert_eq!(Error::Truncated.kind(), ErrorKind::MalformedEnvelope);
    /// ```
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Truncated
            | Error::UnsupportedVersion(_)
            | Error::UnsupportedAlgorithm(_)
            | Error::UnsupportedFlags(_)
            | Error::CorruptPayload => ErrorKind::MalformedEnvelope,
            Error::UnknownKeyId(_) => ErrorKind::UnknownKeyId,
            Error::UnknownDictionary(_) => ErrorKind::UnknownDictionary,
            Error::Unauthentic => ErrorKind::Unauthentic,
            Error::DecompressedTooLarge { .. } => ErrorKind::DecompressedTooLarge,
            Error::LegacyRejected => ErrorKind::LegacyRejected,
            Error::KeyEncoding { .. }
            | Error::KeyLength { .. }
            | Error::KeyringSyntax { .. }
            | Error::DuplicateKeyId(_)
            | Error::NoPrimaryKey
            | Error::MultiplePrimaryKeys
            | Error::KeyringFile { .. }
            | Error::InvalidDictionary(_)
            | Error::DuplicateDictionaryId(_) => ErrorKind::KeyMaterial,
            Error::PlaintextTooLarge { .. }
            | Error::ContextTooLong
            | Error::NonceBudgetExhausted { .. }
            | Error::Randomness
            | Error::Compression
            | Error::Serialize
            | Error::Deserialize { .. } => ErrorKind::Sealing,
        }
    }

    /// True when the error came from reading a stored value (as opposed to configuration or
    /// caller input): the cache turns these into a miss.
    #[must_use]
    pub fn is_stored_value_failure(&self) -> bool {
        matches!(
            self,
            Error::Truncated
                | Error::UnsupportedVersion(_)
                | Error::UnsupportedAlgorithm(_)
                | Error::UnsupportedFlags(_)
                | Error::UnknownKeyId(_)
                | Error::Unauthentic
                | Error::DecompressedTooLarge { .. }
                | Error::CorruptPayload
                | Error::LegacyRejected
                | Error::UnknownDictionary(_)
        )
    }
}

/// `Result` with the codec's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
