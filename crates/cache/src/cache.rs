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
use crate::json_text::check_json_text;
use crate::key::KeyScheme;
use crate::keyring_reload::{ActiveKeyring, KeyringReload, KeyringReloaded};
use crate::l1::L1;
use crate::status::SecurityStatus;
use crate::stored_value;
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
}

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
/// buffer itself) and remaining lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    json: Bytes,
    ttl_remaining: Option<Duration>,
    tier: Tier,
}

impl Cached {
    /// The JSON text.
    #[must_use]
    pub fn json_bytes(&self) -> &[u8] {
        &self.json
    }

    /// The shared JSON bytes (a reference count, no copy).
    #[must_use]
    pub fn shared(&self) -> Bytes {
        self.json.clone()
    }

    /// Deserializes the value.
    ///
    /// # Errors
    /// [`Error::Serialize`] when it is not a `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
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
}

pub(crate) struct Inner {
    pub(crate) keys: KeyScheme,
    keyring: ActiveKeyring,
    pub(crate) backend: Box<dyn Backend>,
    l1: Option<Arc<L1>>,
    /// L1 coherence across processes (`None`: L1 off, or coherence turned off).
    coherence: Option<Arc<Coherence>>,
    pub(crate) monitor: Arc<SecurityAwareCacheMonitor>,
    pub(crate) observer: Arc<dyn CacheObserver>,
    options: CacheOptions,
    environment: EnvironmentInfo,
    pub(crate) flights: Flights,
}

/// The sealed cache. Cheap to clone (an `Arc`); share one per process.
#[derive(Clone)]
pub struct SealedCache {
    pub(crate) inner: Arc<Inner>,
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
        let coherence = (l1.is_some() && options.l1_coherence).then(|| {
            Arc::new(Coherence::new(
                keys.namespace(),
                backend.config().clone(),
                observer.clone(),
            ))
        });
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                keyring: ActiveKeyring::new(
                    keyring,
                    codec.with_max_plaintext(options.max_value_size),
                ),
                backend,
                l1,
                coherence,
                monitor,
                observer,
                options,
                environment,
                flights: Flights::default(),
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
        self.timed_lookup(redis_key, operation, true).await
    }

    /// A counted lookup: recorded once, at the tier where the request ended (misses and errors end
    /// at Redis).
    async fn timed_lookup(
        &self,
        redis_key: &str,
        operation: &str,
        want_ttl: bool,
    ) -> Option<Cached> {
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
            .lookup(redis_key, operation, &*self.inner.observer, want_ttl)
            .instrument(span.clone())
            .await;
        let tier = out.as_ref().map_or(Tier::Redis, |c| c.tier);
        self.inner.observer.lookup_duration(tier, started.elapsed());
        if !span.is_disabled() {
            span.record("sealcache.tier", tier.as_str());
            span.record("sealcache.hit", out.is_some());
            if let Some(hit) = &out {
                span.record(
                    "sealcache.value.size",
                    i64::try_from(hit.json.len()).unwrap_or(i64::MAX),
                );
            }
        }
        out
    }

    /// Reads without recording anything (a second look within one request, already counted).
    pub(crate) async fn peek_raw(&self, redis_key: &str) -> Option<Cached> {
        self.lookup(redis_key, "", &sealcache_monitor::NoopObserver, true)
            .await
    }

    /// L1, then Redis. `want_ttl`: the caller needs the remaining TTL; `PTTL` is pipelined with
    /// `GET` only when it or the L1 tier (which never outlives the Redis entry) needs it.
    async fn lookup(
        &self,
        redis_key: &str,
        operation: &str,
        observer: &dyn CacheObserver,
        want_ttl: bool,
    ) -> Option<Cached> {
        let inner = &self.inner;
        let l1 = self.served_l1().await;
        let stamp = match l1.map(|l1| l1.get(redis_key)) {
            Some(Ok((json, remaining))) => {
                observer.lookup(operation, Tier::L1, LookupResult::Hit);
                return Some(Cached {
                    json,
                    ttl_remaining: Some(remaining),
                    tier: Tier::L1,
                });
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
                return None;
            }
        };
        let Some((stored, ttl)) = fetched else {
            observer.lookup(operation, Tier::Redis, LookupResult::Miss);
            return None;
        };
        let ctx = SealContext::new(inner.keys.namespace(), redis_key);
        let opened = inner.keyring.current().codec.open(&ctx, &stored);
        match opened {
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
                let value = stored_value::decode(opened.into_bytes());
                let ttl = match (ttl, value.remaining()) {
                    (Some(redis_ttl), _) => Some(redis_ttl),
                    (None, Some(left)) if left.is_zero() => {
                        // Past its expiry by this clock: Redis is about to drop it.
                        observer.lookup(operation, Tier::Redis, LookupResult::Miss);
                        return None;
                    }
                    (None, Some(left)) => Some(left),
                    // A value from before the embedded expiry: ask Redis, if anyone needs it.
                    (None, None) if want_ttl => inner.backend.pttl(redis_key).await.ok().flatten(),
                    (None, None) => None,
                };
                let json = value.json;
                if let (Some(l1), Some(ttl), Some(stamp)) = (l1, ttl, stamp) {
                    l1.fill(redis_key, json.clone(), ttl, stamp);
                    observer.l1_entries(l1.len() as u64);
                }
                observer.lookup(operation, Tier::Redis, LookupResult::Hit);
                Some(Cached {
                    json,
                    ttl_remaining: ttl,
                    tier: Tier::Redis,
                })
            }
            Err(err) => {
                let kind = stored_value_event(err.kind());
                observer.security_event(
                    SecurityEvent::new(kind)
                        .source(EventSource::Client)
                        .detail(format!("{err}; key #{}", key_tag(redis_key))),
                );
                observer.lookup(operation, Tier::Redis, LookupResult::Miss);
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
        check_json_text(&json)?;
        self.store(redis_key, json, ttl).await
    }

    /// [`SealedCache::set_raw`] for JSON the cache itself serialized (known to be valid).
    pub(crate) async fn store(&self, redis_key: &str, json: Bytes, ttl: Duration) -> Result<()> {
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
            .store_untraced(redis_key, json, ttl)
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

    async fn store_untraced(&self, redis_key: &str, json: Bytes, ttl: Duration) -> Result<()> {
        let started = Instant::now();
        let inner = &self.inner;
        let ctx = SealContext::new(inner.keys.namespace(), redis_key);
        // The value carries its authenticated expiry, so reads need no `PTTL` (see `stored_value`).
        let plain = stored_value::encode(&json, ttl);
        let sealed = inner
            .keyring
            .current()
            .codec
            .seal(&ctx, &plain)
            .map_err(Error::Seal)?;
        inner.observer.seal(sealed.key_id());
        inner.keyring.sealed(sealed.key_id(), ttl);
        inner
            .observer
            .entry_size(SizeStage::Plain, sealed.plain_len() as u64);
        inner
            .observer
            .entry_size(SizeStage::Compressed, sealed.payload_len() as u64);
        inner
            .observer
            .entry_size(SizeStage::Stored, sealed.stored_len() as u64);
        // L1's copy goes first: if this future is dropped mid-write, or the write fails, no copy
        // can disagree with Redis.
        // Whether L1 may keep a copy, decided before the write's stamp (a subscription confirmed
        // during the write flushes L1, and drops this copy with it).
        let served = self.served_l1().await.is_some();
        let stamp = inner.l1.as_ref().map(|l1| l1.begin_write(redis_key));
        let written = inner
            .backend
            .set_px(redis_key, sealed.as_bytes(), ttl)
            .await;
        // Other processes drop their copies (a timed-out write may still have landed). After a
        // failed write the message goes out in the background: the caller already waited one
        // deadline for this Redis.
        self.publish_after(written.is_ok(), Change::Key(redis_key))
            .await;
        let served = served && self.served_l1().await.is_some();
        if let (Some(l1), Some(stamp)) = (&inner.l1, stamp) {
            if written.is_ok() && served {
                l1.put_after(redis_key, json, ttl, stamp);
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
        self.publish_after(removed.is_ok(), Change::Key(redis_key))
            .await;
        self.inner
            .observer
            .operation(OperationKind::Delete, started.elapsed());
        removed.map(|n| n > 0)
    }

    /// Gets a value by explicit key (the generic cache).
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; a stored value that is not a `T` is [`Error::Serialize`].
    pub async fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.inner.keys.explicit_key(key)?;
        // The remaining TTL is not returned here: no `PTTL` for it.
        match self.timed_lookup(&full, "kv", false).await {
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
        self.publish_after(walked.is_ok(), Change::Prefix(l1_prefix))
            .await;
        drop(after);
        if let Some(l1) = &self.inner.l1 {
            self.inner.observer.l1_entries(l1.len() as u64);
        }
        let removed = walked?;
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

    /// Tells the other processes what changed (a failure is counted: they may keep a stale copy
    /// until their L1 TTL).
    async fn publish(&self, change: Change<'_>) {
        let Some(coherence) = &self.inner.coherence else {
            return;
        };
        let message = coherence.message(&change);
        if self
            .inner
            .backend
            .publish(coherence.channel(), &message)
            .await
            .is_err()
        {
            coherence.publish_failed();
        }
    }

    /// Publishes `change` after a Redis call: awaited when the call succeeded (so the other
    /// processes are told before the caller returns), in the background when it failed (the
    /// caller already waited one deadline for this Redis; a timed-out call may still have landed).
    async fn publish_after(&self, succeeded: bool, change: Change<'_>) {
        if self.inner.coherence.is_none() {
            return;
        }
        if succeeded {
            self.publish(change).await;
            return;
        }
        let cache = self.clone();
        let change = change.to_owned();
        tokio::spawn(async move { cache.publish(change.as_change()).await });
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

    fn drop_l1_prefix(&self, prefix: &str) {
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
        let pattern = self.inner.keys.namespace_pattern();
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
        let reloaded = self
            .inner
            .keyring
            .reload(keyring, &self.inner.keys, live_for, mode)?;
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
        let probe = if config.uses_tls() {
            Some(crate::tls_probe::probe_tls(config).await)
        } else {
            None
        };
        let anonymous_refused = anonymous_refused(config).await;
        let topology = match inner.backend.topology().await {
            Some(topology) => Some(probe_nodes(config, topology).await),
            None => None,
        };
        let security = inner.monitor.security_summary();
        let active = inner.keyring.current();
        crate::status::assess(crate::status::Observations {
            environment: &inner.environment,
            uses_tls: config.uses_tls(),
            ping,
            whoami,
            refusal: inner.backend.last_refusal(),
            probe,
            anonymous_refused,
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
            topology,
            l1_coherence: self.l1_coherence().map(|(subscribed, losses)| {
                crate::status::L1CoherenceStatus { subscribed, losses }
            }),
        })
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

/// Probes every cluster node as the single-node status probes Redis: a TLS handshake and an
/// anonymous `PING` (one node after another; each is bounded by the connect timeout).
async fn probe_nodes(
    config: &crate::connect::RedisConfig,
    mut topology: crate::status::Topology,
) -> crate::status::Topology {
    for node in &mut topology.nodes {
        let scheme = if config.uses_tls() { "rediss" } else { "redis" };
        let host = if node.host.contains(':') {
            format!("[{}]", node.host)
        } else {
            node.host.clone()
        };
        let mut one = config.clone();
        one.url = format!("{scheme}://{host}:{}", node.port);
        one.cluster_nodes = Vec::new();
        if one.uses_tls() {
            let probe = crate::tls_probe::probe_tls(&one).await;
            node.tls_version = probe.failure.is_none().then_some(probe.version).flatten();
        }
        node.anonymous_refused = anonymous_refused(&one).await;
    }
    topology
}

/// Connects with the cache's transport but no credentials and sends `PING`: `Some(true)` when
/// refused (NOAUTH/WRONGPASS), `Some(false)` when answered, `None` when nothing could be observed.
async fn anonymous_refused(config: &crate::connect::RedisConfig) -> Option<bool> {
    let mut anonymous = config.clone();
    anonymous.username = None;
    anonymous.password = None;
    let client = crate::connect::client(&anonymous).ok()?;
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(Ok(_)) => Some(false),
        Ok(Err(e)) => {
            let code = e.code().unwrap_or_default();
            matches!(code, "NOAUTH" | "WRONGPASS")
                .then_some(true)
                .or_else(|| {
                    let text = e.to_string();
                    (text.contains("NOAUTH") || text.contains("WRONGPASS")).then_some(true)
                })
        }
        Err(_) => None,
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
