//! The in-process L1 tier: bounded, O(1) LRU per shard, entries never outliving Redis.

use std::hash::BuildHasher as _;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

const SHARDS: usize = 16;

#[derive(Debug, Clone)]
struct Entry {
    value: Arc<[u8]>,
    /// When this L1 copy lapses (never after `redis_expires`).
    expires: Instant,
    /// When the Redis entry expires: what callers are told as the remaining TTL.
    redis_expires: Instant,
}

/// A sharded LRU of plaintext JSON values with per-entry expiry.
#[derive(Debug)]
pub(crate) struct L1 {
    shards: Vec<Mutex<LruCache<String, Entry>>>,
    hasher: std::collections::hash_map::RandomState,
    max_ttl: Duration,
    /// Entries held, kept beside the shards so that reading it locks nothing (hot path).
    len: AtomicUsize,
}

impl L1 {
    /// `capacity` entries in all (0 disables L1); entries live at most `max_ttl`.
    pub(crate) fn new(capacity: usize, max_ttl: Duration) -> Option<Self> {
        let per_shard = NonZeroUsize::new(capacity.div_ceil(SHARDS))?;
        Some(Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_ttl,
            len: AtomicUsize::new(0),
        })
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, LruCache<String, Entry>> {
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value and the remaining lifetime of its Redis entry, if present and not expired.
    pub(crate) fn get(&self, key: &str) -> Option<(Arc<[u8]>, Duration)> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        match shard.get(key) {
            Some(e) if e.expires > now => Some((e.value.clone(), e.redis_expires - now)),
            Some(_) => {
                if shard.pop(key).is_some() {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
                None
            }
            None => None,
        }
    }

    /// Stores `value` for at most `remaining` (the Redis entry's remaining TTL) and `max_ttl`.
    pub(crate) fn put(&self, key: &str, value: Arc<[u8]>, remaining: Duration) {
        let ttl = remaining.min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let entry = Entry {
            value,
            expires: now + ttl,
            redis_expires: now + remaining,
        };
        // `push` returns the replaced entry (same key) or the evicted one (another key): either way
        // the count is unchanged; only a push into free room adds one.
        if self.shard(key).push(key.to_owned(), entry).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn remove(&self, key: &str) {
        if self.shard(key).pop(key).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Removes every key starting with `prefix`; returns how many.
    pub(crate) fn remove_prefix(&self, prefix: &str) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let doomed: Vec<String> = shard
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                if shard.pop(&k).is_some() {
                    removed += 1;
                }
            }
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Entries held (an atomic read, no lock).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn counted(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let l1 = L1::new(32, Duration::from_secs(60)).unwrap();
        for i in 0..1000 {
            l1.put(
                &format!("k{i}"),
                Arc::from(&b"v"[..]),
                Duration::from_secs(10),
            );
        }
        assert!(l1.len() <= 32);
        l1.put("short", Arc::from(&b"v"[..]), Duration::from_millis(30));
        assert!(l1.get("short").unwrap().1 <= Duration::from_millis(30));
        // The Redis TTL is reported even when the L1 copy lives shorter.
        l1.put("long", Arc::from(&b"v"[..]), Duration::from_secs(7200));
        assert!(l1.get("long").unwrap().1 > Duration::from_secs(7000));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            l1.get("short").is_none(),
            "an L1 entry never outlives its Redis TTL"
        );
        l1.put("ns:v1:qa:1", Arc::from(&b"v"[..]), Duration::from_secs(5));
        l1.put("ns:v1:qa:2", Arc::from(&b"v"[..]), Duration::from_secs(5));
        assert_eq!(l1.remove_prefix("ns:v1:qa:"), 2);
        l1.remove("k999");
        l1.remove("absent");
        assert_eq!(l1.len(), l1.counted());
        assert!(L1::new(0, Duration::from_secs(1)).is_none());
    }
}
