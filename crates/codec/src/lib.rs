//! Sealed values for a Redis cache: zstd, then AES-256-GCM bound to the value's Redis key.
//!
//! A value read from Redis is exactly what this application sealed for that key, or it is not
//! served at all.
//!
//! # Brief overview
//!
//! * [`ValueCodec`] seals a value into envelope v1 and opens it again. It composes a
//!   [`Compressor`] ([`Zstd`] by default, or [`NoCompression`]) with a [`Cipher`]
//!   ([`Aes256GcmCipher`]).
//! * [`Keyring`] holds one primary [`SecretKey`] (seals), any number of decrypt-only keys (open
//!   values sealed before a rotation), and the [`KeyNameSecret`] used to name cache keys.
//! * [`SealContext`] names the namespace and full Redis key a value is bound to.
//! * [`Error`] says exactly what failed; [`Error::kind`] gives its closed [`ErrorKind`], which
//!   the cache maps to the event type the monitor counts with one exhaustive match.
//! * [`danger`] holds the options that weaken the codec (the legacy-plaintext migration window).
//!
//! # Example
//!
//! ```
//! use sealcache_codec::{Error, Keyring, SealContext, SecretKey, ValueCodec};
//!
//! // A keyring from a REDIS_ENCRYPTION_KEY-shaped key (44 characters of base64).
//! let key = SecretKey::generate()?;
//! let keyring = Keyring::parse(&key.expose_text())?;
//! let codec = ValueCodec::new(&keyring);
//!
//! let ctx = SealContext::new("ai_cache", "ai_cache:v2:summarize:9f86d081");
//! let answer = serde_json::json!({"summary": "Short answer.", "tokens": 42});
//! let sealed = codec.seal_json(&ctx, &answer)?;
//! let back: serde_json::Value = codec.open_json(&ctx, sealed.as_bytes())?;
//! assert_eq!(back, answer);
//!
//! // A tampered value is never served.
//! let mut tampered = sealed.into_bytes();
//! let last = tampered.len() - 1;
//! tampered[last] ^= 1;
//! let err = codec.open(&ctx, &tampered).unwrap_err();
//! assert!(matches!(err, Error::Unauthentic));
//! assert_eq!(err.kind(), sealcache_codec::ErrorKind::Unauthentic);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The runnable program `examples/seal_open.rs` (`cargo run -p sealcache-codec --example
//! seal_open`) shows rotation and the legacy policy; it needs no Redis.
//!
//! # Envelope v1
//!
//! ```text
//! offset len  field
//! 0      1    version = 0x01
//! 1      1    alg     = 0x01 AES-256-GCM, random 96-bit nonce
//! 2      1    flags   bit0 zstd; other bits must be 0
//! 3      4    key_id  u32 big-endian
//! 7      12   nonce
//! 19     n+16 ciphertext || tag
//! ```
//!
//! The associated data binds a domain label, the 7 header bytes, the namespace and the full Redis
//! key (length-prefixed). Overhead is [`envelope::OVERHEAD`] = 35 bytes.
//!
//! # Feature flags
//!
//! | feature | enables | default |
//! |---|---|---|
//! | `ring` | [`RingAes256Gcm`]: ring's stitched AES-256-GCM, the [`DefaultCipher`] | yes |
//! | `rustcrypto` | [`Aes256GcmCipher`]: RustCrypto `aes-gcm`, pure Rust (the default cipher when `ring` is off) | no |
//!
//! At least one is needed. Both implement the same envelope algorithm byte-for-byte: values sealed
//! by either open with the other. zstd (bundled C library) is always built. The crate depends on
//! no Redis, HTTP or OpenTelemetry crate.
//!
//! # Security
//!
//! Guaranteed: every seal uses a fresh random nonce from a ChaCha CSPRNG seeded (and reseeded)
//! from the OS; seals are counted per key, with a warning at 2^30 and a refusal at 2^32; `open`
//! returns no plaintext unless the GCM tag verifies (RustCrypto checks the tag before it decrypts;
//! ring decrypts while it authenticates and wipes the output when the tag fails, so no plaintext is
//! returned, kept or observable unless the tag verifies) and decompresses only afterwards, under a
//! hard cap; the header decides only five public failure kinds, and everything the tag decides is
//! [`Error::Unauthentic`]; keys are zeroized on drop and never printed; legacy plaintext is
//! rejected unless a bounded migration window is opened through [`danger`].
//!
//! Left to the caller: passing the full Redis key as context, keeping old keys for at least the
//! longest TTL after a rotation, protecting the keyring file (mode 0600), and counting the
//! security events this crate reports. See `docs/security-model.md` in the repository.

pub mod danger;
pub mod envelope;

mod cipher;
mod compress;
mod dictionary;
mod error;
mod json;
mod keyring;
mod nonce;
mod value_codec;

#[cfg(feature = "rustcrypto")]
pub use cipher::Aes256GcmCipher;
#[cfg(feature = "ring")]
pub use cipher::RingAes256Gcm;
pub use cipher::{Cipher, DefaultCipher, NONCE_BUDGET_LIMIT, NONCE_BUDGET_WARNING, Nonce, Tag};
pub use compress::{
    Compressor, DEFAULT_COMPRESSION_THRESHOLD, DEFAULT_ZSTD_LEVEL, MAX_WINDOW_LOG, NoCompression,
    Zstd,
};
pub use dictionary::{Dictionaries, Dictionary};
pub use envelope::SealContext;
pub use error::{Error, ErrorKind, Result};
pub use keyring::{FIRST_KEY_ID, KEY_LEN, KeyNameSecret, Keyring, SecretKey};
pub use value_codec::{DEFAULT_MAX_PLAINTEXT, LegacyPolicy, Opened, Sealed, Source, ValueCodec};

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
