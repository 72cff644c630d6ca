//! Performance counters: atomics only, no allocation and no lock on the hit path.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::observer::{BreakerState, LookupResult, OperationKind, SizeStage, Tier, WriteFailure};

/// Distinct AI operation names tracked; further names share the `other` row.
pub const MAX_OPERATIONS: usize = 32;

#[derive(Debug, Default)]
struct Lookups {
    /// [tier][result]
    counts: [[AtomicU64; 3]; 2],
}

#[derive(Debug, Default)]
struct OperationSlot {
    name: OnceLock<Box<str>>,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug, Default)]
struct Timing {
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

/// Lock-free performance counters.
#[derive(Debug)]
pub(crate) struct PerfCounters {
    lookups: Lookups,
    operations: [OperationSlot; MAX_OPERATIONS],
    other: OperationSlot,
    timings: [Timing; 5],
    sizes: [AtomicU64; 3],
    size_counts: [AtomicU64; 3],
    l1_entries: AtomicU64,
    l1_bytes: AtomicU64,
    invalidations: AtomicU64,
    keys_removed: AtomicU64,
    coalesced: AtomicU64,
    write_failures: [AtomicU64; WriteFailure::ALL.len()],
    redis_available: AtomicBool,
    breaker: AtomicU64,
    redis_commands: AtomicU64,
    redis_errors: AtomicU64,
    seals: [AtomicU64; 8],
    seal_ids: [OnceLock<u32>; 8],
}

impl Default for PerfCounters {
    fn default() -> Self {
        Self {
            lookups: Lookups::default(),
            operations: std::array::from_fn(|_| OperationSlot::default()),
            other: OperationSlot::default(),
            timings: Default::default(),
            sizes: Default::default(),
            size_counts: Default::default(),
            l1_entries: AtomicU64::new(0),
            l1_bytes: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            keys_removed: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            write_failures: Default::default(),
            redis_available: AtomicBool::new(true),
            breaker: AtomicU64::new(0),
            redis_commands: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            seals: Default::default(),
            seal_ids: Default::default(),
        }
    }
}

fn tier_index(t: Tier) -> usize {
    match t {
        Tier::L1 => 0,
        Tier::Redis => 1,
    }
}

fn result_index(r: LookupResult) -> usize {
    match r {
        LookupResult::Hit => 0,
        LookupResult::Miss => 1,
        LookupResult::Error => 2,
    }
}

fn stage_index(s: SizeStage) -> usize {
    match s {
        SizeStage::Plain => 0,
        SizeStage::Compressed => 1,
        SizeStage::Stored => 2,
    }
}

impl PerfCounters {
    fn slot(&self, operation: &str) -> &OperationSlot {
        for slot in &self.operations {
            match slot.name.get() {
                Some(name) if &**name == operation => return slot,
                Some(_) => {}
                None => {
                    // First sighting of this name: claim the slot (one allocation per distinct
                    // name, ever). A racing thread may claim it for another name; then look on.
                    let _ = slot.name.set(operation.into());
                    if slot.name.get().is_some_and(|n| &**n == operation) {
                        return slot;
                    }
                }
            }
        }
        &self.other
    }

    pub(crate) fn lookup(&self, operation: &str, tier: Tier, result: LookupResult) {
        self.lookups.counts[tier_index(tier)][result_index(result)].fetch_add(1, Relaxed);
        let slot = self.slot(operation);
        match result {
            LookupResult::Hit => &slot.hits,
            LookupResult::Miss => &slot.misses,
            LookupResult::Error => &slot.errors,
        }
        .fetch_add(1, Relaxed);
    }

    pub(crate) fn operation(&self, kind: OperationKind, elapsed: Duration) {
        let t = &self.timings[kind as usize];
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        t.count.fetch_add(1, Relaxed);
        t.total_ns.fetch_add(ns, Relaxed);
        t.max_ns.fetch_max(ns, Relaxed);
    }

    pub(crate) fn redis_command(&self, ok: bool) {
        self.redis_commands.fetch_add(1, Relaxed);
        if !ok {
            self.redis_errors.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn entry_size(&self, stage: SizeStage, bytes: u64) {
        self.sizes[stage_index(stage)].fetch_add(bytes, Relaxed);
        self.size_counts[stage_index(stage)].fetch_add(1, Relaxed);
    }

    pub(crate) fn seal(&self, key_id: u32) {
        for (id, count) in self.seal_ids.iter().zip(&self.seals) {
            let _ = id.set(key_id);
            if id.get() == Some(&key_id) {
                count.fetch_add(1, Relaxed);
                return;
            }
        }
    }

    pub(crate) fn l1_entries(&self, n: u64) {
        self.l1_entries.store(n, Relaxed);
    }

    pub(crate) fn l1_bytes(&self, n: u64) {
        self.l1_bytes.store(n, Relaxed);
    }

    pub(crate) fn invalidation(&self, keys: u64) {
        self.invalidations.fetch_add(1, Relaxed);
        self.keys_removed.fetch_add(keys, Relaxed);
    }

    pub(crate) fn coalesced(&self) {
        self.coalesced.fetch_add(1, Relaxed);
    }

    pub(crate) fn write_failure(&self, reason: WriteFailure) {
        self.write_failures[reason.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn redis_available(&self, up: bool) {
        self.redis_available.store(up, Relaxed);
    }

    pub(crate) fn breaker(&self, state: BreakerState) {
        self.breaker.store(state.as_gauge(), Relaxed);
    }

    pub(crate) fn summary(&self) -> PerformanceSummary {
        let c = &self.lookups.counts;
        let count = |t: usize, r: usize| c[t][r].load(Relaxed);
        let tier = |t: usize| TierCounts {
            hits: count(t, 0),
            misses: count(t, 1),
            errors: count(t, 2),
            hit_rate: hit_rate(count(t, 0), count(t, 1)),
        };
        let (hits, misses, errors) = (
            count(0, 0) + count(1, 0),
            count(0, 1) + count(1, 1),
            count(0, 2) + count(1, 2),
        );
        let mut by_operation = BTreeMap::new();
        let rows = self
            .operations
            .iter()
            .filter_map(|s| s.name.get().map(|n| (n.to_string(), s)))
            .chain(std::iter::once(("other".to_owned(), &self.other)));
        for (name, slot) in rows {
            let (h, m, e) = (
                slot.hits.load(Relaxed),
                slot.misses.load(Relaxed),
                slot.errors.load(Relaxed),
            );
            if h + m + e > 0 {
                by_operation.insert(
                    name,
                    TierCounts {
                        hits: h,
                        misses: m,
                        errors: e,
                        hit_rate: hit_rate(h, m),
                    },
                );
            }
        }
        let mut durations = BTreeMap::new();
        for kind in OperationKind::ALL {
            let t = &self.timings[kind as usize];
            let n = t.count.load(Relaxed);
            durations.insert(
                kind.as_str().to_owned(),
                Timings {
                    count: n,
                    mean_ms: if n == 0 {
                        0.0
                    } else {
                        t.total_ns.load(Relaxed) as f64 / n as f64 / 1e6
                    },
                    max_ms: t.max_ns.load(Relaxed) as f64 / 1e6,
                },
            );
        }
        let plain = self.sizes[0].load(Relaxed);
        let stored = self.sizes[2].load(Relaxed);
        let seals = self
            .seal_ids
            .iter()
            .zip(&self.seals)
            .filter_map(|(id, n)| id.get().map(|id| (id.to_string(), n.load(Relaxed))))
            .collect();
        PerformanceSummary {
            lookups: TierCounts {
                hits,
                misses,
                errors,
                hit_rate: hit_rate(hits, misses),
            },
            hit_rate: hit_rate(hits, misses),
            l1: tier(0),
            redis: tier(1),
            by_operation,
            durations,
            sizes: Sizes {
                plain_bytes: plain,
                compressed_bytes: self.sizes[1].load(Relaxed),
                stored_bytes: stored,
                entries: self.size_counts[2].load(Relaxed),
                compression_ratio: if plain == 0 {
                    0.0
                } else {
                    stored as f64 / plain as f64
                },
            },
            l1_entries: self.l1_entries.load(Relaxed),
            l1_bytes: self.l1_bytes.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            keys_removed: self.keys_removed.load(Relaxed),
            singleflight_coalesced: self.coalesced.load(Relaxed),
            write_failures: WriteFailure::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str().to_owned(),
                        self.write_failures[r.index()].load(Relaxed),
                    )
                })
                .collect(),
            redis_available: self.redis_available.load(Relaxed),
            breaker_state: match self.breaker.load(Relaxed) {
                0 => BreakerState::Closed,
                1 => BreakerState::HalfOpen,
                _ => BreakerState::Open,
            },
            redis_commands: self.redis_commands.load(Relaxed),
            redis_errors: self.redis_errors.load(Relaxed),
            seals_by_key_id: seals,
        }
    }
}

/// hits / (hits + misses); errors are not lookups that could have hit. 0 when nothing was looked up.
#[must_use]
pub fn hit_rate(hits: u64, misses: u64) -> f64 {
    let total = hits + misses;
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}

/// Hits, misses and errors of a tier or operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierCounts {
    /// Hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Errors (Redis failed or skipped).
    pub errors: u64,
    /// hits / (hits + misses).
    pub hit_rate: f64,
}

/// Count and latency of an operation kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    /// Calls.
    pub count: u64,
    /// Mean duration in milliseconds.
    pub mean_ms: f64,
    /// Longest duration in milliseconds.
    pub max_ms: f64,
}

/// Byte totals by stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizes {
    /// Plaintext bytes written.
    pub plain_bytes: u64,
    /// Bytes after compression.
    pub compressed_bytes: u64,
    /// Stored (envelope) bytes.
    pub stored_bytes: u64,
    /// Entries written.
    pub entries: u64,
    /// stored / plain.
    pub compression_ratio: f64,
}

/// `performance_summary()`: JSON-serializable figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceSummary {
    /// All lookups.
    pub lookups: TierCounts,
    /// hits / (hits + misses) over all lookups (not over all operations).
    pub hit_rate: f64,
    /// L1 lookups.
    pub l1: TierCounts,
    /// Redis lookups.
    pub redis: TierCounts,
    /// Lookups per AI operation.
    pub by_operation: BTreeMap<String, TierCounts>,
    /// Durations per operation kind.
    pub durations: BTreeMap<String, Timings>,
    /// Sizes.
    pub sizes: Sizes,
    /// Entries in L1 now.
    pub l1_entries: u64,
    /// Bytes L1 holds now: what its entries cost the heap, as weighed against its byte bound
    /// (`SEALCACHE_L1_MAX_BYTES`).
    pub l1_bytes: u64,
    /// Invalidation calls.
    pub invalidations: u64,
    /// Keys removed by invalidations.
    pub keys_removed: u64,
    /// Computations shared by single-flight.
    pub singleflight_coalesced: u64,
    /// Writes that did not reach Redis, by reason (`oom`, `readonly`, `noperm`, `refused`,
    /// `unavailable`); every reason is present, from 0.
    pub write_failures: BTreeMap<String, u64>,
    /// Whether Redis is available.
    pub redis_available: bool,
    /// The breaker's state.
    pub breaker_state: BreakerState,
    /// Redis commands issued.
    pub redis_commands: u64,
    /// Redis commands that failed.
    pub redis_errors: u64,
    /// Seals per key id (the nonce budget: rotate long before 2^32).
    pub seals_by_key_id: BTreeMap<String, u64>,
}
