//! Compute on miss with single-flight: `get_or_compute`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sealcache_monitor::Tier;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::SealedCache;
use crate::error::{ComputeError, Error};
use crate::flight::{Joined, Waited};
use crate::lease::Leading;

/// Where the value of a `get_or_compute` call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The in-process L1 tier.
    L1,
    /// Redis (also when another process computed it while this caller waited for its lease).
    Redis,
    /// The computation (this caller's, or a concurrent caller's that this one waited for).
    Computed,
}

impl Origin {
    /// `l1`, `redis` or `computed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::L1 => "l1",
            Origin::Redis => "redis",
            Origin::Computed => "computed",
        }
    }
}

impl From<Tier> for Origin {
    fn from(tier: Tier) -> Self {
        match tier {
            Tier::L1 => Origin::L1,
            Tier::Redis => Origin::Redis,
        }
    }
}

/// A value from `get_or_compute`, and where it came from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Answer<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
    /// Remaining lifetime of the cached entry (`None` when the computed value could not be stored,
    /// or the entry has no expiry).
    pub ttl_remaining: Option<Duration>,
}

/// What a leader publishes to its waiters: the value's JSON and how long it is cached, or the
/// computation's error.
type Published<E> = Result<(Bytes, Option<Duration>), Arc<E>>;

impl SealedCache {
    /// Gets a value by explicit key, or computes, stores (for `ttl`) and returns it. See
    /// [`SealedCache::get_or_compute_raw`].
    ///
    /// # Errors
    /// [`ComputeError::Cache`] with [`Error::InvalidKey`]; as
    /// [`SealedCache::get_or_compute_raw`].
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<Answer<T>, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let full = self.keys().explicit_key(key)?;
        self.get_or_compute_raw(&full, "kv", ttl, compute).await
    }

    /// The cached value of a full Redis key, or `compute()`'s, stored for `ttl`.
    ///
    /// Single-flight: concurrent misses on one key run `compute` once; the others wait and get the
    /// same value (deserialized from the same JSON) or the same error (`Arc<E>`). Errors are never
    /// cached. If the caller running the computation is cancelled (dropped, timed out) or its
    /// computation panics, nothing is left behind: the waiters try again and one of them computes.
    /// A finished computation's outcome goes only to the callers that waited for it, never to a
    /// later call. A cached value that is not a `T` (an older shape of the type, or a stream of
    /// events) is computed again and overwritten. A value that cannot be stored is still returned
    /// (`ttl_remaining: None`).
    ///
    /// Across processes (with [`crate::CacheOptions::leases`], on by default): the one caller per
    /// process that would compute first takes a lease in Redis; callers in other processes wait
    /// for its entry (at most [`crate::CacheOptions::lease_wait`]) and take over if the lease
    /// vanishes (its holder failed, was cancelled, or died and the lease expired). If Redis
    /// cannot be reached, the computation runs here, as without leases. See `docs/cache.md`,
    /// "Leases".
    ///
    /// # Errors
    /// [`ComputeError::Compute`] with the computation's error; [`ComputeError::Cache`] with
    /// [`Error::Serialize`] when the value cannot be serialized (or a waiter cannot read it back).
    pub async fn get_or_compute_raw<T, E, F, Fut>(
        &self,
        redis_key: &str,
        operation: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<Answer<T>, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut first_look = true;
        // Whether Redis answered the last look (no lease is tried on a Redis that did not).
        let mut redis_up;
        let leader = loop {
            // The first look is this call's one counted lookup; looks after a wait are quiet.
            let looked = if first_look {
                self.timed_lookup(redis_key, operation, true, None).await
            } else {
                self.peek(redis_key).await
            };
            first_look = false;
            redis_up = !matches!(looked, crate::cache::Looked::Unavailable);
            let hit = looked.hit();
            if let Some(hit) = hit
                && let Ok(value) = hit.parse::<T>()
            {
                return Ok(Answer {
                    value,
                    origin: hit.tier().into(),
                    ttl_remaining: hit.ttl_remaining(),
                });
            }
            match self.inner.flights.join(redis_key) {
                Joined::Leader(leader) => break leader,
                Joined::Waiter(waiter) => {
                    self.inner.observer.singleflight_coalesced();
                    let Waited::Done(outcome) = waiter.wait().await else {
                        continue; // the leader went away: look again, perhaps lead
                    };
                    // Another value type under the same key: not ours to read; look again.
                    let Some(published) = outcome.downcast_ref::<Published<E>>() else {
                        continue;
                    };
                    match published {
                        Ok((json, stored)) => match serde_json::from_slice(json) {
                            Ok(value) => {
                                return Ok(Answer {
                                    value,
                                    origin: Origin::Computed,
                                    ttl_remaining: *stored,
                                });
                            }
                            // The leader computed another shape under this key: compute ours.
                            Err(_) => continue,
                        },
                        Err(e) => return Err(ComputeError::Compute(e.clone())),
                    }
                }
            }
        };
        // This caller leads. If it is dropped anywhere below, `leader`'s destructor abandons the
        // flight and wakes the waiters. A flight that finished between this caller's miss and its
        // joining stored its value first: look once more before computing again.
        let looked = self.peek(redis_key).await;
        redis_up &= !matches!(looked, crate::cache::Looked::Unavailable);
        if let Some(hit) = looked.hit()
            && let Ok(value) = hit.parse::<T>()
        {
            let answer = Answer {
                value,
                origin: hit.tier().into(),
                ttl_remaining: hit.ttl_remaining(),
            };
            let published: Published<E> = Ok((hit.shared(), hit.ttl_remaining()));
            leader.finish(Arc::new(published));
            return Ok(answer);
        }
        // Single-flight across processes: hold the lease, or wait for the holder's entry.
        let leading = if redis_up {
            self.lead_or_wait(redis_key, false, |hit| {
                hit.parse::<T>()
                    .ok()
                    .map(|value| (value, hit.shared(), hit.ttl_remaining()))
            })
            .await
        } else {
            Leading::Alone
        };
        // Dropped after the store (or when this future is dropped): releases the lease.
        let _holding = match leading {
            Leading::Found((value, json, ttl_remaining)) => {
                let published: Published<E> = Ok((json, ttl_remaining));
                leader.finish(Arc::new(published));
                return Ok(Answer {
                    value,
                    origin: Origin::Redis,
                    ttl_remaining,
                });
            }
            Leading::Hold(holding) => Some(holding),
            // Not asked for (only streams follow).
            Leading::Alone | Leading::Follow(_) => None,
        };
        let value = match compute().await {
            Ok(value) => value,
            Err(e) => {
                let e = Arc::new(e);
                let published: Published<E> = Err(e.clone());
                leader.finish(Arc::new(published));
                return Err(ComputeError::Compute(e));
            }
        };
        let json = Bytes::from(
            serde_json::to_vec(&value).map_err(|_| ComputeError::Cache(Error::Serialize))?,
        );
        // Stored before the flight ends, so a call arriving after it finds the value in the cache.
        // A failed write still answers the callers: the value is right, only not cached.
        let stored = self
            .store(redis_key, json.clone(), ttl)
            .await
            .is_ok()
            .then_some(ttl);
        let published: Published<E> = Ok((json, stored));
        leader.finish(Arc::new(published));
        Ok(Answer {
            value,
            origin: Origin::Computed,
            ttl_remaining: stored,
        })
    }

    /// Single-flight computations in progress now.
    #[must_use]
    pub fn flights_in_progress(&self) -> usize {
        self.inner.flights.len()
    }
}
