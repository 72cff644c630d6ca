//! [`Cached`]: a value as read, and what one read of a key found.

use std::time::Duration;

use bytes::Bytes;

use sealcache_monitor::Tier;

use crate::error::{Error, Result};
use crate::stored_value::{self, EntryKind, Meta};
use crate::stream::{EventStream, SseEvent, render_sse};

/// A cached value: its JSON bytes (shared, never copied or re-parsed by the cache: the opened
/// buffer itself), remaining lifetime, kind and store time.
///
/// A value is either one JSON value ([`EntryKind::Json`]) or a stream of server-sent events
/// ([`EntryKind::EventStream`]), whose JSON text is the array of its events
/// (`[{"event": NAME, "data": TEXT}, ...]`, `event` left out when unnamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub(super) json: Bytes,
    pub(super) ttl_remaining: Option<Duration>,
    pub(super) tier: Tier,
    pub(super) meta: Meta,
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
