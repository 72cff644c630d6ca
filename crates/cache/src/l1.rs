//! The in-process L1 tier: bounded in entries **and bytes**, O(1) LRU per shard, entries never
//! outliving Redis.

use std::hash::BuildHasher as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

use crate::stored_value::Meta;

/// The most shards L1 is split into (fewer when its bounds are small: see [`shard_count`]).
const MAX_SHARDS: usize = 16;

/// The key length a shard's byte budget leaves room for beside the largest value L1 may hold:
/// the longest key the cache makes.
const KEY_ALLOWANCE: usize = crate::key::LONGEST_KEY;

/// The fewest entries of the entry bound, and of the entry cap's size in the byte bound, a shard
/// is given room for: with fewer, keys that hash to one shard evict each other while others sit
/// empty, and a small L1 holds far less than its bounds (one entry per shard held 10 or 11 of 17
/// keys under a bound of 17).
const PER_SHARD: usize = 8;

/// The heap block an allocation of `n` bytes takes with glibc's malloc (what the server's image
/// runs): an 8-byte header, rounded to 16 bytes, 32 at least. Saturates instead of overflowing.
const fn heap_block(n: usize) -> usize {
    let Some(rounded) = n.saturating_add(8).checked_next_multiple_of(16) else {
        return usize::MAX;
    };
    if rounded < 32 { 32 } else { rounded }
}

/// Bytes charged per entry beyond the blocks of its key and value, each in its heap block:
/// * the LRU node (the key's `String` header, the [`Entry`] with its metadata inline, two links);
/// * the value's shared header, which `bytes` allocates with the value (or, when the value fills
///   its class exactly, on the first clone: every hit clones);
/// * the map's slot (a key reference and a node pointer, 16 bytes, and a control byte) at the
///   map's lowest load, 7 of 16 buckets full just after it grows: at most 39 bytes per entry.
const ENTRY_OVERHEAD: usize = heap_block(std::mem::size_of::<(String, Entry, usize, usize)>())
    + heap_block(3 * std::mem::size_of::<usize>())
    + (16 + 1) * 16 / 7
    + 1;

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    /// The value's kind and store time (a `max_age` lookup needs the age of an L1 copy too).
    meta: Meta,
    /// When this L1 copy lapses (never after `redis_expires`).
    expires: Instant,
    /// When the Redis entry expires: what callers are told as the remaining TTL.
    redis_expires: Instant,
}

/// What an entry costs the heap: its key in its own block, its value in a block of its size class
/// ([`compact`]), and [`ENTRY_OVERHEAD`].
fn weight(key: &str, value: &[u8]) -> usize {
    heap_block(key.len())
        .saturating_add(heap_block(size_class(value.len())))
        .saturating_add(ENTRY_OVERHEAD)
}

/// The capacity L1 gives a value of `len` bytes: eight size classes per doubling (multiples of
/// 16 up to 128 bytes), so at most an eighth more than the value (15 bytes more up to 128 bytes;
/// a length no class holds is its own class). Blocks of a few sizes are
/// reused when entries are replaced, where blocks of every length leave the heap fragmented: with
/// glibc's allocator and small values replaced at a binding bound, resident memory settled at
/// 1.5 times the bytes held with exact-length blocks and at 1.05 times with these classes
/// (docs/benchmarks.md, "How L1 memory grows").
fn size_class(len: usize) -> usize {
    if len <= 128 {
        return len.next_multiple_of(16);
    }
    len.checked_next_power_of_two()
        .and_then(|power| len.checked_next_multiple_of(power / 16))
        .unwrap_or(len)
}

/// The value in a block of its size class. A `Bytes` may keep a larger allocation alive (a
/// `Vec`'s spare capacity: `serde_json` doubles its buffer as it writes; or a slice of a larger
/// buffer) that L1 would otherwise hold without charging it: up to twice the value.
fn compact(value: &[u8]) -> Bytes {
    let mut block = Vec::with_capacity(size_class(value.len()));
    block.extend_from_slice(value);
    Bytes::from(block)
}

/// A shard: its LRU, the bytes it holds, its share of L1's bounds, and a generation that every
/// write to the shard bumps.
#[derive(Debug)]
struct Shard {
    lru: LruCache<String, Entry>,
    bytes: usize,
    generation: u64,
    /// Most entries this shard holds.
    max_entries: usize,
    /// Most bytes (weights) this shard holds.
    max_bytes: usize,
}

/// How many shards L1 is split into: [`MAX_SHARDS`], or fewer so that every shard has room for
/// [`PER_SHARD`] entries of the entry bound and [`PER_SHARD`] values of the entry cap (a value
/// under the cap is never refused only because an even split made each shard smaller than it).
/// One at least: a single shard is L1's whole bound.
fn shard_count(limits: &Limits) -> usize {
    let largest = heap_block(KEY_ALLOWANCE)
        .saturating_add(heap_block(size_class(limits.max_entry_bytes)))
        .saturating_add(ENTRY_OVERHEAD);
    (limits.bytes / largest.saturating_mul(PER_SHARD))
        .min(limits.entries / PER_SHARD)
        .clamp(1, MAX_SHARDS)
}

/// Shard `index`'s share of `total` split over `shards`: the remainder goes one each to the first
/// shards, so the shares add up to `total` exactly.
fn share(total: usize, shards: usize, index: usize) -> usize {
    total / shards + usize::from(index < total % shards)
}

/// The least an entry can cost (an empty key and value): a byte bound below it holds nothing.
pub(crate) const MIN_ENTRY_BYTES: usize = heap_block(0) * 2 + ENTRY_OVERHEAD;

/// Taken before reading Redis: a fill from that read is kept only if no write touched the key's
/// shard in between (the value read may be older than the write).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    shard: usize,
    generation: u64,
}

/// How large L1 may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Entries in all (0 disables L1).
    pub(crate) entries: usize,
    /// Bytes in all, as the heap holds them (see [`L1`]'s memory bound; 0 disables L1).
    pub(crate) bytes: usize,
    /// Largest value held; larger ones are served from Redis only.
    pub(crate) max_entry_bytes: usize,
    /// Longest lifetime of an L1 copy.
    pub(crate) max_ttl: Duration,
}

/// A sharded LRU of plaintext JSON values with per-entry expiry.
///
/// # Memory bound
/// Each of its shards (16, fewer for small bounds: [`shard_count`]) holds its share of `entries`
/// and of `bytes` (the shares add up to the bounds exactly; weights
/// are what an entry costs the heap: the heap blocks of its key and value, each value kept in a
/// block of its size class, and [`ENTRY_OVERHEAD`] for the node, the shared header and the map
/// slot); inserting evicts least-recently-used entries until the new one fits, and a value over
/// `max_entry_bytes` (or over a shard's budget) is never held. So L1's memory is bounded by
/// construction, whatever the value sizes, and the bound is in the heap's bytes.
///
/// # Coherence within the process
/// L1 must never hold something other than what Redis holds. Every change bumps its shard's
/// generation under the shard lock:
/// * a write drops the key **before** asking Redis ([`L1::begin_write`]), so a write that is
///   cancelled or fails leaves no copy, and stores the value afterwards ([`L1::put_after`]) only if
///   nothing else touched the shard in between (two concurrent writes of one key may reach Redis in
///   either order: then neither is kept);
/// * a read fills L1 through [`L1::fill`] with the [`Stamp`] it took before asking Redis, and the
///   fill is dropped if the generation moved (the value read may be older than a write);
/// * removals and invalidations ([`L1::remove`], [`L1::remove_prefix`]) drop the keys.
#[derive(Debug)]
pub(crate) struct L1 {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    max_ttl: Duration,
    /// The largest shard's byte budget (the first shard's).
    largest_shard_bytes: usize,
    max_entry_bytes: usize,
    /// Entries held, kept beside the shards so that reading it locks nothing (hot path).
    len: AtomicUsize,
    /// Bytes held (weights), likewise.
    bytes: AtomicUsize,
    /// The unwrapped data keys: a removal of a data-key prefix (an erasure) or of everything drops
    /// them with the L1 copies (set once, by the cache that owns both).
    data_keys: std::sync::OnceLock<std::sync::Arc<crate::data_key::DataKeyCache>>,
    /// Told L1's entries and bytes after every change (set once, by the cache that owns L1).
    observer: std::sync::OnceLock<std::sync::Arc<dyn sealcache_monitor::CacheObserver>>,
}

impl L1 {
    /// An L1 within `limits`; `None` when they leave no room: no entries, or fewer bytes than the
    /// least an entry costs ([`MIN_ENTRY_BYTES`]).
    pub(crate) fn new(limits: Limits) -> Option<Self> {
        if limits.entries == 0 || limits.bytes < MIN_ENTRY_BYTES {
            return None;
        }
        let count = shard_count(&limits);
        Some(Self {
            shards: (0..count)
                .map(|index| {
                    Mutex::new(Shard {
                        lru: LruCache::unbounded(),
                        bytes: 0,
                        generation: 0,
                        max_entries: share(limits.entries, count, index),
                        max_bytes: share(limits.bytes, count, index),
                    })
                })
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_ttl: limits.max_ttl,
            largest_shard_bytes: share(limits.bytes, count, 0),
            max_entry_bytes: limits.max_entry_bytes,
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            data_keys: std::sync::OnceLock::new(),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Tells `observer` L1's entries and bytes after every change from now on (every insert,
    /// removal, eviction and expiry), outside the shard locks.
    pub(crate) fn attach_observer(
        &self,
        observer: std::sync::Arc<dyn sealcache_monitor::CacheObserver>,
    ) {
        let _ = self.observer.set(observer);
    }

    /// Tells the observer how many entries and bytes L1 holds now.
    fn report(&self) {
        if let Some(observer) = self.observer.get() {
            observer.l1_entries(self.len() as u64);
            observer.l1_bytes(self.bytes() as u64);
        }
    }

    /// Drops `data_keys`' entries with the L1 copies of their entries (see [`L1::remove_prefix`]).
    pub(crate) fn attach_data_keys(
        &self,
        data_keys: std::sync::Arc<crate::data_key::DataKeyCache>,
    ) {
        let _ = self.data_keys.set(data_keys);
    }

    fn shard_index(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % self.shards.len() as u64).unwrap_or(0)
    }

    fn lock(&self, index: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[index % self.shards.len()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        self.lock(self.shard_index(key))
    }

    /// The stamp to take before reading `key` from Redis (lookups get it from [`L1::get`]).
    #[cfg(test)]
    pub(crate) fn stamp(&self, key: &str) -> Stamp {
        let shard = self.shard_index(key);
        Stamp {
            shard,
            generation: self.lock(shard).generation,
        }
    }

    /// The value and the remaining lifetime of its Redis entry, if present and not expired;
    /// otherwise the [`Stamp`] a fill from Redis needs (taken under the same lock: one lock per
    /// miss).
    pub(crate) fn get(&self, key: &str) -> Result<(Bytes, Duration, Meta), Stamp> {
        let now = Instant::now();
        let index = self.shard_index(key);
        let mut shard = self.lock(index);
        let expired = match shard.lru.get(key) {
            Some(e) if e.expires > now => {
                return Ok((e.value.clone(), e.redis_expires - now, e.meta));
            }
            Some(_) => self.pop(&mut shard, key),
            None => false,
        };
        let stamp = Stamp {
            shard: index,
            generation: shard.generation,
        };
        drop(shard);
        if expired {
            self.report();
        }
        Err(stamp)
    }

    /// Stores a value Redis has just accepted, for at most `remaining` (the Redis entry's TTL) and
    /// `max_ttl`.
    #[cfg(test)]
    pub(crate) fn put(&self, key: &str, value: Bytes, remaining: Duration) {
        let value = self.compact_if_held(key, value);
        let mut shard = self.shard(key);
        shard.generation += 1;
        self.insert(&mut shard, key, value, remaining, Meta::json_now());
        drop(shard);
        self.report();
    }

    /// Before a write to Redis: drops `key` and returns the stamp its [`L1::put_after`] needs.
    /// If the write is then cancelled or fails, L1 simply has no copy (the next read asks Redis).
    pub(crate) fn begin_write(&self, key: &str) -> Stamp {
        let index = self.shard_index(key);
        let mut shard = self.lock(index);
        shard.generation += 1;
        let dropped = self.pop(&mut shard, key);
        let stamp = Stamp {
            shard: index,
            generation: shard.generation,
        };
        drop(shard);
        if dropped {
            self.report();
        }
        stamp
    }

    /// After Redis accepted the write begun at `stamp`: stores the value, unless another write,
    /// removal or invalidation touched the shard since (its order against this one in Redis is
    /// unknown), in which case the key is dropped instead.
    pub(crate) fn put_after(
        &self,
        key: &str,
        value: Bytes,
        remaining: Duration,
        meta: Meta,
        stamp: Stamp,
    ) {
        let value = self.compact_if_held(key, value);
        let mut shard = self.lock(stamp.shard);
        let unchanged = shard.generation == stamp.generation;
        shard.generation += 1;
        if unchanged {
            self.insert(&mut shard, key, value, remaining, meta);
        } else {
            self.pop(&mut shard, key);
        }
        drop(shard);
        self.report();
    }

    /// Stores a value read from Redis, unless a write touched its shard since `stamp` was taken.
    pub(crate) fn fill(
        &self,
        key: &str,
        value: Bytes,
        remaining: Duration,
        meta: Meta,
        stamp: Stamp,
    ) {
        let value = self.compact_if_held(key, value);
        let mut shard = self.lock(stamp.shard);
        if shard.generation == stamp.generation {
            self.insert(&mut shard, key, value, remaining, meta);
            drop(shard);
            self.report();
        }
    }

    /// [`compact`], outside any shard lock, for a value L1 may hold (one over the entry cap or
    /// every shard's budget is never held, so it is not copied).
    fn compact_if_held(&self, key: &str, value: Bytes) -> Bytes {
        if value.len() > self.max_entry_bytes || weight(key, &value) > self.largest_shard_bytes {
            value
        } else {
            compact(&value)
        }
    }

    /// Drops `key` from `shard`; whether it was there.
    fn pop(&self, shard: &mut Shard, key: &str) -> bool {
        let Some(old) = shard.lru.pop(key) else {
            return false;
        };
        let w = weight(key, &old.value);
        shard.bytes -= w;
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(w, Ordering::Relaxed);
        true
    }

    fn insert(&self, shard: &mut Shard, key: &str, value: Bytes, remaining: Duration, meta: Meta) {
        // Whatever happens below, an older copy of this key must not survive.
        self.pop(shard, key);
        let ttl = remaining.min(self.max_ttl);
        let w = weight(key, &value);
        if ttl.is_zero() || value.len() > self.max_entry_bytes || w > shard.max_bytes {
            return;
        }
        while shard.bytes + w > shard.max_bytes || shard.lru.len() >= shard.max_entries {
            let Some((old_key, old)) = shard.lru.pop_lru() else {
                break;
            };
            let ow = weight(&old_key, &old.value);
            shard.bytes -= ow;
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(ow, Ordering::Relaxed);
        }
        let now = Instant::now();
        shard.lru.push(
            key.to_owned(),
            Entry {
                value,
                meta,
                expires: now + ttl,
                redis_expires: now + remaining,
            },
        );
        shard.bytes += w;
        self.len.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(w, Ordering::Relaxed);
    }

    /// Drops `key` (after a write or removal in Redis, or a failed write).
    pub(crate) fn remove(&self, key: &str) {
        let mut shard = self.shard(key);
        shard.generation += 1;
        let dropped = self.pop(&mut shard, key);
        drop(shard);
        if dropped {
            self.report();
        }
    }

    /// Removes every key starting with `prefix`; returns how many.
    ///
    /// A data-key prefix (`{namespace}:dk:{tenant tag}:` or `...:{subject tag}:`, published by an
    /// erasure) names no L1 key: it removes the copies of the entries sealed under those data keys,
    /// and the unwrapped data keys themselves (an empty or namespace prefix drops them all).
    pub(crate) fn remove_prefix(&self, prefix: &str) -> usize {
        if let Some(data_keys) = self.data_keys.get() {
            data_keys.remove_prefix(prefix);
        }
        let removed = match crate::data_key::parse_prefix(prefix) {
            Some(target) => {
                self.remove_where(|meta| meta.data_key.is_some_and(|k| target.covers(&k)))
            }
            None => self.remove_keys_with(prefix),
        };
        if removed > 0 {
            self.report();
        }
        removed
    }

    /// Removes every key starting with `prefix`; returns how many.
    fn remove_keys_with(&self, prefix: &str) -> usize {
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
            removed += doomed.len();
            for k in doomed {
                self.pop(&mut shard, &k);
            }
        }
        removed
    }

    /// Removes every entry whose metadata matches; returns how many.
    fn remove_where(&self, doomed: impl Fn(&Meta) -> bool) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shard.generation += 1;
            let keys: Vec<String> = shard
                .lru
                .iter()
                .filter(|(_, e)| doomed(&e.meta))
                .map(|(k, _)| k.clone())
                .collect();
            removed += keys.len();
            for k in keys {
                self.pop(&mut shard, &k);
            }
        }
        removed
    }

    /// Entries held (an atomic read, no lock).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Bytes held, as weighed against the budget (an atomic read, no lock).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
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

    fn limited(entries: usize, bytes: usize) -> L1 {
        limited_with(entries, bytes, 64 << 10)
    }

    /// The server's default entry cap.
    const DEFAULT_MAX_ENTRY: usize = 256 << 10;

    fn limited_with(entries: usize, bytes: usize, max_entry_bytes: usize) -> L1 {
        L1::new(Limits {
            entries,
            bytes,
            max_entry_bytes,
            max_ttl: Duration::from_secs(60),
        })
        .unwrap()
    }

    #[test]
    fn bounded_in_bytes_whatever_the_value_sizes() {
        let budget = 1 << 20;
        let l1 = limited(10_000, budget);
        // 900 KB values are over the entry cap: never held.
        l1.put(
            "big",
            Bytes::from(vec![b'x'; 900_000]),
            Duration::from_secs(10),
        );
        assert_eq!(l1.len(), 0);
        // 40 KB values: the byte budget, not the entry count, bounds L1.
        for i in 0..500 {
            l1.put(
                &format!("k{i}"),
                Bytes::from(vec![b'x'; 40_000]),
                Duration::from_secs(10),
            );
            assert!(l1.bytes() <= budget, "{} > {budget}", l1.bytes());
        }
        assert!(l1.len() < 30);
        assert_eq!(l1.len(), l1.counted());
        // A replaced value is charged once.
        l1.put("k499", Bytes::from(vec![b'y'; 10]), Duration::from_secs(10));
        let before = l1.bytes();
        l1.put("k499", Bytes::from(vec![b'z'; 10]), Duration::from_secs(10));
        assert_eq!(l1.bytes(), before);
        // An oversized overwrite drops the older copy instead of keeping it.
        l1.put(
            "k499",
            Bytes::from(vec![b'w'; 900_000]),
            Duration::from_secs(10),
        );
        assert!(l1.get("k499").is_err());
        let total: usize = l1.shards.iter().map(|s| s.lock().unwrap().bytes).sum();
        assert_eq!(total, l1.bytes());
    }

    #[test]
    fn small_bounds_hold_exactly_what_they_say() {
        let fill = |l1: &L1, n: usize, len: usize| {
            for i in 0..n {
                l1.put(
                    &format!("k{i}"),
                    Bytes::from(vec![b'v'; len]),
                    Duration::from_secs(10),
                );
            }
        };
        // The entry bound is exact, not rounded up to a multiple of the shard count.
        for entries in [1, 2, 15, 17, 33] {
            let l1 = limited(entries, 1 << 20);
            fill(&l1, 2000, 1);
            assert_eq!(l1.len(), entries, "an entry bound of {entries}");
        }
        // A value under the entry cap is held under a bound that is large enough for it, however
        // the bound is split (an even split in 16 made each shard smaller than the value).
        let l1 = L1::new(Limits {
            entries: 10_000,
            bytes: 1 << 20,
            max_entry_bytes: 256 << 10,
            max_ttl: Duration::from_secs(60),
        })
        .unwrap();
        for i in 0..4 {
            l1.put(
                &format!("large {i}"),
                Bytes::from(vec![b'x'; 200_000]),
                Duration::from_secs(10),
            );
        }
        for i in 0..4 {
            assert!(
                l1.get(&format!("large {i}")).is_ok(),
                "four 200 KB values within a 1 MiB bound: {i}"
            );
        }
        // Shards have room for several entries each, so that keys that hash together do not
        // evict each other in a small L1; the default bounds keep 16 shards.
        let shards = |entries, bytes| limited_with(entries, bytes, DEFAULT_MAX_ENTRY).shards.len();
        assert_eq!(shards(17, 64 << 20), 2);
        assert_eq!(shards(7, 64 << 20), 1);
        assert_eq!(shards(10_000, 64 << 20), 16);
        assert_eq!(shards(10_000, 4 << 20), 1);
        assert_eq!(shards(10_000, 1 << 30), 16);
        // A few KiB hold a small entry; below the least an entry costs, L1 is off.
        let l1 = limited(100, 4096);
        l1.put(
            "ns:ai:v1:qa:k",
            Bytes::from_static(b"{}"),
            Duration::from_secs(10),
        );
        assert!(
            l1.get("ns:ai:v1:qa:k").is_ok(),
            "a 4 KiB bound holds a small entry"
        );
        fill(&l1, 100, 100);
        assert!(l1.bytes() <= 4096);
        let tiny = |bytes| {
            L1::new(Limits {
                entries: 10,
                bytes,
                max_entry_bytes: 64,
                max_ttl: Duration::from_secs(60),
            })
        };
        assert!(tiny(MIN_ENTRY_BYTES - 1).is_none());
        let l1 = tiny(MIN_ENTRY_BYTES).unwrap();
        l1.put("", Bytes::new(), Duration::from_secs(10));
        assert!(l1.get("").is_ok(), "the least an entry costs holds one");
        // The shards' shares add up to the bounds exactly, and there are 16 at most.
        for (entries, bytes) in [
            (7, 1 << 30),
            (1 << 20, 5_000),
            (100_000, 64 << 20),
            (3, 999),
        ] {
            let l1 = limited(entries, bytes);
            let shards: Vec<_> = l1.shards.iter().map(|s| s.lock().unwrap()).collect();
            assert!((1..=MAX_SHARDS).contains(&shards.len()));
            assert_eq!(shards.iter().map(|s| s.max_entries).sum::<usize>(), entries);
            assert_eq!(shards.iter().map(|s| s.max_bytes).sum::<usize>(), bytes);
            assert!(shards.iter().all(|s| s.max_entries >= 1));
        }
    }

    /// What the observer was last told of L1's size, and how often.
    #[derive(Debug, Default)]
    struct Sizes {
        entries: AtomicUsize,
        bytes: AtomicUsize,
        reports: AtomicUsize,
    }

    impl sealcache_monitor::CacheObserver for Sizes {
        fn l1_entries(&self, entries: u64) {
            self.entries.store(entries as usize, Ordering::Relaxed);
        }
        fn l1_bytes(&self, bytes: u64) {
            self.bytes.store(bytes as usize, Ordering::Relaxed);
            self.reports.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn every_change_of_size_is_reported() {
        let l1 = limited(100, 1 << 20);
        let sizes = std::sync::Arc::new(Sizes::default());
        l1.attach_observer(sizes.clone());
        let told = |what: &str| {
            assert_eq!(
                (
                    sizes.entries.load(Ordering::Relaxed),
                    sizes.bytes.load(Ordering::Relaxed)
                ),
                (l1.len(), l1.bytes()),
                "{what}"
            );
            sizes.reports.swap(0, Ordering::Relaxed)
        };
        let v = || Bytes::from_static(b"{\"a\":1}");
        // A fill from Redis and a write.
        let stamp = l1.get("filled").unwrap_err();
        l1.fill(
            "filled",
            v(),
            Duration::from_secs(10),
            Meta::json_now(),
            stamp,
        );
        assert!(told("a fill") > 0);
        assert_eq!(l1.len(), 1);
        let stamp = l1.begin_write("written");
        l1.put_after(
            "written",
            v(),
            Duration::from_secs(10),
            Meta::json_now(),
            stamp,
        );
        assert!(told("a write") > 0);
        // A write that drops the older copy before asking Redis, and then fails.
        let _ = l1.begin_write("written");
        assert!(told("a write's first step") > 0);
        assert_eq!(l1.len(), 1);
        // An expiry found by a read.
        l1.put("short", v(), Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        told("a put");
        assert!(l1.get("short").is_err());
        assert!(told("an expiry found by a read") > 0);
        // A removal, a prefix, everything; a removal of nothing says nothing.
        l1.put("p:1", v(), Duration::from_secs(10));
        l1.put("p:2", v(), Duration::from_secs(10));
        told("puts");
        l1.remove("p:1");
        assert!(told("a removal") > 0);
        l1.remove("absent");
        assert_eq!(told("nothing removed"), 0);
        assert_eq!(l1.remove_prefix("p:"), 1);
        assert!(told("a prefix") > 0);
        l1.remove_prefix("");
        assert!(told("everything") > 0);
        assert_eq!(sizes.entries.load(Ordering::Relaxed), 0);
        assert_eq!(sizes.bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_held_value_keeps_no_larger_buffer_alive() {
        let l1 = limited(32, 1 << 20);
        // A slice of a larger buffer (the tail of a decoded value, say).
        let buffer = Bytes::from(vec![b'x'; 4096]);
        let slice = buffer.slice(10..110);
        drop(buffer);
        l1.put("slice", slice.clone(), Duration::from_secs(10));
        // A `Vec` with spare capacity, as `serde_json` leaves one (1,000 bytes in 2,048).
        let mut spare = Vec::with_capacity(2048);
        spare.extend_from_slice(&[b'y'; 1000]);
        let spare = Bytes::from(spare);
        l1.put("spare", spare.clone(), Duration::from_secs(10));
        for (key, original) in [("slice", slice), ("spare", spare)] {
            let (held, _, _) = l1.get(key).unwrap();
            assert_eq!(held, original, "{key}: the same bytes");
            drop(held);
            assert!(
                original.is_unique(),
                "{key}: L1 holds a block of the value's size class, not the caller's buffer"
            );
        }
        // Charged as the heap holds it: each block with its header, rounded; values in blocks of
        // a few sizes (eight per doubling), at most an eighth larger than the value.
        assert_eq!(heap_block(0), 32);
        assert_eq!(heap_block(24), 32);
        assert_eq!(heap_block(25), 48);
        assert_eq!(heap_block(1000), 1008);
        assert_eq!(size_class(100), 112);
        assert_eq!(size_class(1000), 1024);
        assert_eq!(size_class(1025), 1152);
        assert_eq!(size_class(40_000), 40_960);
        for len in 1..70_000 {
            let class = size_class(len);
            assert!(
                class >= len && class - len <= len / 8 + 15,
                "{len}: {class}"
            );
        }
        // No length overflows or panics (a value that large is never held, but it is weighed).
        for len in [usize::MAX, usize::MAX - 7, (usize::MAX >> 1) + 2, 1 << 62] {
            assert!(size_class(len) >= len);
            assert!(heap_block(size_class(len)) >= size_class(len));
        }
        assert_eq!(
            l1.bytes(),
            weight("slice", &[0; 100]) + weight("spare", &[0; 1000])
        );
        assert!(ENTRY_OVERHEAD >= std::mem::size_of::<Entry>() + 24 + 16 + 17);
    }

    #[test]
    fn bounded_and_expiring() {
        let l1 = limited(32, 1 << 20);
        for i in 0..1000 {
            l1.put(
                &format!("k{i}"),
                Bytes::from(&b"v"[..]),
                Duration::from_secs(10),
            );
        }
        assert!(l1.len() <= 32);
        l1.put("short", Bytes::from(&b"v"[..]), Duration::from_millis(30));
        assert!(l1.get("short").unwrap().1 <= Duration::from_millis(30));
        // The Redis TTL is reported even when the L1 copy lives shorter.
        l1.put("long", Bytes::from(&b"v"[..]), Duration::from_secs(7200));
        assert!(l1.get("long").unwrap().1 > Duration::from_secs(7000));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            l1.get("short").is_err(),
            "an L1 entry never outlives its Redis TTL"
        );
        l1.put("ns:v2:qa:1", Bytes::from(&b"v"[..]), Duration::from_secs(5));
        l1.put("ns:v2:qa:2", Bytes::from(&b"v"[..]), Duration::from_secs(5));
        assert_eq!(l1.remove_prefix("ns:v2:qa:"), 2);
        l1.remove("k999");
        l1.remove("absent");
        assert_eq!(l1.len(), l1.counted());
        assert!(
            L1::new(Limits {
                entries: 0,
                bytes: 1 << 20,
                max_entry_bytes: 1,
                max_ttl: Duration::from_secs(1)
            })
            .is_none()
        );
    }

    #[test]
    fn a_read_never_overwrites_a_newer_write_or_removal() {
        let l1 = limited(32, 1 << 20);
        let old = Bytes::from(&b"old"[..]);
        let new: Bytes = Bytes::from(&b"new"[..]);
        // A read stamps, a write lands, then the read's (older) value arrives: dropped.
        let stamp = l1.stamp("k");
        l1.put("k", new.clone(), Duration::from_secs(10));
        l1.fill("k", old, Duration::from_secs(10), Meta::json_now(), stamp);
        assert_eq!(l1.get("k").unwrap().0, new);
        // Two writes of one key whose Redis order is unknown: neither copy is kept.
        let a = l1.begin_write("k");
        let b = l1.begin_write("k");
        l1.put_after(
            "k",
            new.clone(),
            Duration::from_secs(10),
            Meta::json_now(),
            b,
        );
        assert_eq!(l1.get("k").unwrap().0, new, "the last begun write lands");
        l1.put_after(
            "k",
            Bytes::from(&b"a"[..]),
            Duration::from_secs(10),
            Meta::json_now(),
            a,
        );
        assert!(l1.get("k").is_err(), "the earlier-begun write resumed last");
        // A write begun and never finished (cancelled) leaves no copy.
        l1.put("k", new.clone(), Duration::from_secs(10));
        let _ = l1.begin_write("k");
        assert!(l1.get("k").is_err());
        // Same after a removal: the key stays absent.
        let stamp = l1.stamp("k");
        l1.remove("k");
        l1.fill(
            "k",
            new.clone(),
            Duration::from_secs(10),
            Meta::json_now(),
            stamp,
        );
        assert!(l1.get("k").is_err());
        // And after a prefix removal.
        let stamp = l1.stamp("k");
        l1.remove_prefix("k");
        l1.fill(
            "k",
            new.clone(),
            Duration::from_secs(10),
            Meta::json_now(),
            stamp,
        );
        assert!(l1.get("k").is_err());
        // Without a write in between the fill is kept.
        let stamp = l1.stamp("k");
        l1.fill(
            "k",
            new.clone(),
            Duration::from_secs(10),
            Meta::json_now(),
            stamp,
        );
        assert_eq!(l1.get("k").unwrap().0, new);
        assert_eq!(l1.len(), l1.counted());
    }
}
