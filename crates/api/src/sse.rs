//! One server-sent event of a cached stream ([`SseEvent`]), its rules and its wire format.
//!
//! Replay renders each event as the SSE wire format (WHATWG HTML, "Server-sent events"): `event:
//! NAME\n` when named, one `data: LINE\n` per line of the data, then an empty line. An event name
//! may be neither empty nor hold CR or LF, and data may not hold CR (an SSE parser ends a line at a
//! CR, so data holding one could not be replayed as it was given); LF in data separates its lines.
//! The same rules are in the JSON Schema of the OpenAPI document (feature `openapi`).

use serde::{Deserialize, Serialize};

/// One server-sent event: an optional event type (`event:` field) and its data.
///
/// A JSON object `{"event": NAME, "data": TEXT}` (`event` optional, no other member). Its
/// fields are those of the SSE format this cache replays; the struct is not `non_exhaustive`, so
/// it can be written as a literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SseEvent {
    /// The event type (`event:` on the wire), when named: not empty, no CR or LF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = "^[^\\r\\n]+$"))]
    pub event: Option<String>,
    /// The data: lines separated by LF (`\n`), one `data:` line each on the wire; no CR.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[^\\r]*$"))]
    pub data: String,
}

/// An event that cannot be replayed as given; the text says why (never the event's content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidEvent(pub &'static str);

impl std::fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidEvent {}

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
    /// [`InvalidEvent`] when the name is empty or holds CR or LF, or the data holds CR.
    pub fn check(&self) -> Result<(), InvalidEvent> {
        if let Some(name) = &self.event {
            if name.is_empty() {
                return Err(InvalidEvent("an event name is empty"));
            }
            if name.contains(['\r', '\n']) {
                return Err(InvalidEvent("an event name holds CR or LF"));
            }
        }
        if self.data.contains('\r') {
            return Err(InvalidEvent("event data holds CR"));
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

    /// How many bytes [`SseEvent::write_sse`] appends.
    #[must_use]
    pub fn sse_len(&self) -> usize {
        let name = self.event.as_ref().map_or(0, |n| n.len() + 8);
        let lines = self.data.bytes().filter(|&b| b == b'\n').count() + 1;
        name + self.data.len() - (lines - 1) + lines * 7 + 1
    }
}

/// The SSE wire format of `events`, in order.
///
/// ```
/// use sealcache_api::{SseEvent, render_sse};
///
/// let wire = render_sse(&[SseEvent::named("delta", "a\nb"), SseEvent::new("[DONE]")]);
/// assert_eq!(wire, b"event: delta\ndata: a\ndata: b\n\ndata: [DONE]\n\n");
/// ```
#[must_use]
pub fn render_sse(events: &[SseEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(SseEvent::sse_len).sum());
    for e in events {
        e.write_sse(&mut out);
    }
    out
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
            String::from_utf8(out.clone()).ok(),
            Some(
                "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
                 data: line one\ndata: line two\ndata: \n\n\
                 data: \n\n\
                 event:  spaced\ndata:  lead\n\n\
                 data: [DONE]\n\n"
                    .to_owned()
            )
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
        // A member the format does not have is refused, not dropped.
        let extra = serde_json::from_str::<SseEvent>(r#"{"data":"x","id":"1"}"#);
        assert!(extra.is_err());
    }
}
