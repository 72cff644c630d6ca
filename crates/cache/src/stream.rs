//! Streamed answers: server-sent events, stored sealed as one ordered list and replayed byte-exact.
//!
//! A stream is stored only once it **completed normally**, and that is decided by the caller: a
//! [`StreamRecorder`] stores its events when, and only when, [`StreamRecorder::finish`] is called.
//! Dropping it (the client went away, the model call failed, the task was cancelled) or calling
//! [`StreamRecorder::abort`] stores nothing. [`StreamRecorder::tee`] applies that rule to a stream
//! of `Result`s: it stores once the upstream ended without an error and was read to its end.
//!
//! Replay renders each event as the SSE wire format (WHATWG HTML, "Server-sent events"): `event:
//! NAME\n` when named, one `data: LINE\n` per line of the data, then an empty line. Event names
//! may not contain CR or LF, and data may not contain CR (an SSE parser ends a line at a CR, so data
//! holding one could not be replayed as it was given); LF in data separates its lines.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};

use crate::cache::SealedCache;
use crate::error::{Error, Result};

/// One server-sent event: an optional event type (`event:` field) and its data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseEvent {
    /// The event type (`event:`), if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The data: lines separated by LF (`\n`); one `data:` line each on the wire.
    pub data: String,
}

impl SseEvent {
    /// An unnamed event (a `message`, as OpenAI's chat-completion chunks are).
    #[must_use]
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            event: None,
            data: data.into(),
        }
    }

    /// An event of type `event` (as Anthropic's `message_start`, `content_block_delta`, ...).
    #[must_use]
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            event: Some(event.into()),
            data: data.into(),
        }
    }

    /// Checks that the event can be replayed exactly as given.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] when the name is empty or holds CR or LF, or the data holds CR.
    pub fn check(&self) -> Result<()> {
        if let Some(name) = &self.event {
            if name.is_empty() {
                return Err(Error::InvalidEvent("an event name is empty"));
            }
            if name.contains(['\r', '\n']) {
                return Err(Error::InvalidEvent("an event name holds CR or LF"));
            }
        }
        if self.data.contains('\r') {
            return Err(Error::InvalidEvent("event data holds CR"));
        }
        Ok(())
    }

    /// Appends the event in the SSE wire format: `event: NAME\n` (when named), `data: LINE\n` per
    /// line, `\n`.
    pub fn write_sse(&self, out: &mut Vec<u8>) {
        if let Some(name) = &self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
        }
        for line in self.data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }

    /// The bytes [`SseEvent::write_sse`] appends.
    fn sse_len(&self) -> usize {
        let name = self.event.as_ref().map_or(0, |n| n.len() + 8);
        let lines = self.data.bytes().filter(|&b| b == b'\n').count() + 1;
        name + self.data.len() - (lines - 1) + lines * 7 + 1
    }
}

/// The SSE wire format of `events`, in order.
#[must_use]
pub fn render_sse(events: &[SseEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(SseEvent::sse_len).sum());
    for e in events {
        e.write_sse(&mut out);
    }
    out
}

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
            Err(Error::InvalidEvent(why)) => Some(Spoilt::Invalid(why)),
            Err(_) => Some(Spoilt::Invalid("an event cannot be recorded")),
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
    fn the_wire_format_is_exact() {
        let events = [
            SseEvent::named("message_start", r#"{"type":"message_start"}"#),
            SseEvent::new("line one\nline two\n"),
            SseEvent::new(""),
            SseEvent::named(" spaced", " lead"),
            SseEvent::new("[DONE]"),
        ];
        let out = render_sse(&events);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
             data: line one\ndata: line two\ndata: \n\n\
             data: \n\n\
             event:  spaced\ndata:  lead\n\n\
             data: [DONE]\n\n"
        );
        assert_eq!(
            out.len(),
            events.iter().map(SseEvent::sse_len).sum::<usize>()
        );
    }

    #[test]
    fn events_that_cannot_be_replayed_exactly_are_refused() {
        assert!(SseEvent::named("a\nb", "x").check().is_err());
        assert!(SseEvent::named("a\rb", "x").check().is_err());
        assert!(SseEvent::named("", "x").check().is_err());
        assert!(SseEvent::new("x\r\ny").check().is_err());
        assert!(SseEvent::new("x\ny").check().is_ok());
    }

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
