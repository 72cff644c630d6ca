//! Options that weaken the cache. **Audit every use.** Each is logged and counted as an
//! `override_used` security event when the cache is built.

use std::time::SystemTime;

use crate::builder::CacheBuilder;

/// Reached through [`CacheBuilder::dangerous`].
#[derive(Debug)]
pub struct DangerousCacheOptions<K, T> {
    pub(crate) builder: CacheBuilder<K, T>,
}

impl<K, T> DangerousCacheOptions<K, T> {
    /// Reads legacy plaintext JSON objects and arrays (the Python template's unencrypted values)
    /// until `deadline`, for a bounded migration. Each such read is counted; new writes are sealed.
    #[must_use]
    pub fn accept_legacy_plaintext_until(mut self, deadline: SystemTime) -> Self {
        self.builder.set_legacy_until(deadline);
        self
    }

    /// Back to the builder.
    #[must_use]
    pub fn done(self) -> CacheBuilder<K, T> {
        self.builder
    }
}
