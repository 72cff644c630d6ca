//! `AiResponseCache`: the sealed cache keyed by AI requests, with per-operation TTLs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcache_monitor::{CacheObserver, OperationKind, SecurityAwareCacheMonitor};

use crate::cache::{CacheStats, Cached, SealedCache};
use crate::compute::Answer;
use crate::error::{ComputeError, Error, Result};
use crate::key::{AiRequest, validate_operation};
use crate::status::SecurityStatus;
use crate::ttl::TtlPolicy;

/// The AI response cache.
///
/// Keys are `{namespace}:v2:{operation}:{hex HMAC-SHA256}` of the request; values are sealed JSON;
/// TTLs come from the [`TtlPolicy`].
#[derive(Debug, Clone)]
pub struct AiResponseCache {
    cache: SealedCache,
    /// Shared: cloning the cache (once per request in a server) allocates nothing.
    ttl: Arc<TtlPolicy>,
}

impl AiResponseCache {
    pub(crate) fn new(cache: SealedCache, ttl: TtlPolicy) -> Self {
        Self {
            cache,
            ttl: Arc::new(ttl),
        }
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
        let key = self.cache.keys().ai_key(request);
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
        let key = self.cache.keys().ai_key(request)?;
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
        let key = self.key(request)?;
        let ttl = ttl.unwrap_or_else(|| self.ttl.ttl(&request.operation));
        self.cache.set_raw(&key, json, ttl).await?;
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
