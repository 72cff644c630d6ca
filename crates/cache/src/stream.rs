//! Streamed answers: server-sent events, stored sealed as one ordered list and replayed byte-exact.
//!
//! A stream is stored only once it **completed normally**, and that is decided by the caller: a
//! [`StreamRecorder`] stores its events when, and only when, [`StreamRecorder::finish`] is called.
//! Dropping it (the client went away, the model call failed, the task was cancelled) or calling
//! [`StreamRecorder::abort`] stores nothing. [`StreamRecorder::tee`] applies that rule to a stream
//! of `Result`s: it stores once the upstream ended without an error and was read to its end.
//!
//! Replay renders each event as the SSE wire format; the event type, its rules and the format are
//! `sealcache-api`'s ([`SseEvent`], [`render_sse`]), so the HTTP API's schema states them too.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};

use crate::cache::SealedCache;
use crate::error::{Error, Result};

pub use sealcache_api::{SseEvent, render_sse};

/// How many elements the JSON array `body` has (`None`: not an array).
pub(crate) fn count_events(body: &[u8]) -> Option<usize> {
    serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(body)
        .ok()
        .map(|v| v.len())
}

/// The stored form of `events`: their JSON array and count, after checking each one.
pub(crate) fn encode_events(events: &[SseEvent]) -> Result<(Vec<u8>, u32)> {
    for e in events {
        e.check()?;
    }
    let count = u32::try_from(events.len())
        .map_err(|_| Error::InvalidEvent("a stream has more than 2^32 - 1 events"))?;
    let json = serde_json::to_vec(events).map_err(|_| Error::Serialize)?;
    Ok((json, count))
}

/// A cached stream replayed as a [`Stream`] of its events, in their stored order.
#[derive(Debug)]
pub struct EventStream {
    events: std::vec::IntoIter<SseEvent>,
}

impl EventStream {
    pub(crate) fn new(events: Vec<SseEvent>) -> Self {
        Self {
            events: events.into_iter(),
        }
    }

    /// The events not yet yielded.
    #[must_use]
    pub fn into_events(self) -> Vec<SseEvent> {
        self.events.collect()
    }
}

impl Stream for EventStream {
    type Item = SseEvent;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<SseEvent>> {
        Poll::Ready(self.events.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.events.size_hint()
    }
}

/// Records a streamed answer while it is being sent, and stores it only when the caller says it
/// completed normally ([`StreamRecorder::finish`]). Dropped or [aborted](StreamRecorder::abort), it
/// stores nothing.
#[derive(Debug)]
pub struct StreamRecorder {
    cache: SealedCache,
    key: String,
    ttl: Duration,
    events: Vec<SseEvent>,
    /// Bytes of data and names so far (a recording past the value size cap is refused at once).
    bytes: usize,
    /// Set when an event could not be recorded: the recording can no longer be stored.
    spoilt: Option<Spoilt>,
}

/// Why a recording can no longer be stored.
#[derive(Debug, Clone, Copy)]
enum Spoilt {
    Invalid(&'static str),
    TooLarge { size: usize, limit: usize },
}

impl Spoilt {
    fn error(self) -> Error {
        match self {
            Spoilt::Invalid(why) => Error::InvalidEvent(why),
            Spoilt::TooLarge { size, limit } => {
                Error::Seal(sealcache_codec::Error::PlaintextTooLarge { size, limit })
            }
        }
    }
}

impl StreamRecorder {
    pub(crate) fn new(cache: SealedCache, key: String, ttl: Duration) -> Self {
        Self {
            cache,
            key,
            ttl,
            events: Vec::new(),
            bytes: 0,
            spoilt: None,
        }
    }

    /// Records the next event.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] when the event cannot be replayed as given, [`Error::Seal`] when the
    /// recording grew past the value size cap. Either way the recording is spoilt: `finish` then
    /// stores nothing and returns the first error.
    pub fn push(&mut self, event: SseEvent) -> Result<()> {
        if let Some(spoilt) = self.spoilt {
            return Err(spoilt.error());
        }
        let limit = self.cache.max_value_size();
        self.bytes = self
            .bytes
            .saturating_add(event.data.len() + event.event.as_ref().map_or(0, String::len));
        let spoilt = match event.check() {
            Err(sealcache_api::InvalidEvent(why)) => Some(Spoilt::Invalid(why)),
            Ok(()) if self.bytes > limit => Some(Spoilt::TooLarge {
                size: self.bytes,
                limit,
            }),
            Ok(()) => None,
        };
        match spoilt {
            None => {
                self.events.push(event);
                Ok(())
            }
            Some(spoilt) => {
                // Nothing of a spoilt recording is kept (or ever stored).
                self.events = Vec::new();
                self.spoilt = Some(spoilt);
                Err(spoilt.error())
            }
        }
    }

    /// Events recorded so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing was recorded yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The stream completed normally: seals its events as one value (their order and count
    /// authenticated) and stores them for the TTL, which it returns.
    ///
    /// # Errors
    /// The first error `push` returned; [`Error::InvalidEvent`] for a stream without events; as
    /// [`crate::AiResponseCache::set`] otherwise.
    pub async fn finish(self) -> Result<Duration> {
        if let Some(spoilt) = self.spoilt {
            return Err(spoilt.error());
        }
        self.cache
            .store_events(&self.key, &self.events, self.ttl)
            .await?;
        Ok(self.ttl)
    }

    /// The stream did not complete normally: nothing is stored (the same as dropping it).
    pub fn abort(self) {}

    /// Passes `upstream` through and records it; stores it when `upstream` ends after yielding
    /// only `Ok` events and was read to its end. An `Err` item, an event that cannot be recorded or
    /// dropping the returned stream early stores nothing; a failed store is counted by the cache
    /// (`sealcache.write.failures`) and does not disturb the stream.
    pub fn tee<S, E>(self, upstream: S) -> impl Stream<Item = std::result::Result<SseEvent, E>>
    where
        S: Stream<Item = std::result::Result<SseEvent, E>>,
    {
        let state = (Some(self), Box::pin(upstream));
        futures_util::stream::unfold(state, |(mut recorder, mut upstream)| async move {
            match upstream.next().await {
                Some(Ok(event)) => {
                    if let Some(r) = recorder.as_mut()
                        && r.push(event.clone()).is_err()
                    {
                        recorder = None;
                    }
                    Some((Ok(event), (recorder, upstream)))
                }
                Some(Err(e)) => Some((Err(e), (None, upstream))),
                None => {
                    if let Some(r) = recorder {
                        // Counted by the cache when it fails; the caller's stream is complete.
                        let _ = r.finish().await;
                    }
                    None
                }
            }
        })
    }
}

impl SealedCache {
    /// Stores `events` under a full Redis key as one sealed stream value.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] (also for an empty list), as [`SealedCache::set_raw`] otherwise.
    pub async fn store_events(
        &self,
        redis_key: &str,
        events: &[SseEvent],
        ttl: Duration,
    ) -> Result<()> {
        if events.is_empty() {
            return Err(Error::InvalidEvent("a stream has no events"));
        }
        let (json, count) = encode_events(events)?;
        self.store_kind(redis_key, json.into(), ttl, Some(count))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_json_shape() {
        let (json, count) =
            encode_events(&[SseEvent::new("a"), SseEvent::named("e", "b")]).unwrap();
        assert_eq!(count, 2);
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"[{"data":"a"},{"event":"e","data":"b"}]"#
        );
        assert_eq!(count_events(&json), Some(2));
        assert_eq!(count_events(b"{}"), None);
    }
}
