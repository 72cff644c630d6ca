//! Reads: L1, then Redis; every failure to open a stored value is a miss and a counted event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcache_codec::{SealContext, Source};
use sealcache_monitor::{
    CacheObserver, EventSource, LookupResult, Outcome, SecurityEvent, SecurityEventType, Tier,
    key_tag,
};

use super::{Cached, Looked, SealedCache};
use crate::error::Result;
use crate::l1::L1;
use crate::stored_value::{self};
use tracing::Instrument as _;

impl SealedCache {
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
    pub(super) async fn lookup(
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

    /// Gets a value by explicit key (the generic cache).
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey); a stored value that is not a `T` is [`Error::Serialize`](crate::Error::Serialize).
    pub async fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let full = self.inner.keys.explicit_key(key)?;
        // The remaining TTL is not returned here: no `PTTL` for it.
        match self.timed_lookup(&full, "kv", false, None).await.hit() {
            Some(c) => c.parse().map(Some),
            None => Ok(None),
        }
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
    pub(super) fn codec_failures_count_as_their_own_events() {
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
