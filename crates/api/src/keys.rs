//! What the security status shows of the server's API keys: counts only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API keys a server accepts, as counts (never an id, digest or key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
#[non_exhaustive]
pub struct KeysPosture {
    /// Whether `SEALCACHE_API_KEYS_FILE` is configured.
    pub keys_file: bool,
    /// Keys in the keys file.
    pub scoped_keys: usize,
    /// Legacy keys (`API_KEY_FILE`, `API_KEY`, `ADDITIONAL_API_KEYS`).
    pub legacy_keys: usize,
    /// Distinct tenants the keys act for (`default` counted when a legacy key exists).
    pub tenants: usize,
    /// Keys holding each scope (`lookup`, `store`, `store_shared`, `invalidate`, `erase`,
    /// `admin`), every scope listed.
    #[serde(default)]
    pub keys_per_scope: BTreeMap<String, usize>,
    /// Keys-file reloads refused since start (the running keys kept serving).
    #[serde(default)]
    pub reloads_refused: u64,
}
