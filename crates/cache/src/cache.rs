//! `SealedCache`: sealed values under explicit or derived keys, L1 over Redis, every failure a miss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use sealcache_codec::{Keyring, SealContext, Source, ValueCodec};
use sealcache_env_detect::EnvironmentInfo;
use sealcache_monitor::{
    CacheObserver, EventSource, LookupResult, OperationKind, Outcome, SecurityAwareCacheMonitor,
    SecurityEvent, SecurityEventType, SizeStage, Tier, WriteFailure, key_tag,
};

use crate::backend::Backend;
use crate::coherence::{Change, Coherence};
use crate::error::{Error, Result};
use crate::flight::Flights;
use crate::json_text::JsonText;
use crate::key::KeyScheme;
use crate::keyring_reload::{ActiveKeyring, KeyringReload, KeyringReloaded};
use crate::l1::L1;
use crate::status::SecurityStatus;
use crate::stored_value::{self, EntryKind, Meta};
use crate::stream::{EventStream, SseEvent, render_sse};
use tracing::Instrument as _;

/// The confirmation [`SealedCache::clear`] needs.
pub const CLEAR_CONFIRMATION: &str = "invalidate-all";
/// Keys per `SCAN` step and per `UNLINK` batch.
pub const SCAN_BATCH: usize = 1000;
/// Default L1 capacity in bytes (64 MiB).
pub const DEFAULT_L1_MAX_BYTES: usize = 64 << 20;
/// Default largest value held in L1 (256 KiB).
pub const DEFAULT_L1_MAX_ENTRY_BYTES: usize = 256 << 10;

/// Cache behaviour.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Key namespace.
    pub namespace: String,
    /// L1 capacity in entries (0 turns L1 off).
    pub l1_capacity: usize,
    /// L1 capacity in bytes (keys, values and a small fixed overhead per entry; 0 turns L1 off).
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

    /// Sets the L1 capacity in bytes (0 turns L1 off).
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

/// Drops L1 copies when dropped: the "after" half of a removal, run even when the removing future
/// is cancelled.
struct L1Drop<'a> {
    l1: Option<&'a L1>,
    key: Option<&'a str>,
    prefix: Option<&'a str>,
}

impl<'a> L1Drop<'a> {
    fn key(l1: Option<&'a L1>, key: &'a str) -> Self {
        Self {
            l1,
            key: Some(key),
            prefix: None,
        }
    }

    fn prefix(l1: Option<&'a L1>, prefix: &'a str) -> Self {
        Self {
            l1,
            key: None,
            prefix: Some(prefix),
        }
    }
}

impl Drop for L1Drop<'_> {
    fn drop(&mut self) {
        if let Some(l1) = self.l1 {
            if let Some(key) = self.key {
                l1.remove(key);
            }
            if let Some(prefix) = self.prefix {
                l1.remove_prefix(prefix);
            }
        }
    }
}

/// A cached value: its JSON bytes (shared, never copied or re-parsed by the cache: the opened
/// buffer itself), remaining lifetime, kind and store time.
///
/// A value is either one JSON value ([`EntryKind::Json`]) or a stream of server-sent events
/// ([`EntryKind::EventStream`]), whose JSON text is the array of its events
/// (`[{"event": NAME, "data": TEXT}, ...]`, `event` left out when unnamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    json: Bytes,
    ttl_remaining: Option<Duration>,
    tier: Tier,
    meta: Meta,
}

impl Cached {
    /// The JSON text (for a stream: the JSON array of its events).
    #[must_use]
    pub fn json_bytes(&self) -> &[u8] {
        &self.json
    }

    /// Whether this is one JSON value or a stream of events.
    #[must_use]
    pub fn kind(&self) -> EntryKind {
        self.meta.kind
    }

    /// When the writer stored it, by the writer's clock (`None` for entries written before the
    /// store time was recorded).
    #[must_use]
    pub fn stored_at(&self) -> Option<std::time::SystemTime> {
        self.meta.stored_at_ms.map(stored_value::system_time)
    }

    /// The id its writer sealed into it (the server: the id of the API key that stored it;
    /// `None` when the writer named none). Authenticated like the value.
    #[must_use]
    pub fn written_by(&self) -> Option<&str> {
        self.meta.writer.as_ref().map(stored_value::Writer::as_str)
    }

    /// How long ago it was stored, by this clock against the writer's (`None`: unknown).
    #[must_use]
    pub fn age(&self) -> Option<Duration> {
        self.meta
            .stored_at_ms
            .map(|at| Duration::from_millis(stored_value::now_ms().saturating_sub(at)))
    }

    /// A stream's events, in their stored order.
    ///
    /// # Errors
    /// [`Error::NotAStream`] for a JSON value.
    pub fn events(&self) -> Result<Vec<SseEvent>> {
        if self.meta.kind != EntryKind::EventStream {
            return Err(Error::NotAStream);
        }
        // The array was checked against its authenticated count when the value was opened.
        serde_json::from_slice(&self.json).map_err(|_| Error::Serialize)
    }

    /// A stream replayed as a [`futures_util::Stream`] of its events.
    ///
    /// # Errors
    /// As [`Cached::events`].
    pub fn event_stream(&self) -> Result<EventStream> {
        self.events().map(EventStream::new)
    }

    /// A stream in the SSE wire format, byte-exact (see [`crate::render_sse`]).
    ///
    /// # Errors
    /// As [`Cached::events`].
    pub fn sse_bytes(&self) -> Result<Vec<u8>> {
        self.events().map(|e| render_sse(&e))
    }

    /// The shared JSON bytes (a reference count, no copy).
    #[must_use]
    pub fn shared(&self) -> Bytes {
        self.json.clone()
    }

    /// Deserializes the value.
    ///
    /// # Errors
    /// [`Error::Serialize`] when it is not a `T`, or is a stream of events (see
    /// [`Cached::events`]).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if self.meta.kind != EntryKind::Json {
            return Err(Error::Serialize);
        }
        serde_json::from_slice(&self.json).map_err(|_| Error::Serialize)
    }

    /// Remaining lifetime (`None`: no expiry known).
    #[must_use]
    pub fn ttl_remaining(&self) -> Option<Duration> {
        self.ttl_remaining
    }

    /// Which tier answered.
    #[must_use]
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The data key it was sealed under (`None`: the keyring, as shared entries are).
    pub(crate) fn sealed_under(&self) -> Option<crate::scope::DataKeyScope> {
        self.meta.data_key
    }

    /// Whether it was stored at or after `since_ms` (Unix ms); an entry of unknown age is not.
    pub(crate) fn stored_since(&self, since_ms: Option<u64>) -> bool {
        since_ms.is_none_or(|since| self.meta.stored_at_ms.is_some_and(|at| at >= since))
    }
}

/// What one read of a key found.
pub(crate) enum Looked {
    /// A value that can be served.
    Hit(Cached),
    /// Nothing (or nothing that can be served, or nothing fresh enough).
    Miss,
    /// Redis could not be asked.
    Unavailable,
}

impl Looked {
    pub(crate) fn hit(self) -> Option<Cached> {
        match self {
            Looked::Hit(c) => Some(c),
            Looked::Miss | Looked::Unavailable => None,
        }
    }
}

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
        let data_keys = Arc::new(crate::data_key::DataKeyCache::new(
            options.data_key_cache_entries,
            options.data_key_cache_bytes,
        ));
        if let Some(l1) = &l1 {
            l1.attach_data_keys(Arc::clone(&data_keys));
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

    /// Reads a full Redis key: L1, then Redis. Every failure is a miss (`None`); stored values that
    /// fail to open are counted as security events and never served.
    pub async fn get_raw(&self, redis_key: &str, operation: &str) -> Option<Cached> {
        self.timed_lookup(redis_key, operation, true, None)
            .await
            .hit()
    }

    /// As [`SealedCache::get_raw`], serving only an entry stored at or after `since` (by the
    /// writer's clock); an older one, or one of unknown age, is a miss.
    pub async fn get_raw_since(
        &self,
        redis_key: &str,
        operation: &str,
        since: std::time::SystemTime,
    ) -> Option<Cached> {
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.timed_lookup(redis_key, operation, true, Some(since))
            .await
            .hit()
    }

    /// The largest plaintext value the cache seals.
    #[must_use]
    pub fn max_value_size(&self) -> usize {
        self.inner.options.max_value_size
    }

    /// A counted lookup: recorded once, at the tier where the request ended (misses and errors end
    /// at Redis).
    pub(crate) async fn timed_lookup(
        &self,
        redis_key: &str,
        operation: &str,
        want_ttl: bool,
        since_ms: Option<u64>,
    ) -> Looked {
        let started = Instant::now();
        // A child span of the request (disabled, and free, unless traces are exported): tier,
        // hit and size, never the key, text or value.
        let span = tracing::debug_span!(
            target: "sealcache::cache",
            "sealcache.lookup",
            otel.name = "sealcache lookup",
            "sealcache.operation" = operation,
            "sealcache.tier" = tracing::field::Empty,
            "sealcache.hit" = tracing::field::Empty,
            "sealcache.value.size" = tracing::field::Empty,
        );
        let out = self
            .lookup(
                redis_key,
                operation,
                &*self.inner.observer,
                want_ttl,
                since_ms,
            )
            .instrument(span.clone())
            .await;
        let tier = match &out {
            Looked::Hit(c) => c.tier,
            Looked::Miss | Looked::Unavailable => Tier::Redis,
        };
        self.inner.observer.lookup_duration(tier, started.elapsed());
        if !span.is_disabled() {
            span.record("sealcache.tier", tier.as_str());
            span.record("sealcache.hit", matches!(out, Looked::Hit(_)));
            if let Looked::Hit(hit) = &out {
                span.record(
                    "sealcache.value.size",
                    i64::try_from(hit.json.len()).unwrap_or(i64::MAX),
                );
            }
        }
        out
    }

    /// Reads without recording anything (a second look within one request, already counted).
    pub(crate) async fn peek(&self, redis_key: &str) -> Looked {
        self.lookup(redis_key, "", &sealcache_monitor::NoopObserver, true, None)
            .await
    }

    /// L1, then Redis. `want_ttl`: the caller needs the remaining TTL; `PTTL` is pipelined with
    /// `GET` only when it or the L1 tier (which never outlives the Redis entry) needs it.
    /// `since_ms`: only an entry stored at or after this time (Unix ms) is served (a `max_age`).
    async fn lookup(
        &self,
        redis_key: &str,
        operation: &str,
        observer: &dyn CacheObserver,
        want_ttl: bool,
        since_ms: Option<u64>,
    ) -> Looked {
        let inner = &self.inner;
        let l1 = self.served_l1().await;
        let stamp = match l1.map(|l1| l1.get(redis_key)) {
            Some(Ok((json, remaining, meta))) => {
                let hit = Cached {
                    json,
                    ttl_remaining: Some(remaining),
                    tier: Tier::L1,
                    meta,
                };
                // An owner's view takes from L1 only what was sealed under its own data key
                // (as `open_stored` does for Redis, which then decides and counts).
                let owned = self.scope.is_none() || hit.meta.data_key == self.scope;
                if owned && hit.stored_since(since_ms) {
                    observer.lookup(operation, Tier::L1, LookupResult::Hit);
                    return Looked::Hit(hit);
                }
                // Too old for this caller. Redis holds the same entry unless another process
                // replaced it a moment ago (its invalidation still on the way): ask Redis, without
                // refilling L1 from this read.
                None
            }
            Some(Err(stamp)) => Some(stamp),
            None => None,
        };
        // One request, one lookup record: an L1 miss is not counted on its own, the request is
        // counted where it ends (Redis hit, miss or error), so hits / (hits + misses) is the share of
        // requests answered from the cache.
        // `PTTL` rides along only when L1 will keep a copy (which must never outlive the Redis
        // entry, whatever the clocks); otherwise the value's own authenticated expiry answers
        // (see `stored_value`).
        let read = if stamp.is_some() {
            inner.backend.get_with_ttl(redis_key).await
        } else {
            inner
                .backend
                .get(redis_key)
                .await
                .map(|v| v.map(|v| (v, None)))
        };
        let fetched = match read {
            Ok(f) => f,
            Err(_) => {
                observer.lookup(operation, Tier::Redis, LookupResult::Error);
                return Looked::Unavailable;
            }
        };
        let Some((stored, ttl)) = fetched else {
            observer.lookup(operation, Tier::Redis, LookupResult::Miss);
            return Looked::Miss;
        };
        let l1 = l1.zip(stamp);
        match self
            .open_stored(redis_key, &stored, ttl, want_ttl, observer, l1)
            .await
        {
            Some(hit) if hit.stored_since(since_ms) => {
                observer.lookup(operation, Tier::Redis, LookupResult::Hit);
                Looked::Hit(hit)
            }
            _ => {
                observer.lookup(operation, Tier::Redis, LookupResult::Miss);
                Looked::Miss
            }
        }
    }

    /// Opens a value read from Redis (`ttl`: its `PTTL`, when read with it), counting a value that
    /// fails to open as its security event (and unlinking it when configured). Fills `l1` (with
    /// the stamp taken before the read) when given and the TTL is known.
    pub(crate) async fn open_stored(
        &self,
        redis_key: &str,
        stored: &[u8],
        ttl: Option<Duration>,
        want_ttl: bool,
        observer: &dyn CacheObserver,
        l1: Option<(&Arc<L1>, crate::l1::Stamp)>,
    ) -> Option<Cached> {
        let inner = &self.inner;
        let ctx = SealContext::new(inner.keys.namespace(), redis_key);
        let data_key = crate::data_key::split(stored);
        // An owner's view opens only what was sealed under its own data key: a value at its key
        // sealed under another owner's data key, or under the keyring (only a writer holding the
        // keys could have made either; anyone else's fails to open anyway), would outlive this
        // owner's erasure. Counted, never served. Legacy plaintext inside an explicitly opened
        // migration window is read as before (counted as `override_used` below).
        let foreign = |observer: &dyn CacheObserver| {
            observer.security_event(
                SecurityEvent::new(SecurityEventType::DecryptFailed)
                    .source(EventSource::Client)
                    .detail(format!(
                        "a value at an owner's key was not sealed under its data key; key #{}",
                        key_tag(redis_key)
                    )),
            );
        };
        if let (Some(own), Some(parts)) = (&self.scope, &data_key)
            && parts.scope != *own
        {
            foreign(observer);
            return None;
        }
        let opened = match &data_key {
            Some(parts) => {
                // Sealed under a tenant's or subject's data key: a key that is gone (erased) or
                // replaced opens nothing (counted there).
                let key = self
                    .data_key_for_open(&parts.scope, &parts.id, observer)
                    .await?;
                let context = parts.context(redis_key);
                key.codec.open(
                    &SealContext::new(inner.keys.namespace(), &context),
                    parts.inner,
                )
            }
            None => inner.keyring.current().codec.open(&ctx, stored),
        };
        let sealed_under = data_key.map(|parts| parts.scope);
        match opened {
            Ok(opened)
                if self.scope.is_some()
                    && sealed_under.is_none()
                    && opened.source() != Source::LegacyPlaintext =>
            {
                foreign(observer);
                None
            }
            Ok(opened) => {
                if opened.source() == Source::LegacyPlaintext {
                    observer.security_event(
                        SecurityEvent::new(SecurityEventType::OverrideUsed)
                            .outcome(Outcome::Allowed)
                            .detail(format!(
                                "legacy plaintext read under the migration window, key #{}",
                                key_tag(redis_key)
                            )),
                    );
                }
                // The opened buffer itself is handed out and kept in L1: no copy.
                let Ok(mut value) = stored_value::decode(opened.into_bytes()) else {
                    // Authentic, yet its stream header does not hold: only a writer holding the
                    // key (a bug) could have made it. Never served.
                    observer.security_event(
                        SecurityEvent::new(SecurityEventType::BadEnvelope)
                            .source(EventSource::Client)
                            .detail(format!(
                                "a stream value's event count does not hold; key #{}",
                                key_tag(redis_key)
                            )),
                    );
                    return None;
                };
                let ttl = match (ttl, value.remaining()) {
                    (Some(redis_ttl), _) => Some(redis_ttl),
                    (None, Some(left)) if left.is_zero() => {
                        // Past its expiry by this clock: Redis is about to drop it.
                        return None;
                    }
                    (None, Some(left)) => Some(left),
                    // A value from before the embedded expiry: ask Redis, if anyone needs it.
                    (None, None) if want_ttl => inner.backend.pttl(redis_key).await.ok().flatten(),
                    (None, None) => None,
                };
                value.meta.data_key = sealed_under;
                let json = value.body;
                if let (Some((l1, stamp)), Some(ttl)) = (l1, ttl) {
                    l1.fill(redis_key, json.clone(), ttl, value.meta, stamp);
                    observer.l1_entries(l1.len() as u64);
                }
                Some(Cached {
                    json,
                    ttl_remaining: ttl,
                    tier: Tier::Redis,
                    meta: value.meta,
                })
            }
            Err(err) => {
                let kind = stored_value_event(err.kind());
                observer.security_event(
                    SecurityEvent::new(kind)
                        .source(EventSource::Client)
                        .detail(format!("{err}; key #{}", key_tag(redis_key))),
                );
                if inner.options.unlink_bad_entries {
                    let _ = inner.backend.unlink(&[redis_key.to_owned()]).await;
                }
                None
            }
        }
    }

    /// Seals `json` (JSON text, returned byte for byte by later reads) and writes it with
    /// `SET key value PX ttl`. L1 is filled only after Redis accepted the write; a write that does
    /// not reach Redis leaves nothing anywhere (and drops this process's L1 copy of the key, so L1
    /// never differs from Redis) and is counted (`sealcache.write.failures`).
    ///
    /// # Errors
    /// [`Error::InvalidJson`] (nothing stored), [`Error::Seal`] (too large, ...),
    /// [`Error::WriteRefused`] (Redis answered with an error: `OOM`, `READONLY`, `NOPERM`, ...),
    /// [`Error::Unavailable`] (Redis unreachable, timed out, or skipped by the open breaker).
    pub async fn set_raw(&self, redis_key: &str, json: Bytes, ttl: Duration) -> Result<()> {
        self.set_text(redis_key, JsonText::check(json)?, ttl).await
    }

    /// [`SealedCache::set_raw`] for text already checked (the proof is the type): nothing is
    /// checked again.
    ///
    /// # Errors
    /// As [`SealedCache::set_raw`], less [`Error::InvalidJson`].
    pub async fn set_text(&self, redis_key: &str, json: JsonText, ttl: Duration) -> Result<()> {
        self.store(redis_key, json.into_bytes(), ttl).await
    }

    /// [`SealedCache::set_raw`] for JSON the cache itself serialized (known to be valid).
    pub(crate) async fn store(&self, redis_key: &str, json: Bytes, ttl: Duration) -> Result<()> {
        self.store_kind(redis_key, json, ttl, None).await
    }

    /// Stores a JSON value (`stream: None`), or the JSON array of a stream of `stream` events.
    pub(crate) async fn store_kind(
        &self,
        redis_key: &str,
        json: Bytes,
        ttl: Duration,
        stream: Option<u32>,
    ) -> Result<()> {
        let span = tracing::debug_span!(
            target: "sealcache::cache",
            "sealcache.store",
            otel.name = "sealcache store",
            "sealcache.value.size" = i64::try_from(json.len()).unwrap_or(i64::MAX),
            "sealcache.ttl_seconds" = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            "error.type" = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let stored = self
            .store_untraced(redis_key, json, ttl, stream)
            .instrument(span.clone())
            .await;
        if let Err(err) = &stored
            && !span.is_disabled()
        {
            span.record("error.type", err.kind_name());
            span.record("otel.status_code", "error");
        }
        stored
    }

    async fn store_untraced(
        &self,
        redis_key: &str,
        json: Bytes,
        ttl: Duration,
        stream: Option<u32>,
    ) -> Result<()> {
        let started = Instant::now();
        let inner = &self.inner;
        let ctx = SealContext::new(inner.keys.namespace(), redis_key);
        // The value carries its authenticated expiry and store time, so reads need no `PTTL` and
        // can tell its age (see `stored_value`).
        let stored_at_ms = stored_value::now_ms();
        // The prefix and the JSON are sealed as two parts: no buffer is allocated to join them
        // (the codec joins them in a reused per-thread buffer).
        let (prefix, meta) = match stream {
            None => (
                stored_value::encode_prefix(&json, ttl, stored_at_ms, self.writer.as_ref()),
                Meta {
                    kind: EntryKind::Json,
                    stored_at_ms: Some(stored_at_ms),
                    data_key: self.scope,
                    writer: self.writer,
                },
            ),
            Some(count) => (
                stored_value::encode_stream_prefix(
                    &json,
                    count,
                    ttl,
                    stored_at_ms,
                    self.writer.as_ref(),
                ),
                Meta {
                    kind: EntryKind::EventStream,
                    stored_at_ms: Some(stored_at_ms),
                    data_key: self.scope,
                    writer: self.writer,
                },
            ),
        };
        let plain: [&[u8]; 2] = [&prefix, &json];
        let sealed = match &self.scope {
            // A tenant's or subject's entry: sealed under its data key (created on first write).
            Some(scope) => {
                // Reaching the data key is part of the write: a refusal (NOPERM, OOM on its
                // creation) is the write's refusal, typed and counted as such.
                let key = match self.data_key_for_seal(scope).await {
                    Ok(key) => key,
                    Err(err) => {
                        let err = crate::backend::refused_write(err);
                        match &err {
                            Error::WriteRefused { reason } => {
                                inner.observer.write_failure(reason.failure());
                            }
                            Error::Unavailable
                            | Error::AuthenticationRefused { .. }
                            | Error::Tls { .. } => {
                                inner.observer.write_failure(WriteFailure::Unavailable);
                            }
                            _ => {}
                        }
                        return Err(err);
                    }
                };
                let sealed =
                    crate::data_key::seal(inner.keys.namespace(), redis_key, scope, &key, &plain)?;
                inner.observer.seal(key.wrapping_key_id);
                (sealed.bytes, sealed.plain_len, sealed.payload_len)
            }
            None => {
                let sealed = inner
                    .keyring
                    .current()
                    .codec
                    .seal_parts(&ctx, &plain)
                    .map_err(Error::Seal)?;
                inner.observer.seal(sealed.key_id());
                inner.keyring.sealed(sealed.key_id(), ttl);
                let (plain_len, payload_len) = (sealed.plain_len(), sealed.payload_len());
                (sealed.into_bytes(), plain_len, payload_len)
            }
        };
        let (sealed, plain_len, payload_len) = sealed;
        inner
            .observer
            .entry_size(SizeStage::Plain, plain_len as u64);
        inner
            .observer
            .entry_size(SizeStage::Compressed, payload_len as u64);
        inner
            .observer
            .entry_size(SizeStage::Stored, sealed.len() as u64);
        // L1's copy goes first: if this future is dropped mid-write, or the write fails, no copy
        // can disagree with Redis.
        // Whether L1 may keep a copy, decided before the write's stamp (a subscription confirmed
        // during the write flushes L1, and drops this copy with it).
        let served = self.served_l1().await.is_some();
        let stamp = inner.l1.as_ref().map(|l1| l1.begin_write(redis_key));
        let written = inner.backend.set_px(redis_key, &sealed, ttl).await;
        // Other processes drop their copies (a timed-out write may still have landed). After a
        // failed write the message goes out in the background: the caller already waited one
        // deadline for this Redis. A write the others could not be told of is undone and refused:
        // they would go on serving the answer it replaced.
        let published = self
            .publish_after(written.is_ok(), Change::Key(redis_key))
            .await;
        let written = match (written, published) {
            (Ok(()), Err(e)) => {
                let _ = inner.backend.unlink(&[redis_key.to_owned()]).await;
                Err(e)
            }
            (written, _) => written,
        };
        let served = served && self.served_l1().await.is_some();
        if let (Some(l1), Some(stamp)) = (&inner.l1, stamp) {
            if written.is_ok() && served {
                l1.put_after(redis_key, json, ttl, meta, stamp);
            }
            inner.observer.l1_entries(l1.len() as u64);
        }
        match &written {
            Err(Error::WriteRefused { reason }) => inner.observer.write_failure(reason.failure()),
            Err(Error::Unavailable | Error::AuthenticationRefused { .. } | Error::Tls { .. }) => {
                inner.observer.write_failure(WriteFailure::Unavailable);
            }
            _ => {}
        }
        inner
            .observer
            .operation(OperationKind::Set, started.elapsed());
        written
    }

    /// Removes one full key from Redis and L1. Returns whether Redis held it.
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::Redis`].
    pub async fn delete_raw(&self, redis_key: &str) -> Result<bool> {
        let started = Instant::now();
        // Dropped before and after (the guard, even if this future is dropped): a read that
        // refilled L1 while UNLINK was in flight is dropped too, and so is the copy when UNLINK
        // fails.
        let _after = L1Drop::key(self.inner.l1.as_deref(), redis_key);
        if let Some(l1) = &self.inner.l1 {
            l1.remove(redis_key);
        }
        let removed = self.inner.backend.unlink(&[redis_key.to_owned()]).await;
        let published = self
            .publish_after(removed.is_ok(), Change::Key(redis_key))
            .await;
        self.inner
            .observer
            .operation(OperationKind::Delete, started.elapsed());
        let removed = removed?;
        published?;
        Ok(removed > 0)
    }

    /// Gets a value by explicit key (the generic cache).
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; a stored value that is not a `T` is [`Error::Serialize`].
    pub async fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.inner.keys.explicit_key(key)?;
        // The remaining TTL is not returned here: no `PTTL` for it.
        match self.timed_lookup(&full, "kv", false, None).await.hit() {
            Some(c) => c.parse().map(Some),
            None => Ok(None),
        }
    }

    /// Sets a value by explicit key for `ttl`.
    ///
    /// # Errors
    /// As [`SealedCache::set_raw`], and [`Error::InvalidKey`], [`Error::Serialize`].
    pub async fn set<T: serde::Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let full = self.inner.keys.explicit_key(key)?;
        let json = serde_json::to_vec(value).map_err(|_| Error::Serialize)?;
        self.store(&full, json.into(), ttl).await
    }

    /// Deletes a value by explicit key.
    ///
    /// # Errors
    /// As [`SealedCache::delete_raw`], and [`Error::InvalidKey`].
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let full = self.inner.keys.explicit_key(key)?;
        self.delete_raw(&full).await
    }

    /// Removes every key matching `pattern` with `SCAN MATCH` and `UNLINK` in batches (never
    /// `KEYS`, which blocks Redis and is not in the cache's ACL). Returns how many Redis removed.
    ///
    /// L1's matching entries are dropped before the walk and again after it, whatever Redis
    /// answered: an invalidation that fails half-way must not leave this process serving entries it
    /// was told to forget, and a read that refilled L1 from Redis during the walk is dropped too.
    pub(crate) async fn invalidate_pattern(&self, pattern: &str, l1_prefix: &str) -> Result<u64> {
        let started = Instant::now();
        // Dropped before the walk and after it (the guard: even if this future is dropped).
        let after = L1Drop::prefix(self.inner.l1.as_deref(), l1_prefix);
        self.drop_l1_prefix(l1_prefix);
        let walked = self.unlink_matching(pattern).await;
        let published = self
            .publish_after(walked.is_ok(), Change::Prefix(l1_prefix))
            .await;
        drop(after);
        if let Some(l1) = &self.inner.l1 {
            self.inner.observer.l1_entries(l1.len() as u64);
        }
        let removed = walked?;
        published?;
        self.inner.observer.invalidation(removed);
        self.inner
            .observer
            .operation(OperationKind::Invalidate, started.elapsed());
        Ok(removed)
    }

    /// `SCAN MATCH` + `UNLINK` in batches; how many keys Redis removed.
    async fn unlink_matching(&self, pattern: &str) -> Result<u64> {
        self.inner
            .backend
            .unlink_matching(pattern, SCAN_BATCH)
            .await
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

    /// Tells the other processes what changed. A failure is counted, and this process stops
    /// serving L1 until its invalidation heartbeat gets through again (see `coherence`).
    ///
    /// # Errors
    /// [`Error::InvalidationNotPublished`].
    async fn publish(&self, change: Change<'_>) -> Result<()> {
        let Some(coherence) = &self.inner.coherence else {
            return Ok(());
        };
        let message = coherence.message(&change);
        // On a cluster, published on the key's primary (a prefix: on every primary).
        let key = match &change {
            Change::Key(k) => Some(*k),
            Change::Prefix(_) => None,
        };
        let sent = self
            .inner
            .backend
            .publish(coherence.channel(), &message, key)
            .await;
        if sent.is_err() {
            if let Some(l1) = &self.inner.l1 {
                coherence.publish_failed(l1);
            }
            return Err(Error::InvalidationNotPublished);
        }
        Ok(())
    }

    /// Publishes `change` after a Redis call: awaited when the call succeeded (so the other
    /// processes are told before the caller returns, and the call fails when they cannot be),
    /// in the background when it failed (the caller already waited one deadline for this Redis;
    /// a timed-out call may still have landed).
    ///
    /// # Errors
    /// [`Error::InvalidationNotPublished`] after a successful call.
    async fn publish_after(&self, succeeded: bool, change: Change<'_>) -> Result<()> {
        if self.inner.coherence.is_none() {
            return Ok(());
        }
        if succeeded {
            let sent = self.publish(change.clone()).await;
            if sent.is_err() {
                // The change (a removal, or a refused store's undo) is in Redis already: keep
                // telling the other processes in the background, quietly, for as long as an L1
                // copy could live, in case only this connection failed.
                self.republish(change.to_owned());
            }
            return sent;
        }
        let cache = self.clone();
        let change = change.to_owned();
        tokio::spawn(async move { cache.publish(change.as_change()).await });
        Ok(())
    }

    /// Publishes `change` again every second until it goes out, for at most `l1_max_ttl`.
    fn republish(&self, change: crate::coherence::OwnedChange) {
        let Some(coherence) = self.inner.coherence.clone() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = self.clone();
        let tries = self.inner.options.l1_max_ttl.as_secs().max(1);
        handle.spawn(async move {
            let message = coherence.message(&change.as_change());
            let key = match &change {
                crate::coherence::OwnedChange::Key(k) => Some(k.as_str()),
                crate::coherence::OwnedChange::Prefix(_) => None,
            };
            for _ in 0..tries {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if cache
                    .inner
                    .backend
                    .publish(coherence.channel(), &message, key)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
        });
    }

    /// Whether L1 is served now and how often the invalidation subscription was lost (`None`:
    /// L1 or coherence off).
    #[must_use]
    pub fn l1_coherence(&self) -> Option<(bool, u64)> {
        self.inner.coherence.as_ref().map(|c| {
            let state = c.state();
            (state.subscribed, state.losses)
        })
    }

    /// Tells every other process to drop what `prefix` names (see [`SealedCache::publish_after`]).
    ///
    /// # Errors
    /// [`Error::InvalidationNotPublished`].
    pub(crate) async fn publish_prefix(&self, prefix: &str) -> Result<()> {
        self.publish_after(true, Change::Prefix(prefix)).await
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

    /// Drops L1 copies (and the unwrapped data keys) a prefix names, in this process.
    pub(crate) fn drop_l1_prefix(&self, prefix: &str) {
        if let Some(l1) = &self.inner.l1 {
            l1.remove_prefix(prefix);
            self.inner.observer.l1_entries(l1.len() as u64);
        }
    }

    /// Removes every entry of the namespace. Needs `confirm == "invalidate-all"`.
    ///
    /// # Errors
    /// [`Error::ClearNotConfirmed`], [`Error::Unavailable`], [`Error::Redis`].
    pub async fn clear(&self, confirm: &str) -> Result<u64> {
        if confirm != CLEAR_CONFIRMATION {
            return Err(Error::ClearNotConfirmed);
        }
        // Every key of the namespace but the erasure tombstones (`{namespace}:erased:*`), which
        // must outlive a clear: they refuse restored copies of erased data keys.
        let pattern = format!("{}:[^e]*", self.inner.keys.namespace());
        let prefix = format!("{}:", self.inner.keys.namespace());
        self.invalidate_pattern(&pattern, &prefix).await
    }

    /// Replaces the keyring without a restart (see `docs/security-model.md`, "Key rotation"):
    /// atomically for every request, refused (and the running keyring kept) when the key-name
    /// secret or a kept key's material differs, or, unless `mode` is [`KeyringReload::Forced`],
    /// when it drops a key that may still seal entries younger than `live_for` (the longest TTL).
    ///
    /// # Errors
    /// [`Error::KeyringRefused`] naming the reason.
    pub fn reload_keyring(
        &self,
        keyring: &Keyring,
        live_for: Duration,
        mode: KeyringReload,
    ) -> Result<KeyringReloaded> {
        let outcome = self
            .inner
            .keyring
            .reload(keyring, &self.inner.keys, live_for, mode);
        self.inner.keyring.record_reload(
            outcome
                .as_ref()
                .map(|_| ())
                .map_err(std::string::ToString::to_string),
        );
        let reloaded = outcome?;
        // Unwrapped data keys carry the old keyring's dictionaries: read again under the new one.
        self.inner.data_keys.clear();
        if reloaded.primary != reloaded.previous_primary
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            // Data-key records are wrapped under the primary: re-wrapped under the new one, so
            // that retiring the old key leaves no record only it opens.
            let cache = self.clone();
            handle.spawn(async move {
                if let Err(err) = cache.rewrap_data_keys().await {
                    tracing::warn!(
                        target: "sealcache::security",
                        error = %err,
                        "data keys could not all be re-wrapped under the new primary key"
                    );
                }
            });
        }
        if !reloaded.removed.is_empty() {
            // L1 holds opened copies: one sealed under a dropped key (perhaps dropped because it
            // leaked) must not outlive the key. L1 does not record which key sealed a copy, so
            // all of it goes; the removal bumps every shard's generation, so a read that opened
            // its value under the old keyring cannot fill L1 after this.
            self.drop_l1_prefix("");
        }
        tracing::info!(
            target: "sealcache::security",
            primary = reloaded.primary,
            previous_primary = reloaded.previous_primary,
            added = ?reloaded.added,
            removed = ?reloaded.removed,
            "keyring reloaded"
        );
        Ok(reloaded)
    }

    /// Counts a keyring reload that failed before it reached the cache (the keyring file could
    /// not be read, or no keyring is configured any more), as a refusal in the security status.
    /// `reason` must not hold key material.
    pub fn record_keyring_reload_failure(&self, reason: impl Into<String>) {
        self.inner.keyring.record_reload(Err(reason.into()));
    }

    /// Authenticates new Redis connections (the data connection and the L1 invalidation
    /// subscription) with `password` from now on, for a rotated ACL password: connections open
    /// now stay authenticated (Redis does not re-check them), the shared data connection is
    /// replaced once the commands in flight on it finish.
    ///
    /// # Errors
    /// [`Error::Config`] for an application-owned connection, or when the client cannot be built.
    pub fn set_redis_password(&self, password: &str) -> Result<()> {
        self.inner.backend.set_password(password)?;
        if let Some(coherence) = &self.inner.coherence {
            coherence.set_password(password);
        }
        *self
            .inner
            .password_generation
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(crate::posture::password_generation(password));
        tracing::info!(target: "sealcache::security", "Redis password replaced for new connections");
        Ok(())
    }

    /// The primary key id and the decrypt-only key ids in use now.
    #[must_use]
    pub fn key_ids(&self) -> (u32, Vec<u32>) {
        let active = self.inner.keyring.current();
        (active.primary_key_id, active.decrypt_only_key_ids.clone())
    }

    /// Performance figures.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.inner.monitor.performance_summary()
    }

    /// The Redis circuit breaker's state.
    #[must_use]
    pub fn breaker_state(&self) -> sealcache_monitor::BreakerState {
        self.inner.backend.breaker_state()
    }

    /// Entries in the L1 tier now (0 when L1 is off).
    #[must_use]
    pub fn l1_entries(&self) -> u64 {
        self.inner.l1.as_ref().map_or(0, |l1| l1.len() as u64)
    }

    /// Bytes held by the L1 tier now, as weighed against `l1_max_bytes` (0 when L1 is off).
    #[must_use]
    pub fn l1_bytes(&self) -> u64 {
        self.inner.l1.as_ref().map_or(0, |l1| l1.bytes() as u64)
    }

    /// Whether Redis answers now (and the breaker is not open).
    pub async fn redis_available(&self) -> bool {
        self.inner.backend.ping().await.is_ok()
    }

    /// The observed security posture (see [`SecurityStatus`]; assessed in one place,
    /// `status::assess`).
    pub async fn security_status(&self) -> SecurityStatus {
        let inner = &self.inner;
        // Starts the invalidation subscriber if no request has yet (and waits for its first try).
        let _ = self.served_l1().await;
        let config = inner.backend.config();
        let ping = inner.backend.ping().await;
        let whoami = inner.backend.whoami().await;
        // Connections of their own: reused for a few seconds (see `posture`).
        let probes = inner
            .probes
            .get_or_probe(async {
                let topology = inner.backend.topology().await;
                crate::posture::probe(config, topology).await
            })
            .await;
        let security = inner.monitor.security_summary();
        let active = inner.keyring.current();
        let pending_erasures = self.pending_erasures().await;
        let mut status = crate::status::assess(crate::status::Observations {
            environment: &inner.environment,
            uses_tls: config.uses_tls(),
            ping,
            whoami,
            refusal: inner.backend.last_refusal(),
            probe: probes.tls.clone(),
            anonymous_refused: probes.anonymous_refused,
            client_certificate_required: probes.client_certificate_required,
            keyring_reloads: inner.keyring.reloads(),
            redis_password_generation: inner
                .password_generation
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            client_cert: match (&config.client_cert_pem, &config.client_cert_path) {
                (Some(pem), _) => Some(crate::status::pem_days(pem)),
                (None, path) => path.as_deref().map(crate::status::file_days),
            },
            ca_cert: match (&config.ca_pem, &config.ca_path) {
                (Some(pem), _) => Some(crate::status::pem_days(pem)),
                (None, path) => path.as_deref().map(crate::status::file_days),
            },
            primary_key_id: active.primary_key_id,
            decrypt_only_key_ids: active.decrypt_only_key_ids.clone(),
            recent_security_events: security.last_hour.values().sum(),
            security_events_by_type: security.events_by_type,
            write_failures: inner.monitor.performance_summary().write_failures,
            topology: probes.topology.clone(),
            l1_coherence: self.l1_coherence().map(|(subscribed, losses)| {
                crate::status::L1CoherenceStatus { subscribed, losses }
            }),
        });
        status.pending_erasures = pending_erasures;
        status
    }
}

/// The security event a codec failure on a stored value counts as: one exhaustive match, so a new
/// codec error kind cannot be counted as the wrong event silently.
pub(crate) fn stored_value_event(kind: sealcache_codec::ErrorKind) -> SecurityEventType {
    use sealcache_codec::ErrorKind;
    match kind {
        ErrorKind::MalformedEnvelope => SecurityEventType::BadEnvelope,
        ErrorKind::UnknownKeyId => SecurityEventType::UnknownKeyId,
        // A dictionary is keyring material like a key: rotated out too early, or foreign.
        ErrorKind::UnknownDictionary => SecurityEventType::UnknownKeyId,
        ErrorKind::Unauthentic => SecurityEventType::DecryptFailed,
        ErrorKind::DecompressedTooLarge => SecurityEventType::Oversize,
        ErrorKind::LegacyRejected => SecurityEventType::LegacyRejected,
        // Key material is checked when the keyring loads; a stored value cannot produce it, and
        // should one, it is a configuration problem.
        ErrorKind::KeyMaterial => SecurityEventType::ConfigWeak,
        // Opening a stored value never seals; a value that does not fit the caller's type is
        // still a value the cache could not serve as stored.
        ErrorKind::Sealing => SecurityEventType::BadEnvelope,
    }
}

#[cfg(test)]
mod event_tests {
    use sealcache_codec::{Error, ErrorKind};
    use sealcache_monitor::SecurityEventType;

    use super::stored_value_event;

    #[test]
    fn codec_failures_count_as_their_own_events() {
        for (err, want) in [
            (Error::Truncated, SecurityEventType::BadEnvelope),
            (Error::UnsupportedVersion(9), SecurityEventType::BadEnvelope),
            (Error::CorruptPayload, SecurityEventType::BadEnvelope),
            (Error::UnknownKeyId(7), SecurityEventType::UnknownKeyId),
            (Error::Unauthentic, SecurityEventType::DecryptFailed),
            (Error::LegacyRejected, SecurityEventType::LegacyRejected),
        ] {
            assert_eq!(stored_value_event(err.kind()), want, "{err}");
        }
        assert_eq!(
            stored_value_event(ErrorKind::DecompressedTooLarge),
            SecurityEventType::Oversize
        );
    }
}
