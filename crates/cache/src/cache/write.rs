//! Writes: seal, store, tell the other processes.

use std::time::{Duration, Instant};

use bytes::Bytes;

use sealcache_codec::SealContext;
use sealcache_monitor::{CacheObserver, OperationKind, SizeStage, WriteFailure};

use super::SealedCache;
use crate::coherence::Change;
use crate::error::{Error, Result};
use crate::json_text::JsonText;
use crate::stored_value::{self, EntryKind, Meta};
use tracing::Instrument as _;

impl SealedCache {
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

    pub(super) async fn store_untraced(
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
        if let (Some(l1), Some(stamp)) = (&inner.l1, stamp)
            && written.is_ok()
            && served
        {
            l1.put_after(redis_key, json, ttl, meta, stamp);
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
}
