//! [`CacheOptions`]: what a cache does, and its defaults.

use std::time::Duration;

use super::{DEFAULT_L1_MAX_BYTES, DEFAULT_L1_MAX_ENTRY_BYTES};

/// Cache behaviour.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Key namespace.
    pub namespace: String,
    /// L1 capacity in entries (0 turns L1 off).
    pub l1_capacity: usize,
    /// L1 capacity in bytes, as the heap holds its entries (see [`CacheOptions::with_l1_max_bytes`];
    /// 0 turns L1 off).
    pub l1_max_bytes: usize,
    /// Largest value L1 holds; larger values are served from Redis only.
    pub l1_max_entry_bytes: usize,
    /// Longest L1 lifetime (never longer than the Redis entry's remaining TTL).
    pub l1_max_ttl: Duration,
    /// Largest plaintext value, sealed or opened.
    pub max_value_size: usize,
    /// `UNLINK` an entry that fails to open (off by default: the entry is evidence, and the next
    /// write replaces it).
    pub unlink_bad_entries: bool,
    /// Keep L1 coherent with other processes on the same Redis through the namespace's
    /// invalidation channel (on by default; L1 is bypassed while the subscription is down). Turn
    /// off only when this process is the only writer.
    pub l1_coherence: bool,
    /// Single-flight across processes for `get_or_compute` (on by default): a miss takes a short
    /// lease in Redis (`SET NX PX`, a random token, in the entry's slot) before computing, and the
    /// callers of other processes wait for its entry instead of computing too. If Redis cannot be
    /// reached the computation runs locally, as without leases. See `docs/cache.md`, "Leases".
    pub leases: bool,
    /// How long a lease lives without renewal (10 s by default). The holder renews it every third
    /// of this while it computes, so it bounds how long others wait after a holder dies, not how
    /// long a computation may take.
    pub lease_ttl: Duration,
    /// How long `get_or_compute` waits for another process's computation before computing itself
    /// anyway (60 s by default).
    pub lease_wait: Duration,
    /// How often a waiter looks for the entry (and for a vanished lease) while it waits (25 ms by
    /// default): one pipelined `SET NX` + `GET` per look and process.
    pub lease_poll: Duration,
    /// Unwrapped data keys held in process (tenants and subjects; see `docs/cache.md`, "Tenants
    /// and subjects"), at most this many.
    pub data_key_cache_entries: usize,
    /// Unwrapped data keys held in process, at most this many bytes (about 1 KiB each).
    pub data_key_cache_bytes: usize,
    /// Callers of this process following another process's live stream at once, at most this
    /// many (256 by default; see `docs/cache.md`, "Live streams across processes"): each follower
    /// reads Redis until its stream ends, so the number is bounded. Beyond it a waiting caller
    /// waits for the stored entry instead, as a caller that cannot follow does.
    pub max_live_followers: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            namespace: "ai_cache".to_owned(),
            l1_capacity: 10_000,
            l1_max_bytes: DEFAULT_L1_MAX_BYTES,
            l1_max_entry_bytes: DEFAULT_L1_MAX_ENTRY_BYTES,
            l1_max_ttl: Duration::from_secs(300),
            max_value_size: sealcache_codec::DEFAULT_MAX_PLAINTEXT,
            unlink_bad_entries: false,
            l1_coherence: true,
            leases: true,
            lease_ttl: DEFAULT_LEASE_TTL,
            lease_wait: DEFAULT_LEASE_WAIT,
            lease_poll: DEFAULT_LEASE_POLL,
            data_key_cache_entries: crate::data_key::DEFAULT_DATA_KEY_CACHE_ENTRIES,
            data_key_cache_bytes: crate::data_key::DEFAULT_DATA_KEY_CACHE_BYTES,
            max_live_followers: DEFAULT_MAX_LIVE_FOLLOWERS,
        }
    }
}

impl CacheOptions {
    /// Sets the namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the L1 capacity (0 turns L1 off).
    #[must_use]
    pub fn with_l1_capacity(mut self, entries: usize) -> Self {
        self.l1_capacity = entries;
        self
    }

    /// Sets the L1 capacity in bytes: what its entries cost the heap, keys and values in their
    /// heap blocks (each value in a block of its size class, at most an eighth larger, or 15 bytes
    /// up to 128 bytes) and each entry's bookkeeping (311 bytes). A bound below 375 bytes, the
    /// least an entry costs, turns L1 off (with a warning, unless it is 0); a typical small entry
    /// costs about 440 bytes.
    #[must_use]
    pub fn with_l1_max_bytes(mut self, bytes: usize) -> Self {
        self.l1_max_bytes = bytes;
        self
    }

    /// Sets the largest value L1 holds.
    #[must_use]
    pub fn with_l1_max_entry_bytes(mut self, bytes: usize) -> Self {
        self.l1_max_entry_bytes = bytes;
        self
    }

    /// Sets the longest L1 lifetime.
    #[must_use]
    pub fn with_l1_max_ttl(mut self, ttl: Duration) -> Self {
        self.l1_max_ttl = ttl;
        self
    }

    /// Sets the value size cap.
    #[must_use]
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// `UNLINK` entries that fail to open.
    #[must_use]
    pub fn with_unlink_bad_entries(mut self, on: bool) -> Self {
        self.unlink_bad_entries = on;
        self
    }

    /// Turns single-flight across processes (leases) on or off.
    #[must_use]
    pub fn with_leases(mut self, on: bool) -> Self {
        self.leases = on;
        self
    }

    /// Sets the lease TTL (at least 3 ms: the holder renews every third of it).
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(3));
        self
    }

    /// Sets how long `get_or_compute` waits for another process's computation.
    #[must_use]
    pub fn with_lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }

    /// Sets how many unwrapped data keys are held in process (count and bytes; at least one).
    #[must_use]
    pub fn with_data_key_cache(mut self, entries: usize, bytes: usize) -> Self {
        self.data_key_cache_entries = entries;
        self.data_key_cache_bytes = bytes;
        self
    }

    /// Sets how often a waiter looks for the entry (at least 1 ms).
    #[must_use]
    pub fn with_lease_poll(mut self, poll: Duration) -> Self {
        self.lease_poll = poll.max(Duration::from_millis(1));
        self
    }

    /// Sets how many callers of this process may follow live streams at once.
    #[must_use]
    pub fn with_max_live_followers(mut self, followers: usize) -> Self {
        self.max_live_followers = followers;
        self
    }
}

/// Default [`CacheOptions::max_live_followers`].
pub const DEFAULT_MAX_LIVE_FOLLOWERS: usize = 256;

/// Default [`CacheOptions::lease_ttl`].
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Default [`CacheOptions::lease_wait`].
pub const DEFAULT_LEASE_WAIT: Duration = Duration::from_secs(60);
/// Default [`CacheOptions::lease_poll`].
pub const DEFAULT_LEASE_POLL: Duration = Duration::from_millis(25);
