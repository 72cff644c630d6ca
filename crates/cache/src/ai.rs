//! `AiResponseCache`: the sealed cache keyed by AI requests, with per-operation TTLs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcache_monitor::{CacheObserver, OperationKind, SecurityAwareCacheMonitor};

use crate::cache::{CacheStats, Cached, SealedCache};
use crate::compute::Answer;
use crate::error::{ComputeError, Error, Result};
use crate::key::{AiRequest, validate_operation};
use crate::lease::{HeldLease, Lease, LeaseToken, LookupOptions, LookupOutcome};
use crate::live::LiveStream;
use crate::scope::{Owner, validate_subject, validate_tenant};
use crate::status::SecurityStatus;
use crate::stream::{EventStream, SseEvent, StreamRecorder};
use crate::ttl::TtlPolicy;

/// The AI response cache.
///
/// Keys are `{namespace}:v3:{operation}:{hex HMAC-SHA256}` of the owner and the request; values
/// are sealed JSON; TTLs come from the [`TtlPolicy`].
///
/// # Tenants and subjects
///
/// Every entry belongs to a tenant (the customer) and optionally to a subject within it (the end
/// user whose data it holds): a cache as built belongs to tenant [`crate::DEFAULT_TENANT`] without
/// a subject; [`AiResponseCache::tenant`], [`AiResponseCache::subject`] and
/// [`AiResponseCache::shared`] return a view of the same cache scoped otherwise (cheap: two
/// reference counts and the ids). The same request under two tenants, or two subjects, never
/// shares an entry; each tenant's and subject's values are sealed under a data key of their own,
/// which [`AiResponseCache::erase_subject`] and [`AiResponseCache::erase_tenant`] destroy.
///
/// ```no_run
/// # async fn demo(cache: sealcache::AiResponseCache) -> Result<(), sealcache::Error> {
/// use sealcache::AiRequest;
///
/// let ann = cache.tenant("acme")?.subject("user-4711")?;
/// ann.set(&AiRequest::new("qa", "my notes ..."), &"an answer", None).await?;
/// // Another subject (or tenant) asking the same never sees it.
/// let bob = cache.tenant("acme")?.subject("user-0815")?;
/// assert!(bob.get(&AiRequest::new("qa", "my notes ...")).await?.is_none());
/// // Ann's right to erasure: her data key is destroyed, her entries open nowhere any more.
/// let erased = cache.tenant("acme")?.erase_subject("user-4711").await?;
/// println!("data key {:?} destroyed", erased.data_key_id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AiResponseCache {
    /// Sealing under the owner's data key (`scope`), or under the keyring when shared.
    cache: SealedCache,
    /// Shared: cloning the cache (once per request in a server) allocates nothing.
    ttl: Arc<TtlPolicy>,
    /// Whose entries this view reads and writes.
    owner: Arc<Owner>,
}

impl AiResponseCache {
    pub(crate) fn new(mut cache: SealedCache, ttl: TtlPolicy) -> Self {
        let owner = Owner::default_tenant();
        cache.scope = cache.keys().data_key_scope(&owner);
        Self {
            cache,
            ttl: Arc::new(ttl),
            owner: Arc::new(owner),
        }
    }

    fn owned_by(&self, owner: Owner) -> Self {
        let scope = self.cache.keys().data_key_scope(&owner);
        Self {
            cache: self.cache.with_scope(scope),
            ttl: Arc::clone(&self.ttl),
            owner: Arc::new(owner),
        }
    }

    /// This cache for tenant `tenant` (without a subject).
    ///
    /// # Errors
    /// [`Error::InvalidTenant`].
    pub fn tenant(&self, tenant: &str) -> Result<Self> {
        validate_tenant(tenant)?;
        Ok(self.owned_by(Owner::Tenant {
            tenant: tenant.to_owned(),
            subject: None,
        }))
    }

    /// This cache for subject `subject` within this view's tenant.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`]; [`Error::SharedWithSubject`] on a shared view.
    pub fn subject(&self, subject: &str) -> Result<Self> {
        validate_subject(subject)?;
        match &*self.owner {
            Owner::Tenant { tenant, .. } => Ok(self.owned_by(Owner::Tenant {
                tenant: tenant.clone(),
                subject: Some(subject.to_owned()),
            })),
            Owner::Shared => Err(Error::SharedWithSubject),
        }
    }

    /// This cache for entries shared across tenants: for answers that hold no personal data,
    /// sealed under the keyring (no data key, so no erasure), never with a subject.
    #[must_use]
    pub fn shared(&self) -> Self {
        self.owned_by(Owner::Shared)
    }

    /// Whether this view reads and writes entries shared across tenants.
    #[must_use]
    pub fn is_shared(&self) -> bool {
        matches!(*self.owner, Owner::Shared)
    }

    /// Destroys the data key of `subject` within this view's tenant: every entry of that
    /// subject stops opening at once, in every process (L1 copies are dropped through the
    /// invalidation channel within its delivery time), also when a copy of a value is written back
    /// into Redis; a restored copy of the data-key record itself is refused by its tombstone, and
    /// opens nothing at all once the keyring key that wrapped it is retired. Counted as a
    /// `data_erased` event with one audit record (keyed tags, never the ids).
    ///
    /// # Errors
    /// [`Error::InvalidSubject`], [`Error::SharedWithSubject`], [`Error::Unavailable`],
    /// [`Error::Redis`], [`Error::InvalidationNotPublished`] (destroyed, but other processes
    /// could not be told).
    pub async fn erase_subject(&self, subject: &str) -> Result<crate::Erasure> {
        let view = self.subject(subject)?;
        let scope = view.cache.scope.ok_or(Error::SharedWithSubject)?;
        self.cache.erase_data_keys(&scope, false).await
    }

    /// Destroys every data key of this view's tenant (its own and each of its subjects'), as
    /// [`AiResponseCache::erase_subject`] does for one subject.
    ///
    /// # Errors
    /// [`Error::SharedWithSubject`] on a shared view, and as [`AiResponseCache::erase_subject`].
    pub async fn erase_tenant(&self) -> Result<crate::Erasure> {
        let Owner::Tenant { tenant, .. } = &*self.owner else {
            return Err(Error::SharedWithSubject);
        };
        let scope = self
            .cache
            .keys()
            .data_key_scope(&Owner::Tenant {
                tenant: tenant.clone(),
                subject: None,
            })
            .ok_or(Error::SharedWithSubject)?;
        self.cache.erase_data_keys(&scope, true).await
    }

    /// Erasures whose wrapping keyring key is not retired yet (see
    /// [`crate::SealedCache::pending_erasures`]).
    pub async fn pending_erasures(&self) -> Option<u64> {
        self.cache.pending_erasures().await
    }

    /// The generic sealed cache underneath (explicit keys).
    #[must_use]
    pub fn sealed(&self) -> &SealedCache {
        &self.cache
    }

    /// The TTL policy.
    #[must_use]
    pub fn ttl_policy(&self) -> &TtlPolicy {
        &self.ttl
    }

    /// Replaces the keyring without a restart, guarding entries for the TTL policy's longest TTL
    /// (see [`SealedCache::reload_keyring`]).
    ///
    /// # Errors
    /// [`Error::KeyringRefused`] naming the reason; the running keyring is kept.
    pub fn reload_keyring(
        &self,
        keyring: &crate::Keyring,
        mode: crate::KeyringReload,
    ) -> Result<crate::KeyringReloaded> {
        self.cache.reload_keyring(keyring, self.ttl.longest(), mode)
    }

    /// Before reloading a keyring that drops key ids: see [`SealedCache::prepare_key_removal`].
    ///
    /// # Errors
    /// [`Error::KeyringRefused`]; the running keyring is kept.
    pub async fn prepare_key_removal(&self, keyring: &crate::Keyring) -> Result<()> {
        self.cache.prepare_key_removal(keyring).await
    }

    /// The in-process monitor.
    #[must_use]
    pub fn monitor(&self) -> &Arc<SecurityAwareCacheMonitor> {
        self.cache.monitor()
    }

    /// The Redis key of `request`.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub fn key(&self, request: &AiRequest) -> Result<String> {
        let started = Instant::now();
        let key = self.cache.keys().owned_ai_key(&self.owner, request);
        self.cache
            .inner
            .observer
            .operation(OperationKind::KeyGeneration, started.elapsed());
        key
    }

    /// The cached response for `request`, if any. Redis failures and values that fail to open are
    /// misses (counted).
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] only.
    pub async fn get(&self, request: &AiRequest) -> Result<Option<Cached>> {
        // One timer per operation: the key is part of the get, not timed on its own here.
        let key = self.cache.keys().owned_ai_key(&self.owner, request)?;
        Ok(self.cache.get_raw(&key, &request.operation).await)
    }

    /// Stores `response` for `request` for `ttl` (the operation's TTL when `None`) and returns the
    /// TTL used. The value is in L1 only once Redis accepted it; a failed write is cached nowhere.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`], [`Error::Serialize`], [`Error::Seal`], [`Error::WriteRefused`]
    /// (Redis answered `OOM`, `READONLY`, `NOPERM`, ...), [`Error::Unavailable`].
    pub async fn set<T: serde::Serialize + ?Sized>(
        &self,
        request: &AiRequest,
        response: &T,
        ttl: Option<Duration>,
    ) -> Result<Duration> {
        let key = self.key(request)?;
        let ttl = ttl.unwrap_or_else(|| self.ttl.ttl(&request.operation));
        let json = serde_json::to_vec(response).map_err(|_| Error::Serialize)?;
        self.cache.store(&key, json.into(), ttl).await?;
        Ok(ttl)
    }

    /// Stores already-serialized JSON text, returned byte for byte by later reads (the server passes
    /// request bodies through untouched).
    ///
    /// # Errors
    /// [`Error::InvalidJson`] when the text is not one UTF-8 JSON value or has an unpaired UTF-16
    /// surrogate escape (nothing is stored); as [`AiResponseCache::set`].
    pub async fn set_json(
        &self,
        request: &AiRequest,
        json: bytes::Bytes,
        ttl: Option<Duration>,
    ) -> Result<Duration> {
        self.set_json_text(request, crate::JsonText::check(json)?, ttl)
            .await
    }

    /// [`AiResponseCache::set_json`] for text already checked ([`crate::JsonText`]): the server
    /// checks a response once, as it parses the request.
    ///
    /// # Errors
    /// As [`AiResponseCache::set_json`], less [`Error::InvalidJson`].
    pub async fn set_json_text(
        &self,
        request: &AiRequest,
        json: crate::JsonText,
        ttl: Option<Duration>,
    ) -> Result<Duration> {
        let key = self.key(request)?;
        let ttl = ttl.unwrap_or_else(|| self.ttl.ttl(&request.operation));
        self.cache.set_text(&key, json, ttl).await?;
        Ok(ttl)
    }

    /// The cached response, or `compute()`'s, stored for the operation's TTL (or `ttl`).
    ///
    /// Generic like moka's `try_get_with`: any `Serialize + DeserializeOwned` value, and the
    /// computation's own error type, shared with every waiter as `Arc<E>`. Concurrent misses on one
    /// request run `compute` once; a cancelled caller leaves nothing behind; errors are never
    /// cached; [`Answer::origin`] says whether the value came from L1, Redis or the computation.
    /// See [`SealedCache::get_or_compute_raw`].
    ///
    /// ```no_run
    /// # async fn demo(cache: sealcache::AiResponseCache) -> Result<(), Box<dyn std::error::Error>> {
    /// use sealcache::{AiRequest, ComputeError, Origin};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Summary { text: String }
    ///
    /// let request = AiRequest::new("summarize", "a long document ...").model("gpt-4o-mini");
    /// let answer = cache
    ///     .get_or_compute(&request, None, || async {
    ///         // The expensive call, run once however many callers miss at the same time.
    ///         Ok::<_, std::io::Error>(Summary { text: "short".into() })
    ///     })
    ///     .await;
    /// match answer {
    ///     Ok(a) if a.origin == Origin::Computed => println!("computed: {}", a.value.text),
    ///     Ok(a) => println!("cached ({}): {}", a.origin.as_str(), a.value.text),
    ///     Err(ComputeError::Compute(e)) => eprintln!("the model call failed: {e}"),
    ///     Err(e) => eprintln!("the cache refused: {e}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ComputeError::Compute`] with the computation's error; [`ComputeError::Cache`] with
    /// [`Error::InvalidOperation`] or [`Error::Serialize`].
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        request: &AiRequest,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<Answer<T>, ComputeError<E>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = self.key(request)?;
        let ttl = ttl.unwrap_or_else(|| self.ttl.ttl(&request.operation));
        self.cache
            .get_or_compute_raw(&key, &request.operation, ttl, compute)
            .await
    }

    /// Looks `request` up under per-request cache control, and on a miss takes a lease or waits
    /// for another holder's entry (see [`LookupOptions`] and `docs/cache.md`, "Leases"). This is
    /// the HTTP API's `POST /v1/cache/lookup`; in-process callers usually want
    /// [`AiResponseCache::get_or_compute`], which does all of it.
    ///
    /// A [`LookupOutcome::Lease`] is not renewed: store with [`AiResponseCache::set_json`] (after
    /// [`AiResponseCache::check_lease`]) and then [`AiResponseCache::release_lease`], or release it,
    /// before it expires. Redis being unavailable is a [`LookupOutcome::Miss`] (nobody waits).
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub async fn lookup_or_lease(
        &self,
        request: &AiRequest,
        options: LookupOptions,
    ) -> Result<LookupOutcome> {
        let key = self.cache.keys().owned_ai_key(&self.owner, request)?;
        Ok(self
            .cache
            .lookup_or_lease_raw(&key, &request.operation, options)
            .await)
    }

    /// This cache, sealing `writer` (an id such as an API key's: 1-64 characters of `a-z`, `0-9`,
    /// `_` or `-`) into every value it stores; readers see it as [`Cached::written_by`]. The
    /// server names the API key that stored each entry this way (`written_by`, shown to `admin`
    /// callers).
    ///
    /// # Errors
    /// [`Error::InvalidWriter`].
    pub fn written_by(&self, writer: &str) -> Result<Self> {
        let writer = crate::stored_value::Writer::new(writer).ok_or(Error::InvalidWriter)?;
        Ok(Self {
            cache: self.cache.with_writer(writer),
            ttl: Arc::clone(&self.ttl),
            owner: Arc::clone(&self.owner),
        })
    }

    /// Keeps a lease this caller got from [`AiResponseCache::lookup_or_lease`] while it
    /// computes: renewed every third of its TTL, released when the [`HeldLease`] is dropped
    /// (a cancelled computation) or by [`HeldLease::release`] after the store.
    ///
    /// # Errors
    /// [`Error::InvalidLeaseToken`].
    pub fn hold_lease(&self, lease: &Lease) -> Result<HeldLease> {
        self.cache.hold_lease(lease)
    }

    /// Checks that `token` leases the entry of `request` (before storing with it) and was issued
    /// to this view's tenant (or, for a shared view, to a shared view): a token acts only for the
    /// tenant whose lookup took it.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`], [`Error::LeaseNotForRequest`].
    pub fn check_lease(&self, request: &AiRequest, token: &LeaseToken) -> Result<()> {
        let key = self.cache.keys().owned_ai_key(&self.owner, request)?;
        self.cache.check_lease(token, &key)
    }

    /// Releases the lease `token` names if it still holds it (after storing, or to abandon it);
    /// whether it did. A lease held by another token is never touched, and a token issued to
    /// another tenant (or to the shared view, when this one is a tenant's) releases nothing.
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::Redis`].
    pub async fn release_lease(&self, token: &LeaseToken) -> Result<bool> {
        self.cache.release_lease_token(token).await
    }

    /// Stores a completed stream of server-sent events for `request` as one sealed value (their
    /// order and count authenticated) and returns the TTL used. Replayed by
    /// [`AiResponseCache::get_stream`] and [`Cached::sse_bytes`].
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] (nothing stored), as [`AiResponseCache::set`] otherwise.
    pub async fn set_events(
        &self,
        request: &AiRequest,
        events: &[SseEvent],
        ttl: Option<Duration>,
    ) -> Result<Duration> {
        let key = self.key(request)?;
        let ttl = ttl.unwrap_or_else(|| self.ttl.ttl(&request.operation));
        self.cache.store_events(&key, events, ttl).await?;
        Ok(ttl)
    }

    /// Starts recording a streamed answer for `request`; it is stored only when the recorder's
    /// [`StreamRecorder::finish`] says the stream completed normally.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub fn record_stream(
        &self,
        request: &AiRequest,
        ttl: Option<Duration>,
    ) -> Result<StreamRecorder> {
        let key = self.key(request)?;
        let ttl = ttl.unwrap_or_else(|| self.ttl.ttl(&request.operation));
        Ok(StreamRecorder::new(self.cache.clone(), key, ttl))
    }

    /// The cached stream of `request`, replayed as a [`futures_util::Stream`] of its events
    /// (`None`: a miss, or the entry is one JSON value).
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub async fn get_stream(&self, request: &AiRequest) -> Result<Option<EventStream>> {
        Ok(self
            .get(request)
            .await?
            .and_then(|hit| hit.event_stream().ok()))
    }

    /// The cached stream of `request`, or the stream `compute()` returns, stored once it ended
    /// without an error (for the operation's TTL, or `ttl`).
    ///
    /// Single-flight for streams: concurrent callers of this process **attach to the live
    /// stream** (each gets every event from the first, in order, as they arrive); callers in other
    /// processes wait for the holder of the lease and replay the stored stream once it is
    /// complete. The computation runs in a task of its own (so `S` must be `Send + 'static`, and a
    /// Tokio runtime must be running); it stops at its next event once no consumer is left, and
    /// then nothing is stored. An upstream error reaches every attached caller as
    /// [`crate::StreamError::Compute`] and nothing is stored.
    ///
    /// ```no_run
    /// # async fn demo(cache: sealcache::AiResponseCache) -> Result<(), Box<dyn std::error::Error>> {
    /// use futures_util::StreamExt as _;
    /// use sealcache::{AiRequest, SseEvent};
    ///
    /// let request = AiRequest::new("chat", "Tell me a joke").model("gpt-4o-mini");
    /// let mut events = cache
    ///     .get_or_compute_stream(&request, None, || {
    ///         // The model's stream, event by event (here a fixed one).
    ///         futures_util::stream::iter(vec![
    ///             Ok::<_, std::io::Error>(SseEvent::new(r#"{"delta":"Knock knock"}"#)),
    ///             Ok(SseEvent::new("[DONE]")),
    ///         ])
    ///     })
    ///     .await?;
    /// while let Some(event) = events.next().await {
    ///     let mut wire = Vec::new();
    ///     event?.write_sse(&mut wire); // forward to the client as it arrives
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub async fn get_or_compute_stream<E, F, S>(
        &self,
        request: &AiRequest,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<LiveStream<E>>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> S,
        S: futures_util::Stream<Item = std::result::Result<SseEvent, E>> + Send + 'static,
    {
        let key = self.key(request)?;
        let ttl = ttl.unwrap_or_else(|| self.ttl.ttl(&request.operation));
        Ok(self
            .cache
            .get_or_compute_stream_raw(&key, &request.operation, ttl, compute)
            .await)
    }

    /// Removes the entry of `request`.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`], [`Error::Unavailable`], [`Error::Redis`].
    pub async fn delete(&self, request: &AiRequest) -> Result<bool> {
        let key = self.key(request)?;
        self.cache.delete_raw(&key).await
    }

    /// Removes every entry of `operation` (`SCAN MATCH` + `UNLINK` in batches) and returns how
    /// many Redis removed.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`], [`Error::Unavailable`], [`Error::Redis`].
    pub async fn invalidate_operation(&self, operation: &str) -> Result<u64> {
        validate_operation(operation)?;
        let pattern = self.cache.keys().operation_pattern(operation)?;
        let prefix = pattern.trim_end_matches('*').to_owned();
        self.cache.invalidate_pattern(&pattern, &prefix).await
    }

    /// Removes every entry of the namespace; needs `confirm == "invalidate-all"`.
    ///
    /// # Errors
    /// [`Error::ClearNotConfirmed`], [`Error::Unavailable`], [`Error::Redis`].
    pub async fn clear(&self, confirm: &str) -> Result<u64> {
        self.cache.clear(confirm).await
    }

    /// Performance figures.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The observed security posture.
    pub async fn security_status(&self) -> SecurityStatus {
        self.cache.security_status().await
    }

    /// The Redis circuit breaker's state.
    #[must_use]
    pub fn breaker_state(&self) -> sealcache_monitor::BreakerState {
        self.cache.breaker_state()
    }

    /// Entries in the L1 tier now.
    #[must_use]
    pub fn l1_entries(&self) -> u64 {
        self.cache.l1_entries()
    }

    /// Bytes held by the L1 tier now.
    #[must_use]
    pub fn l1_bytes(&self) -> u64 {
        self.cache.l1_bytes()
    }

    /// Whether Redis answers now.
    pub async fn redis_available(&self) -> bool {
        self.cache.redis_available().await
    }

    /// The observer calls go to (the monitor and the caller's).
    #[must_use]
    pub fn observer(&self) -> &Arc<dyn CacheObserver> {
        &self.cache.inner.observer
    }
}
