//! Live streams across processes: a lease holder that streams its computation publishes each event
//! as a sealed **frame** in the entry's slot, and callers waiting in any process follow the frames
//! as they come, then the stored entry.
//!
//! **Frames.** Event `n` of the holder of lease secret `s` is stored (sealed as any value, under the
//! entry's own data key when it has one) at `{namespace}:live:{<entry key>}:{sid}:{n}`, where `sid`
//! is the first 128 bits of `SHA-256("sealcache live v1" || s)` in hex: a name the holder and the
//! waiters can compute (waiters read the lease's secret from Redis, never from a client) that
//! reveals nothing of the secret, so a frame name is no capability. The braces put every frame in
//! the entry's slot (one node of a Redis Cluster), inside the namespace the ACL grants. A frame is
//! written with `SET PX` like an entry, and its store publishes on the coherence channel, which
//! wakes the waiters of that frame (see `wake`): no command beyond the app user's existing grant.
//!
//! **Authenticated sequence numbers.** A frame's name, sequence number included, is its sealing
//! context (associated data), so a frame moved, copied or swapped to another number, another
//! holder's stream or another entry fails to open: the follower counts it (`decrypt_failed`, as any
//! value that fails to open) and ends the stream with an error. A frame that is missing is waited
//! for; it is never skipped.
//!
//! **Whose frames.** A frame is accepted only when it was sealed under the follower's own data key
//! (the entry's tenant and subject, or the keyring for a shared entry): a holder that appended
//! under another scope would put one subject's data beyond its erasure, so such a frame ends the
//! stream (`Tampered`, counted as `decrypt_failed`).
//!
//! **The end.** The holder stores the whole stream as the entry (one sealed value, count
//! authenticated) before it releases the lease. A follower that finds no frame `n` waits while the
//! lease is still held by the secret it follows (the entry in Redis may still be an older answer,
//! which a `no_cache` or `max_age` holder is replacing); once the lease is released it reads the
//! entry from Redis (never from L1) and yields its events from `n` on, but only if the entry's first
//! `n` events are the very events it already yielded (a running SHA-256 of them) and it was stored
//! no earlier than the caller accepts (`max_age`, `no_cache`): an older entry or another writer's
//! answer ends the stream with an error (`Abandoned`: authentic, so not counted as an attack),
//! never a mixed stream passed off as complete. If there is neither a frame nor the entry once the lease
//! is gone, the holder failed: the follower ends with an error (what it yielded cannot be taken
//! back, so the reader must learn the stream is incomplete). Frames expire after [`FRAME_TTL`]
//! (longer than the longest HTTP lease); the crate's holder removes them once the entry is stored.

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use sealcache_monitor::{EventSource, SecurityEvent, SecurityEventType, key_tag};
use sha2::Digest as _;

use crate::AiResponseCache;
use crate::cache::SealedCache;
use crate::error::{Error, Result};
use crate::key::AiRequest;
use crate::lease::{Awaited, LeaseToken, LookupOptions, LookupOutcome};
use crate::stream::SseEvent;

/// How long a frame lives: longer than the longest lease the HTTP API grants (600 s), so no frame
/// of a holder that still holds its lease expires before its followers read it (the holder removes
/// its frames once the entry is stored).
pub const FRAME_TTL: Duration = Duration::from_secs(15 * 60);

/// Why following a live stream ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// The holder went away (or failed) before storing its stream.
    #[error("the live stream's holder went away before it completed")]
    Abandoned,
    /// A frame or the stored stream failed to open, or does not continue the frames (counted as a
    /// security event).
    #[error("a live stream frame failed authentication")]
    Tampered,
}

/// A live stream followed from another process: its events as they arrive, then the rest of the
/// stored stream; an `Err` item ends it early.
pub type LiveEvents =
    Pin<Box<dyn Stream<Item = std::result::Result<SseEvent, FollowError>> + Send + 'static>>;

/// What [`AiResponseCache::lookup_or_follow`] found.
#[non_exhaustive]
pub enum Followed {
    /// What [`AiResponseCache::lookup_or_lease`] would have answered.
    Outcome(LookupOutcome),
    /// Another caller holds the lease and streams its computation: its events, live.
    Live(LiveEvents),
}

impl std::fmt::Debug for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Followed::Outcome(outcome) => f.debug_tuple("Outcome").field(outcome).finish(),
            Followed::Live(_) => f.write_str("Live(..)"),
        }
    }
}

impl AiResponseCache {
    /// As [`AiResponseCache::lookup_or_lease`], and while it waits for another holder (`wait`),
    /// a holder that streams its computation live (its events published as frames, see
    /// [`AiResponseCache::append_live_events`] and `get_or_compute_stream`) is followed:
    /// [`Followed::Live`] yields its events as they come, then the rest of the stored stream. This
    /// is the HTTP lookup with `Accept: text/event-stream` and `wait_ms`.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub async fn lookup_or_follow(
        &self,
        request: &AiRequest,
        options: LookupOptions,
    ) -> Result<Followed> {
        let key = self.key(request)?;
        let sealed = self.sealed();
        Ok(
            match sealed
                .lookup_or_await(&key, &request.operation, options, true)
                .await
            {
                Awaited::Outcome(outcome) => Followed::Outcome(outcome),
                Awaited::Follow {
                    secret,
                    since,
                    permit,
                } => Followed::Live(Box::pin(sealed.follow(&key, secret, since, Some(permit)))),
            },
        )
    }

    /// Publishes `events` as events `first..` of the live stream of the lease `token` names, for
    /// the callers following it in any process ([`AiResponseCache::lookup_or_follow`]). Complete
    /// the stream by storing all of its events ([`AiResponseCache::set_events`]) and releasing the
    /// lease; followers then read the rest from the stored entry. Publishing the same index again
    /// replaces it (a follower may have read either).
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when the token no longer holds its lease or was issued to another
    /// tenant (or view: shared or a tenant's); [`Error::InvalidLeaseToken`],
    /// [`Error::InvalidEvent`], and as [`AiResponseCache::set`].
    pub async fn append_live_events(
        &self,
        token: &LeaseToken,
        first: u64,
        events: &[SseEvent],
    ) -> Result<()> {
        let sealed = self.sealed();
        let Some(entry_key) = sealed.held_entry(token).await? else {
            return Err(Error::LeaseLost);
        };
        sealed
            .append_frames(&entry_key, token.secret().as_bytes(), first, events)
            .await
    }

    /// Removes frames `0..count` that the holder of `token` published with
    /// [`AiResponseCache::append_live_events`], once its stream is stored and the lease released
    /// (followers then read the stored entry). Best effort: frames expire after [`FRAME_TTL`]
    /// anyway.
    pub async fn remove_live_events(&self, token: &LeaseToken, count: u64) {
        let sealed = self.sealed();
        let Ok(entry_key) = sealed.token_entry_key(token) else {
            return;
        };
        let secret = token.secret().as_bytes();
        // A holder that published nothing costs one read, not `count` removals.
        let first = frame_key(
            sealed.inner.keys.namespace(),
            &entry_key,
            &stream_id(secret),
            0,
        );
        let Some(first) = first else {
            return;
        };
        if matches!(sealed.inner.backend.get(&first).await, Ok(None)) {
            return;
        }
        sealed.remove_frames(&entry_key, secret, count).await;
    }
}

/// The stream id of a lease secret (32 hex digits).
pub(crate) fn stream_id(secret: &[u8]) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(b"sealcache live v1");
    hash.update(secret);
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The name of frame `seq` of stream `sid` of `entry_key` (`None` for a key without a hash tag of
/// its own, as for leases).
pub(crate) fn frame_key(namespace: &str, entry_key: &str, sid: &str, seq: u64) -> Option<String> {
    if entry_key.contains(['{', '}']) {
        return None;
    }
    Some(format!("{namespace}:live:{{{entry_key}}}:{sid}:{seq}"))
}

impl SealedCache {
    /// Stores `events` as frames `first..` of the stream of lease secret `secret` on `entry_key`.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`], and as [`SealedCache::set_raw`].
    pub(crate) async fn append_frames(
        &self,
        entry_key: &str,
        secret: &[u8],
        first: u64,
        events: &[SseEvent],
    ) -> Result<()> {
        let sid = stream_id(secret);
        for (i, event) in events.iter().enumerate() {
            event.check()?;
            let seq = first.saturating_add(i as u64);
            let key = frame_key(self.inner.keys.namespace(), entry_key, &sid, seq)
                .ok_or(Error::InvalidKey)?;
            let json = serde_json::to_vec(event).map_err(|_| Error::Serialize)?;
            self.store(&key, json.into(), FRAME_TTL).await?;
        }
        Ok(())
    }

    /// Removes frames `0..count` of the stream of `secret` (best effort: they expire anyway).
    pub(crate) async fn remove_frames(&self, entry_key: &str, secret: &[u8], count: u64) {
        let sid = stream_id(secret);
        let keys: Vec<String> = (0..count)
            .filter_map(|seq| frame_key(self.inner.keys.namespace(), entry_key, &sid, seq))
            .collect();
        for batch in keys.chunks(crate::SCAN_BATCH.max(1)) {
            let _ = self.inner.backend.unlink(batch).await;
        }
    }

    /// The secret of the lease on `entry_key` and whether its holder published frame 0 (a live
    /// stream to follow); `None` when there is no such stream.
    pub(crate) async fn live_stream_of(&self, entry_key: &str) -> Option<Vec<u8>> {
        let lease_key = crate::lease::lease_key(self.inner.keys.namespace(), entry_key)?;
        let secret = self.inner.backend.get(&lease_key).await.ok()??;
        let first = frame_key(
            self.inner.keys.namespace(),
            entry_key,
            &stream_id(&secret),
            0,
        )?;
        let exists = self.inner.backend.get(&first).await.ok()?.is_some();
        exists.then_some(secret)
    }

    /// Follows the live stream of lease secret `secret` on `entry_key` from its first frame;
    /// its stored entry is taken only if stored at or after `since` (Unix ms).
    pub(crate) fn follow(
        &self,
        entry_key: &str,
        secret: Vec<u8>,
        since: Option<u64>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> impl Stream<Item = std::result::Result<SseEvent, FollowError>> + Send + 'static {
        let follower = Follower {
            cache: self.clone(),
            entry_key: entry_key.to_owned(),
            since,
            _permit: permit,
            sid: stream_id(&secret),
            secret,
            next: 0,
            yielded: sha2::Sha256::new(),
            tail: None,
            over: false,
        };
        futures_util::stream::unfold(follower, |mut f| async move {
            let item = f.next().await?;
            Some((item, f))
        })
    }
}

/// The state of one follower.
struct Follower {
    cache: SealedCache,
    entry_key: String,
    secret: Vec<u8>,
    sid: String,
    /// The oldest store time of the entry this follower may end with (Unix ms).
    since: Option<u64>,
    /// Its place among the process's followers, given back when it is dropped.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The next sequence number to yield.
    next: u64,
    /// SHA-256 of the events yielded so far (each as its JSON text, length-prefixed).
    yielded: sha2::Sha256,
    /// The stored stream's events after the frames, once the entry was found.
    tail: Option<std::vec::IntoIter<SseEvent>>,
    over: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<std::result::Result<SseEvent, FollowError>> {
        if self.over {
            return None;
        }
        if let Some(tail) = self.tail.as_mut() {
            let event = tail.next();
            self.over = event.is_none();
            return event.map(Ok);
        }
        let item = self.step().await;
        if !matches!(item, Some(Ok(_))) && self.tail.is_none() {
            self.over = true;
        }
        item
    }

    /// The next frame, waiting for it; or the switch to the stored entry; or the end.
    async fn step(&mut self) -> Option<std::result::Result<SseEvent, FollowError>> {
        let cache = self.cache.clone();
        let inner = &cache.inner;
        let namespace = inner.keys.namespace();
        let lease_key = crate::lease::lease_key(namespace, &self.entry_key)?;
        let poll = inner.options.lease_poll;
        let mut unreachable_since: Option<std::time::Instant> = None;
        loop {
            let key = frame_key(namespace, &self.entry_key, &self.sid, self.next)?;
            // Subscribed before the look: the frame's store wakes this follower.
            let mut wake = cache.wake_on(&key);
            match inner.backend.get(&key).await {
                Ok(Some(bytes)) => {
                    let opened = cache
                        .open_stored(&key, &bytes, None, false, &*inner.observer, None)
                        .await;
                    let Some(opened) = opened else {
                        // Counted by `open_stored`.
                        return Some(Err(FollowError::Tampered));
                    };
                    if opened.sealed_under() != cache.scope {
                        self.refuse("a live stream frame was sealed under another data key");
                        return Some(Err(FollowError::Tampered));
                    }
                    return Some(
                        match serde_json::from_slice::<SseEvent>(opened.json_bytes()) {
                            Ok(event) => {
                                self.next += 1;
                                hash_event(&mut self.yielded, &event);
                                Ok(event)
                            }
                            Err(_) => {
                                self.refuse("a live stream frame is not an event");
                                Err(FollowError::Tampered)
                            }
                        },
                    );
                }
                Ok(None) => {
                    unreachable_since = None;
                    let held = inner.backend.get(&lease_key).await;
                    let still_held = match &held {
                        Ok(Some(value)) => value.as_slice() == self.secret.as_slice(),
                        Ok(None) => false,
                        // Cannot tell: wait, as for an unreachable Redis below.
                        Err(_) => true,
                    };
                    // While the holder holds its lease the entry may still be an older answer:
                    // only its next frame (or its release) moves this follower on.
                    if !still_held {
                        return match self.stored_rest().await {
                            Ok(first) => first.map(Ok),
                            Err(error) => Some(Err(error)),
                        };
                    }
                }
                Err(_) => {
                    // Redis unreachable for longer than a lease lives: the holder cannot be
                    // told from a dead one.
                    let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > inner.options.lease_ttl {
                        return Some(Err(FollowError::Abandoned));
                    }
                }
            }
            crate::wake::pause(wake.as_mut(), poll).await;
        }
    }
}

impl Follower {
    /// Once the lease is released: the stored entry's events after those yielded, if the entry
    /// (read from Redis, sealed under this follower's data key) continues exactly what was
    /// yielded. Returns its first remaining event (`None`: it had no more) and keeps the rest.
    async fn stored_rest(&mut self) -> std::result::Result<Option<SseEvent>, FollowError> {
        let cache = self.cache.clone();
        let inner = &cache.inner;
        let stored = match inner.backend.get(&self.entry_key).await {
            Ok(Some(bytes)) => bytes,
            // Released without storing (failed, cancelled), or Redis cannot tell: the stream
            // cannot be completed.
            Ok(None) | Err(_) => return Err(FollowError::Abandoned),
        };
        let Some(entry) = cache
            .open_stored(
                &self.entry_key,
                &stored,
                None,
                false,
                &*inner.observer,
                None,
            )
            .await
        else {
            return Err(FollowError::Tampered);
        };
        if entry.sealed_under() != cache.scope {
            self.refuse("a followed stream's entry was sealed under another data key");
            return Err(FollowError::Tampered);
        }
        // Authentic, yet not this holder's answer: a JSON value, an entry older than the caller
        // accepts (the holder failed while an older answer stood there), or one that does not
        // continue the events already sent (another writer's). Nothing was tampered with, but
        // the stream cannot be completed: it ends as abandoned, never mixed.
        if !entry.stored_since(self.since) {
            return Err(FollowError::Abandoned);
        }
        let Ok(events) = entry.events() else {
            return Err(FollowError::Abandoned);
        };
        let from = usize::try_from(self.next).unwrap_or(usize::MAX);
        let mut prefix = sha2::Sha256::new();
        for event in events.iter().take(from) {
            hash_event(&mut prefix, event);
        }
        if events.len() < from || prefix.finalize() != self.yielded.clone().finalize() {
            return Err(FollowError::Abandoned);
        }
        let mut tail = events
            .into_iter()
            .skip(from)
            .collect::<Vec<_>>()
            .into_iter();
        let first = tail.next();
        if first.is_none() {
            self.over = true;
        }
        self.tail = Some(tail);
        Ok(first)
    }

    /// Counts a refused frame or entry (`decrypt_failed`: a value that does not belong where it
    /// was found).
    fn refuse(&self, detail: &str) {
        self.cache.inner.observer.security_event(
            SecurityEvent::new(SecurityEventType::DecryptFailed)
                .source(EventSource::Client)
                .detail(format!("{detail}; key #{}", key_tag(&self.entry_key))),
        );
    }
}

/// Adds one event to a running hash of a stream (length-prefixed JSON text: no two sequences of
/// events hash alike by concatenation).
fn hash_event(hash: &mut sha2::Sha256, event: &SseEvent) {
    let json = serde_json::to_vec(event).unwrap_or_default();
    hash.update((json.len() as u64).to_be_bytes());
    hash.update(&json);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_share_the_entry_slot_and_hide_the_secret() {
        let sid = stream_id(b"00112233445566778899aabbccddeeff");
        assert_eq!(sid.len(), 32);
        assert!(!sid.contains("0011223344"));
        assert_ne!(sid, stream_id(b"00112233445566778899aabbccddeefe"));
        assert_eq!(
            frame_key("ns", "ns:v2:qa:d", &sid, 7).unwrap(),
            format!("ns:live:{{ns:v2:qa:d}}:{sid}:7")
        );
        assert_eq!(frame_key("ns", "ns:kv:a{b}", &sid, 0), None);
    }
}
