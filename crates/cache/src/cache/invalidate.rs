//! Removals (one key, a pattern, everything) and the coherence messages that tell the other
//! processes to drop their L1 copies.

use std::time::{Duration, Instant};

use sealcache_monitor::{CacheObserver, OperationKind};

use super::{CLEAR_CONFIRMATION, SCAN_BATCH, SealedCache};
use crate::coherence::Change;
use crate::error::{Error, Result};
use crate::l1::L1;

/// Drops L1 copies when dropped: the "after" half of a removal, run even when the removing future
/// is cancelled.
pub(crate) struct L1Drop<'a> {
    l1: Option<&'a L1>,
    key: Option<&'a str>,
    prefix: Option<&'a str>,
}

impl<'a> L1Drop<'a> {
    pub(crate) fn key(l1: Option<&'a L1>, key: &'a str) -> Self {
        Self {
            l1,
            key: Some(key),
            prefix: None,
        }
    }

    pub(crate) fn prefix(l1: Option<&'a L1>, prefix: &'a str) -> Self {
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

impl SealedCache {
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
        let removed = walked?;
        published?;
        self.inner.observer.invalidation(removed);
        self.inner
            .observer
            .operation(OperationKind::Invalidate, started.elapsed());
        Ok(removed)
    }

    /// `SCAN MATCH` + `UNLINK` in batches; how many keys Redis removed.
    pub(super) async fn unlink_matching(&self, pattern: &str) -> Result<u64> {
        self.inner
            .backend
            .unlink_matching(pattern, SCAN_BATCH)
            .await
    }

    /// Tells the other processes what changed. A failure is counted, and this process stops
    /// serving L1 until its invalidation heartbeat gets through again (see `coherence`).
    ///
    /// # Errors
    /// [`Error::InvalidationNotPublished`].
    pub(super) async fn publish(&self, change: Change<'_>) -> Result<()> {
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
    pub(super) async fn publish_after(&self, succeeded: bool, change: Change<'_>) -> Result<()> {
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
    pub(super) fn republish(&self, change: crate::coherence::OwnedChange) {
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

    /// Drops L1 copies (and the unwrapped data keys) a prefix names, in this process.
    pub(crate) fn drop_l1_prefix(&self, prefix: &str) {
        if let Some(l1) = &self.inner.l1 {
            l1.remove_prefix(prefix);
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
}
