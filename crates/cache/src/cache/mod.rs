//! `SealedCache`: sealed values under explicit or derived keys, L1 over Redis, every failure a miss.

mod admin;
mod entry;
mod invalidate;
mod options;
mod posture;
mod read;
mod write;

pub use entry::Cached;
pub(crate) use entry::Looked;
pub use options::*;
pub(crate) use read::stored_value_event;

use std::sync::Arc;

use sealcache_codec::{Keyring, ValueCodec};
use sealcache_env_detect::EnvironmentInfo;
use sealcache_monitor::{CacheObserver, SecurityAwareCacheMonitor};

use crate::backend::Backend;
use crate::coherence::Coherence;
use crate::error::Result;
use crate::flight::Flights;
use crate::key::KeyScheme;
use crate::keyring_reload::ActiveKeyring;
use crate::l1::L1;
use crate::stored_value::{self};
/// The confirmation [`SealedCache::clear`] needs.
pub const CLEAR_CONFIRMATION: &str = "invalidate-all";
/// Keys per `SCAN` step and per `UNLINK` batch.
pub const SCAN_BATCH: usize = 1000;
/// Default L1 capacity in bytes (64 MiB).
pub const DEFAULT_L1_MAX_BYTES: usize = 64 << 20;
/// Default largest value held in L1 (256 KiB).
pub const DEFAULT_L1_MAX_ENTRY_BYTES: usize = 256 << 10;

pub(crate) struct Inner {
    pub(crate) keys: KeyScheme,
    pub(crate) keyring: ActiveKeyring,
    /// Unwrapped data keys (tenants and subjects).
    pub(crate) data_keys: Arc<crate::data_key::DataKeyCache>,
    pub(crate) backend: Box<dyn Backend>,
    l1: Option<Arc<L1>>,
    /// L1 coherence across processes (`None`: L1 off, or coherence turned off).
    pub(crate) coherence: Option<Arc<Coherence>>,
    pub(crate) monitor: Arc<SecurityAwareCacheMonitor>,
    pub(crate) observer: Arc<dyn CacheObserver>,
    pub(crate) options: CacheOptions,
    environment: EnvironmentInfo,
    pub(crate) flights: Flights,
    /// Streamed computations in progress (`get_or_compute_stream`).
    pub(crate) live: crate::live::LiveStreams,
    /// Permits of the callers following other processes' live streams
    /// ([`CacheOptions::max_live_followers`]).
    pub(crate) live_followers: Arc<tokio::sync::Semaphore>,
    /// The status's connection probes, reused for a few seconds.
    probes: crate::posture::ProbeCache,
    /// [`crate::posture::password_generation`] of the password new connections use.
    password_generation: std::sync::RwLock<Option<String>>,
}

/// The sealed cache. Cheap to clone (an `Arc`); share one per process.
#[derive(Clone)]
pub struct SealedCache {
    pub(crate) inner: Arc<Inner>,
    /// The data key values are sealed under (`None`: the keyring; explicit keys and shared
    /// entries).
    pub(crate) scope: Option<crate::scope::DataKeyScope>,
    /// The id sealed into each value this view writes (`None`: none; see `written_by`).
    pub(crate) writer: Option<stored_value::Writer>,
}

impl std::fmt::Debug for SealedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCache")
            .field("namespace", &self.inner.keys.namespace())
            .field("redis", self.inner.backend.config())
            .finish_non_exhaustive()
    }
}

/// What [`SealedCache::stats`] returns.
pub type CacheStats = sealcache_monitor::PerformanceSummary;

impl SealedCache {
    #[allow(clippy::too_many_arguments)] // assembled by the builder only
    pub(crate) fn assemble(
        keyring: &Keyring,
        backend: Box<dyn Backend>,
        monitor: Arc<SecurityAwareCacheMonitor>,
        observer: Arc<dyn CacheObserver>,
        options: CacheOptions,
        environment: EnvironmentInfo,
        codec: ValueCodec,
    ) -> Result<Self> {
        let keys = KeyScheme::new(&options.namespace, keyring.name_secret())?;
        let l1 = L1::new(crate::l1::Limits {
            entries: options.l1_capacity,
            bytes: options.l1_max_bytes,
            max_entry_bytes: options.l1_max_entry_bytes,
            max_ttl: options.l1_max_ttl,
        })
        .map(Arc::new);
        if l1.is_none() && options.l1_capacity > 0 && options.l1_max_bytes > 0 {
            // Asked for, yet too small to hold a single entry: said once, not left to be found.
            tracing::warn!(
                target: "sealcache::cache",
                l1_max_bytes = options.l1_max_bytes,
                least = crate::l1::MIN_ENTRY_BYTES,
                "the L1 byte bound is below what one entry costs: L1 is off"
            );
        }
        let data_keys = Arc::new(crate::data_key::DataKeyCache::new(
            options.data_key_cache_entries,
            options.data_key_cache_bytes,
        ));
        if let Some(l1) = &l1 {
            l1.attach_data_keys(Arc::clone(&data_keys));
            l1.attach_observer(Arc::clone(&observer));
        }
        let password_generation = backend
            .config()
            .password
            .as_deref()
            .map(|p| crate::posture::password_generation(p));
        let coherence = (l1.is_some() && options.l1_coherence).then(|| {
            Arc::new(Coherence::new(
                keys.namespace(),
                backend.config().clone(),
                observer.clone(),
            ))
        });
        Ok(Self {
            scope: None,
            writer: None,
            inner: Arc::new(Inner {
                keys,
                keyring: ActiveKeyring::new(
                    keyring,
                    codec.with_max_plaintext(options.max_value_size),
                ),
                backend,
                data_keys,
                l1,
                coherence,
                monitor,
                observer,
                live_followers: Arc::new(tokio::sync::Semaphore::new(
                    options
                        .max_live_followers
                        .min(tokio::sync::Semaphore::MAX_PERMITS),
                )),
                options,
                environment,
                flights: Flights::default(),
                live: crate::live::LiveStreams::default(),
                probes: crate::posture::ProbeCache::default(),
                password_generation: std::sync::RwLock::new(password_generation),
            }),
        })
    }

    /// The key scheme (namespace and key derivation).
    #[must_use]
    pub fn keys(&self) -> &KeyScheme {
        &self.inner.keys
    }

    /// The in-process monitor (its summaries back `stats` and `security_status`).
    #[must_use]
    pub fn monitor(&self) -> &Arc<SecurityAwareCacheMonitor> {
        &self.inner.monitor
    }

    /// The largest plaintext value the cache seals.
    #[must_use]
    pub fn max_value_size(&self) -> usize {
        self.inner.options.max_value_size
    }

    /// L1, when it may be served: always without coherence, else only while this process's
    /// invalidation subscription is confirmed (the first callers wait for its first attempt).
    async fn served_l1(&self) -> Option<&Arc<L1>> {
        let l1 = self.inner.l1.as_ref()?;
        match &self.inner.coherence {
            None => Some(l1),
            Some(coherence) => coherence.l1_usable(l1).await.then_some(l1),
        }
    }

    /// This cache, sealing under `scope`'s data key (`None`: the keyring).
    pub(crate) fn with_scope(&self, scope: Option<crate::scope::DataKeyScope>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            scope,
            writer: self.writer,
        }
    }

    /// This view, sealing `writer` into each value it writes.
    pub(crate) fn with_writer(&self, writer: stored_value::Writer) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            scope: self.scope,
            writer: Some(writer),
        }
    }
}
