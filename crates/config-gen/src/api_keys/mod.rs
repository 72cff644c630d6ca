//! Scoped API keys: the `SEALCACHE_API_KEYS_FILE` format, its validation, and minting new keys.
//!
//! The file is TOML, one `[[key]]` table per key, holding only the SHA-256 digest of each key:
//!
//! ```toml
//! [[key]]
//! id = "web"                      # shown in logs; 1-64 of a-z, 0-9, _ or -
//! tenant = "acme"                 # whose entries the key reads and writes; same rule
//! scopes = ["lookup", "store"]    # any of lookup, store, store_shared, invalidate, erase, admin
//! sha256 = "<64 hex digits>"      # the key's SHA-256; the key itself is never stored
//! ```
//!
//! * [`parse`] and [`load`] read and validate a file ([`ApiKeysFile`]): unique ids and digests,
//!   64-hex digests, known scopes, valid names; each error names the line and field, never a value.
//!   [`load`] also refuses a file its group or others can write.
//! * [`mint`] makes a random 256-bit key, appends its digest atomically (0600, or the file's own owner and mode) and returns the
//!   key once ([`MintedKey`]); the operator binary's `sealcache api-key` and `cargo xtask api-key`
//!   both call it.
//! * [`Digest::of`] and [`Digest::ct_eq`] are how a server recognises a presented key.

mod file;
mod mint;
mod types;

pub use file::{ApiKeyEntry, ApiKeysFile, KeysFileError, MAX_FILE_BYTES, load, parse};
pub use mint::{KEY_PREFIX, MintedKey, check_mint, mint};
pub use types::{Digest, InvalidName, KeyId, MAX_NAME_LEN, Scope, Scopes, Tenant, UnknownScope};
