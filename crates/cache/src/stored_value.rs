//! What the cache seals: the value with its absolute expiry and its store time in front, so that a
//! read learns the remaining lifetime and the age from the value itself instead of asking Redis.
//!
//! Three plaintext layouts, told apart by their first bytes:
//!
//! ```text
//! JSON value, v2 (written now):
//!   0x00 ‖ u64 BE expiry (Unix ms) ‖ STORED_AT_MARK (4 bytes) ‖ stored_at (32 bytes) ‖ JSON text
//! JSON value, v1 (written before the store time was added; still read, age unknown):
//!   0x00 ‖ u64 BE expiry (Unix ms) ‖ JSON text
//! event stream (written now):
//!   0x01 ‖ u64 BE expiry ‖ u64 BE stored_at (Unix ms) ‖ u32 BE event count ‖ JSON array of events
//! ```
//!
//! All of it is inside the AES-GCM ciphertext, so it is authenticated like the value: nobody without
//! the key can extend, shorten or re-date what a reader is told, and a stream's events, their order
//! and their count cannot be changed (dropping, duplicating, reordering or splicing events changes
//! the ciphertext, which then fails its tag). The count is checked again against the array when a
//! stream is opened, so a writer bug cannot pass off a shorter list either.
//!
//! **Why the store time is written in whitespace.** A v2 JSON value keeps the v1 layout's first nine
//! bytes and puts the store time where v1 has its JSON text, spelt with the four JSON whitespace
//! characters (2 bits each, most significant first): `STORED_AT_MARK` and the 32 digits are JSON
//! whitespace. So a replica that only knows v1 (during a rolling upgrade) reads a v2 value as a v1
//! value whose JSON text starts with 36 whitespace bytes: it still gets the right expiry, and JSON
//! text may start with whitespace, so it parses the same value (the server, which answers the stored
//! text through a raw JSON value, even returns the same bytes). A stream has a first byte that is
//! neither 0x00 nor JSON: an older replica cannot read it (see `docs/security-model.md`, "Rolling
//! upgrades").
//!
//! **Who wrote it.** A writer that names itself (the server: the API key's id, see
//! [`crate::AiResponseCache::written_by`]) puts `WRITER_MARK`, its length and its bytes, all spelt in
//! the same whitespace digits (4 per byte), at the start of the JSON text or of the events' array:
//! sealed like the value, and still whitespace in front of the same JSON to a reader that does not
//! know it (older replicas; the server trims it from its answers).
//!
//! JSON text never starts with 0x00 or 0x01, so a value without any prefix (legacy plaintext under
//! the migration window) is recognised and read as JSON alone; the cache then asks Redis for the TTL
//! when it needs one, and its age is unknown.
//!
//! Clocks: the writer computes the expiry and the store time from its own clock *before* it sends
//! `SET ... PX`, so on one clock the expiry is never later than Redis's own. Across hosts a reader's
//! clock may differ by δ; the remaining TTL and the age it computes are then off by δ. That is why
//! the L1 tier, whose copies must never outlive the Redis entry whatever the clocks, still asks
//! Redis (`PTTL`, pipelined) when it fills: only reads with L1 off rely on the embedded expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The first byte of a JSON value (v1 and v2).
const JSON_MARKER: u8 = 0x00;
/// The first byte of an event stream.
const STREAM_MARKER: u8 = 0x01;
/// Marker and expiry.
const V1_PREFIX_LEN: usize = 9;
/// Announces a v2 store time (JSON whitespace, so a v1 reader skips it as part of the JSON text).
const STORED_AT_MARK: &[u8; 4] = b"\r\n\t ";
/// The store time as 32 whitespace digits of 2 bits.
const STORED_AT_DIGITS: usize = 32;
/// The four JSON whitespace characters, digit values 0 to 3.
const WHITESPACE_DIGITS: [u8; 4] = [b' ', b'\t', b'\n', b'\r'];
/// Announces the writer's id (JSON whitespace; differs from `STORED_AT_MARK`).
const WRITER_MARK: &[u8; 4] = b"\t\r\n ";
/// The longest writer id, in bytes.
pub(crate) const MAX_WRITER_LEN: usize = 64;
/// Marker, expiry, mark, store time.
const V2_PREFIX_LEN: usize = V1_PREFIX_LEN + STORED_AT_MARK.len() + STORED_AT_DIGITS;
/// Marker, expiry, store time, count.
const STREAM_PREFIX_LEN: usize = 1 + 8 + 8 + 4;

/// What a stored value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// One JSON value (a `response`).
    Json,
    /// An ordered list of server-sent events (a streamed answer), held as a JSON array of
    /// `{"event": NAME?, "data": TEXT}` objects.
    EventStream,
}

impl EntryKind {
    /// `json` or `event_stream`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Json => "json",
            EntryKind::EventStream => "event_stream",
        }
    }
}

/// The id of a value's writer (an API key id: 1-64 characters of `a-z`, `0-9`, `_`, `-`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Writer {
    len: u8,
    bytes: [u8; MAX_WRITER_LEN],
}

impl Writer {
    /// The longest writer section: the mark, the length and every byte as four digits.
    const MAX_SECTION: usize = WRITER_MARK.len() + 4 * (1 + MAX_WRITER_LEN);

    /// `id` as a writer (`None` unless 1-64 characters of `a-z`, `0-9`, `_` or `-`).
    pub(crate) fn new(id: &str) -> Option<Self> {
        let valid = (1..=MAX_WRITER_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return None;
        }
        let mut bytes = [0; MAX_WRITER_LEN];
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Some(Self {
            len: u8::try_from(id.len()).ok()?,
            bytes,
        })
    }

    /// The id.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The whitespace section naming it.
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(WRITER_MARK);
        push_whitespace_byte(out, self.len);
        for &b in &self.bytes[..usize::from(self.len)] {
            push_whitespace_byte(out, b);
        }
    }

    /// A writer section at the start of `body` and its length (`None`: there is none); an empty
    /// section (length 0) names no writer.
    fn decode_from(body: &[u8]) -> Option<(Option<Self>, usize)> {
        let rest = body.strip_prefix(WRITER_MARK)?;
        let len = whitespace_byte(rest.get(..4)?)?;
        let end = 4 + 4 * usize::from(len);
        if len == 0 {
            return Some((None, WRITER_MARK.len() + end));
        }
        let digits = rest.get(4..end)?;
        let id: Vec<u8> = digits
            .chunks(4)
            .map(whitespace_byte)
            .collect::<Option<_>>()?;
        let writer = Self::new(std::str::from_utf8(&id).ok()?)?;
        Some((Some(writer), WRITER_MARK.len() + end))
    }
}

/// The writer section of a value: `writer`'s, or an empty one when there is none but the text
/// itself starts with the writer mark (JSON text may start with whitespace: without it, a reader
/// would take that whitespace for a writer and not return the text byte for byte).
fn encode_writer(out: &mut Vec<u8>, writer: Option<&Writer>, text: &[u8]) {
    match writer {
        Some(writer) => writer.encode_into(out),
        None if text.starts_with(WRITER_MARK) => {
            out.extend_from_slice(WRITER_MARK);
            push_whitespace_byte(out, 0);
        }
        None => {}
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Writer").field(&self.as_str()).finish()
    }
}

/// One byte as four whitespace digits, most significant first.
fn push_whitespace_byte(out: &mut Vec<u8>, byte: u8) {
    for i in (0..4).rev() {
        out.push(WHITESPACE_DIGITS[usize::from((byte >> (2 * i)) & 0b11)]);
    }
}

/// Four whitespace digits as one byte.
fn whitespace_byte(digits: &[u8]) -> Option<u8> {
    if digits.len() != 4 {
        return None;
    }
    u8::try_from(whitespace_number(digits)?).ok()
}

/// What the cache knows of a value besides its bytes (kept with L1 copies too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) kind: EntryKind,
    /// When the writer stored it (Unix ms by its clock); `None` for values written before the store
    /// time was recorded.
    pub(crate) stored_at_ms: Option<u64>,
    /// The data key it was sealed under (`None`: sealed under the keyring): L1 copies of an erased
    /// tenant's or subject's entries are dropped by it.
    pub(crate) data_key: Option<crate::scope::DataKeyScope>,
    /// Who wrote it, when the writer named itself.
    pub(crate) writer: Option<Writer>,
}

#[cfg(test)]
impl Meta {
    /// A JSON value stored now.
    pub(crate) fn json_now() -> Self {
        Self {
            kind: EntryKind::Json,
            stored_at_ms: Some(now_ms()),
            data_key: None,
            writer: None,
        }
    }
}

/// Now, in Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix milliseconds as a time.
pub(crate) fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn expiry(stored_at: u64, ttl: Duration) -> u64 {
    stored_at.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// The plaintext to seal for `json` living `ttl` from `stored_at_ms`.
#[cfg(test)]
pub(crate) fn encode(
    json: &[u8],
    ttl: Duration,
    stored_at_ms: u64,
    writer: Option<&Writer>,
) -> Vec<u8> {
    let mut out = encode_prefix(json, ttl, stored_at_ms, writer);
    out.extend_from_slice(json);
    out
}

/// What `encode` (tests) puts in front of `json`: the store path seals it and `json` as two parts,
/// without joining them (the codec's `seal_parts`).
pub(crate) fn encode_prefix(
    json: &[u8],
    ttl: Duration,
    stored_at_ms: u64,
    writer: Option<&Writer>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_PREFIX_LEN + Writer::MAX_SECTION);
    out.push(JSON_MARKER);
    out.extend_from_slice(&expiry(stored_at_ms, ttl).to_be_bytes());
    out.extend_from_slice(STORED_AT_MARK);
    for i in (0..STORED_AT_DIGITS).rev() {
        let digit = (stored_at_ms >> (2 * i)) & 0b11;
        out.push(WHITESPACE_DIGITS[digit as usize]);
    }
    encode_writer(&mut out, writer, json);
    out
}

/// The plaintext to seal for a stream of `count` events, `events_json` being their JSON array.
#[cfg(test)]
pub(crate) fn encode_stream(
    events_json: &[u8],
    count: u32,
    ttl: Duration,
    stored_at_ms: u64,
    writer: Option<&Writer>,
) -> Vec<u8> {
    let mut out = encode_stream_prefix(events_json, count, ttl, stored_at_ms, writer);
    out.extend_from_slice(events_json);
    out
}

/// What `encode_stream` (tests) puts in front of `events_json` (sealed as a separate part).
pub(crate) fn encode_stream_prefix(
    events_json: &[u8],
    count: u32,
    ttl: Duration,
    stored_at_ms: u64,
    writer: Option<&Writer>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(STREAM_PREFIX_LEN + Writer::MAX_SECTION);
    out.push(STREAM_MARKER);
    out.extend_from_slice(&expiry(stored_at_ms, ttl).to_be_bytes());
    out.extend_from_slice(&stored_at_ms.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    encode_writer(&mut out, writer, events_json);
    out
}

/// `body` without a writer section at its start, and the writer it named.
fn split_writer(body: Bytes) -> (Bytes, Option<Writer>) {
    match Writer::decode_from(&body) {
        Some((writer, len)) => (body.slice(len..), writer),
        None => (body, None),
    }
}

/// An opened value: its body (a slice of the opened buffer, no copy), expiry and metadata.
pub(crate) struct Decoded {
    pub(crate) body: Bytes,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) meta: Meta,
}

impl Decoded {
    /// The remaining lifetime by the embedded expiry; `Some(ZERO)` once it has passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.expires_at_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())))
    }
}

/// A stream plaintext whose header or event count does not hold (only a writer holding the key
/// could have produced it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedStream;

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

fn whitespace_number(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = WHITESPACE_DIGITS.iter().position(|&w| w == b)?;
        Some((acc << 2) | d as u64)
    })
}

/// Splits an opened plaintext.
///
/// # Errors
/// [`MalformedStream`] for a stream whose header is cut short or whose count differs from its
/// array's length.
pub(crate) fn decode(plain: Vec<u8>) -> Result<Decoded, MalformedStream> {
    let plain = Bytes::from(plain);
    match plain.first() {
        Some(&JSON_MARKER) if plain.len() >= V1_PREFIX_LEN => {
            let expires_at_ms = u64_at(&plain, 1);
            let stored_at_ms = plain
                .get(V1_PREFIX_LEN..V2_PREFIX_LEN)
                .filter(|p| p.starts_with(STORED_AT_MARK))
                .and_then(|p| whitespace_number(&p[STORED_AT_MARK.len()..]));
            let start = if stored_at_ms.is_some() {
                V2_PREFIX_LEN
            } else {
                V1_PREFIX_LEN
            };
            let (body, writer) = if stored_at_ms.is_some() {
                split_writer(plain.slice(start..))
            } else {
                (plain.slice(start..), None)
            };
            Ok(Decoded {
                body,
                expires_at_ms,
                meta: Meta {
                    kind: EntryKind::Json,
                    stored_at_ms,
                    data_key: None,
                    writer,
                },
            })
        }
        Some(&STREAM_MARKER) => {
            if plain.len() < STREAM_PREFIX_LEN {
                return Err(MalformedStream);
            }
            let expires_at_ms = u64_at(&plain, 1);
            let stored_at_ms = u64_at(&plain, 9);
            let count = plain
                .get(17..21)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or(MalformedStream)?;
            let (body, writer) = split_writer(plain.slice(STREAM_PREFIX_LEN..));
            if crate::stream::count_events(&body) != Some(count as usize) {
                return Err(MalformedStream);
            }
            Ok(Decoded {
                body,
                expires_at_ms,
                meta: Meta {
                    kind: EntryKind::EventStream,
                    stored_at_ms,
                    data_key: None,
                    writer,
                },
            })
        }
        _ => Ok(Decoded {
            body: plain,
            expires_at_ms: None,
            meta: Meta {
                kind: EntryKind::Json,
                stored_at_ms: None,
                data_key: None,
                writer: None,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_plain_json() {
        let at = now_ms();
        let encoded = encode(br#"{"a":1}"#, Duration::from_secs(60), at, None);
        assert_eq!(encoded[0], 0);
        let d = decode(encoded).unwrap();
        assert_eq!(&d.body[..], br#"{"a":1}"#);
        assert_eq!(d.meta.stored_at_ms, Some(at));
        assert_eq!(d.meta.kind, EntryKind::Json);
        let left = d.remaining().unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(58));
        // JSON without the prefix (older writers, legacy plaintext) is read as it is.
        let d = decode(br#"{"a":1}"#.to_vec()).unwrap();
        assert_eq!(&d.body[..], br#"{"a":1}"#);
        assert_eq!(d.expires_at_ms, None);
        assert_eq!(d.meta.stored_at_ms, None);
        // Short or empty plaintexts never panic.
        assert_eq!(decode(vec![0, 1]).unwrap().expires_at_ms, None);
        assert_eq!(decode(Vec::new()).unwrap().body.len(), 0);
        assert!(decode(vec![1, 2, 3]).is_err());
        // An expiry in the past leaves nothing.
        let mut past = encode(b"1", Duration::ZERO, at, None);
        past[1..9].copy_from_slice(&1u64.to_be_bytes());
        assert_eq!(decode(past).unwrap().remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn v1_values_are_still_read_with_an_unknown_age() {
        let mut v1 = vec![0u8];
        v1.extend_from_slice(&(now_ms() + 60_000).to_be_bytes());
        v1.extend_from_slice(b" [1]");
        let d = decode(v1).unwrap();
        assert_eq!(&d.body[..], b" [1]");
        assert_eq!(d.meta.stored_at_ms, None);
        assert!(d.remaining().unwrap() > Duration::from_secs(58));
    }

    /// What a replica that knows only v1 does with a v2 value: the expiry is where it looks for
    /// it, and the rest is the same JSON value behind whitespace.
    #[test]
    fn a_v1_reader_sees_v2_as_the_same_json_behind_whitespace() {
        for at in [0, 1, now_ms(), u64::MAX] {
            let encoded = encode(
                br#"{"answer":[1,2.50,"x"]}"#,
                Duration::from_secs(5),
                at,
                None,
            );
            let v1_expiry = u64::from_be_bytes(encoded[1..9].try_into().unwrap());
            assert_eq!(v1_expiry, at.saturating_add(5000));
            let v1_json = &encoded[V1_PREFIX_LEN..];
            assert!(v1_json[..36].iter().all(|b| WHITESPACE_DIGITS.contains(b)));
            let raw: &serde_json::value::RawValue = serde_json::from_slice(v1_json).unwrap();
            assert_eq!(raw.get(), r#"{"answer":[1,2.50,"x"]}"#);
            assert_eq!(decode(encoded).unwrap().meta.stored_at_ms, Some(at));
        }
    }

    #[test]
    fn streams_carry_their_count() {
        let events = br#"[{"event":"a","data":"1"},{"data":"2"}]"#;
        let at = now_ms();
        let d = decode(encode_stream(events, 2, Duration::from_secs(9), at, None)).unwrap();
        assert_eq!(d.meta.kind, EntryKind::EventStream);
        assert_eq!(d.meta.stored_at_ms, Some(at));
        assert_eq!(&d.body[..], events);
        for wrong in [0, 1, 3] {
            assert!(
                decode(encode_stream(
                    events,
                    wrong,
                    Duration::from_secs(9),
                    at,
                    None
                ))
                .is_err()
            );
        }
        assert!(decode(encode_stream(b"[", 0, Duration::from_secs(9), at, None)).is_err());
    }

    /// The writer's id rides in whitespace: read back by this version, and the same JSON (and,
    /// for a stream, the same count of events) to a reader that does not know it.
    #[test]
    fn the_writer_is_sealed_in_whitespace_older_readers_skip() {
        let writer = Writer::new("web-frontend_2").unwrap();
        let at = now_ms();
        let json = br#"{"answer":[1,2.50,"x"]}"#;
        let encoded = encode(json, Duration::from_secs(5), at, Some(&writer));
        let d = decode(encoded.clone()).unwrap();
        assert_eq!(&d.body[..], json);
        assert_eq!(
            d.meta.writer.map(|w| w.as_str().to_owned()).as_deref(),
            Some("web-frontend_2")
        );
        assert_eq!(d.meta.stored_at_ms, Some(at));
        // A reader that knows only the store time: the same value behind whitespace.
        let older: &serde_json::value::RawValue =
            serde_json::from_slice(&encoded[V2_PREFIX_LEN..]).unwrap();
        assert_eq!(older.get().as_bytes(), json);
        let events = br#"[{"event":"a","data":"1"},{"data":"2"}]"#;
        let encoded = encode_stream(events, 2, Duration::from_secs(9), at, Some(&writer));
        let d = decode(encoded.clone()).unwrap();
        assert_eq!(&d.body[..], events);
        assert_eq!(d.meta.writer, Some(writer));
        assert_eq!(
            crate::stream::count_events(&encoded[STREAM_PREFIX_LEN..]),
            Some(2)
        );
        // Without a writer nothing changes; bad ids are refused.
        assert_eq!(
            decode(encode(json, Duration::from_secs(5), at, None))
                .unwrap()
                .meta
                .writer,
            None
        );
        // JSON text that itself starts with the writer mark comes back byte for byte, with or
        // without a writer.
        let mut tricky = WRITER_MARK.to_vec();
        tricky.extend_from_slice(b"   \t\t\n \t{}");
        for writer in [None, Some(&writer)] {
            let d = decode(encode(&tricky, Duration::from_secs(5), at, writer)).unwrap();
            assert_eq!(&d.body[..], &tricky[..]);
            assert_eq!(d.meta.writer.as_ref(), writer);
        }
        for bad in ["", "Web", "a b", "ключ", &"a".repeat(65)] {
            assert!(Writer::new(bad).is_none(), "{bad:?}");
        }
        assert!(Writer::new(&"a".repeat(64)).is_some());
    }
}
