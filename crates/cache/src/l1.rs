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

/// A shard: its LRU and a generation that every write to the shard bumps.
#[derive(Debug)]
struct Shard {
    lru: LruCache<String, Entry>,
    generation: u64,
}

/// Taken before reading Redis: a fill from that read is kept only if no write touched the key's
/// shard in between (the value read may be older than the write).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    shard: usize,
    generation: u64,
}

/// A sharded LRU of plaintext JSON values with per-entry expiry.
///
/// # Coherence within the process
/// A read that fetched a value from Redis must not overwrite a newer write (or a removal) that
/// finished while the read was in flight. Writers ([`L1::put`], [`L1::remove`],
/// [`L1::remove_prefix`]) bump their shard's generation under the shard lock after Redis accepted
/// them; a read fills L1 through [`L1::fill`] with the [`Stamp`] it took before asking Redis, and
/// the fill is dropped if the generation moved.
#[derive(Debug)]
pub(crate) struct L1 {
    shards: Vec<Mutex<Shard>>,
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
                .map(|_| {
                    Mutex::new(Shard {
                        lru: LruCache::new(per_shard),
                        generation: 0,
                    })
                })
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_ttl,
            len: AtomicUsize::new(0),
        })
    }

    fn shard_index(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    fn lock(&self, index: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[index % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        self.lock(self.shard_index(key))
    }

    /// The stamp to take before reading `key` from Redis.
    pub(crate) fn stamp(&self, key: &str) -> Stamp {
        let shard = self.shard_index(key);
        Stamp {
            shard,
            generation: self.lock(shard).generation,
        }
    }

    /// The value and the remaining lifetime of its Redis entry, if present and not expired.
    pub(crate) fn get(&self, key: &str) -> Option<(Arc<[u8]>, Duration)> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        match shard.lru.get(key) {
            Some(e) if e.expires > now => Some((e.value.clone(), e.redis_expires - now)),
            Some(_) => {
                if shard.lru.pop(key).is_some() {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
                None
            }
            None => None,
        }
    }

    /// Stores a value Redis has just accepted, for at most `remaining` (the Redis entry's TTL) and
    /// `max_ttl`.
    pub(crate) fn put(&self, key: &str, value: Arc<[u8]>, remaining: Duration) {
        let mut shard = self.shard(key);
        shard.generation += 1;
        self.insert(&mut shard, key, value, remaining);
    }

    /// Stores a value read from Redis, unless a write touched its shard since `stamp` was taken.
    pub(crate) fn fill(&self, key: &str, value: Arc<[u8]>, remaining: Duration, stamp: Stamp) {
        let mut shard = self.lock(stamp.shard);
        if shard.generation == stamp.generation {
            self.insert(&mut shard, key, value, remaining);
        }
    }

    fn insert(&self, shard: &mut Shard, key: &str, value: Arc<[u8]>, remaining: Duration) {
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
        if shard.lru.push(key.to_owned(), entry).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops `key` (after a write or removal in Redis, or a failed write).
    pub(crate) fn remove(&self, key: &str) {
        let mut shard = self.shard(key);
        shard.generation += 1;
        if shard.lru.pop(key).is_some() {
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
            shard.generation += 1;
            let doomed: Vec<String> = shard
                .lru
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                if shard.lru.pop(&k).is_some() {
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
                    .lru
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
        l1.put("ns:v2:qa:1", Arc::from(&b"v"[..]), Duration::from_secs(5));
        l1.put("ns:v2:qa:2", Arc::from(&b"v"[..]), Duration::from_secs(5));
        assert_eq!(l1.remove_prefix("ns:v2:qa:"), 2);
        l1.remove("k999");
        l1.remove("absent");
        assert_eq!(l1.len(), l1.counted());
        assert!(L1::new(0, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn a_read_never_overwrites_a_newer_write_or_removal() {
        let l1 = L1::new(32, Duration::from_secs(60)).unwrap();
        let old = Arc::from(&b"old"[..]);
        let new: Arc<[u8]> = Arc::from(&b"new"[..]);
        // A read stamps, a write lands, then the read's (older) value arrives: dropped.
        let stamp = l1.stamp("k");
        l1.put("k", new.clone(), Duration::from_secs(10));
        l1.fill("k", old, Duration::from_secs(10), stamp);
        assert_eq!(l1.get("k").unwrap().0, new);
        // Same after a removal: the key stays absent.
        let stamp = l1.stamp("k");
        l1.remove("k");
        l1.fill("k", new.clone(), Duration::from_secs(10), stamp);
        assert!(l1.get("k").is_none());
        // And after a prefix removal.
        let stamp = l1.stamp("k");
        l1.remove_prefix("k");
        l1.fill("k", new.clone(), Duration::from_secs(10), stamp);
        assert!(l1.get("k").is_none());
        // Without a write in between the fill is kept.
        let stamp = l1.stamp("k");
        l1.fill("k", new.clone(), Duration::from_secs(10), stamp);
        assert_eq!(l1.get("k").unwrap().0, new);
        assert_eq!(l1.len(), l1.counted());
    }
}
