//! What the cache seals: the JSON text with its absolute expiry in front, so that a read learns the
//! remaining lifetime from the value itself instead of asking Redis (`PTTL`) in the same round trip.
//!
//! ```text
//! 0x00 ‖ u64 big-endian expiry (Unix time, ms) ‖ JSON text
//! ```
//!
//! The expiry is inside the AES-GCM ciphertext, so it is authenticated like the value: nobody
//! without the key can extend (or shorten) what a reader is told. JSON text never starts with a
//! `0x00` byte, so a value without the prefix (written before this format, or legacy plaintext
//! under the migration window) is recognised and read as JSON alone; the cache then asks Redis
//! for the TTL when it needs one.
//!
//! Clocks: the writer computes the expiry from its own clock *before* it sends `SET ... PX`, so on
//! one clock it is never later than Redis's own expiry. Across hosts a reader's clock may differ
//! by δ; the remaining TTL it reports is then off by δ. That is why the L1 tier, whose copies must
//! never outlive the Redis entry whatever the clocks, still asks Redis (`PTTL`, pipelined) when it
//! fills: only reads with L1 off rely on the embedded expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The first byte of a value that carries its expiry.
const EXPIRY_MARKER: u8 = 0x00;
/// Marker and expiry.
const PREFIX_LEN: usize = 9;

/// Now, in Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The plaintext to seal for `json` living `ttl` from now.
pub(crate) fn encode(json: &[u8], ttl: Duration) -> Vec<u8> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let expires = now_ms().saturating_add(ttl_ms);
    let mut out = Vec::with_capacity(PREFIX_LEN + json.len());
    out.push(EXPIRY_MARKER);
    out.extend_from_slice(&expires.to_be_bytes());
    out.extend_from_slice(json);
    out
}

/// An opened value: its JSON (a slice of the opened buffer, no copy) and expiry if it has one.
pub(crate) struct Decoded {
    pub(crate) json: Bytes,
    pub(crate) expires_at_ms: Option<u64>,
}

impl Decoded {
    /// The remaining lifetime by the embedded expiry; `Some(ZERO)` once it has passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.expires_at_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())))
    }
}

/// Splits an opened plaintext.
pub(crate) fn decode(plain: Vec<u8>) -> Decoded {
    let plain = Bytes::from(plain);
    match plain.get(..PREFIX_LEN) {
        Some([EXPIRY_MARKER, rest @ ..]) => {
            let mut at = [0u8; 8];
            at.copy_from_slice(rest);
            Decoded {
                json: plain.slice(PREFIX_LEN..),
                expires_at_ms: Some(u64::from_be_bytes(at)),
            }
        }
        _ => Decoded {
            json: plain,
            expires_at_ms: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_plain_json() {
        let encoded = encode(br#"{"a":1}"#, Duration::from_secs(60));
        assert_eq!(encoded[0], 0);
        let d = decode(encoded);
        assert_eq!(&d.json[..], br#"{"a":1}"#);
        let left = d.remaining().unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(58));
        // JSON without the prefix (older writers, legacy plaintext) is read as it is.
        let d = decode(br#"{"a":1}"#.to_vec());
        assert_eq!(&d.json[..], br#"{"a":1}"#);
        assert_eq!(d.expires_at_ms, None);
        // Short or empty plaintexts never panic.
        assert_eq!(decode(vec![0, 1]).expires_at_ms, None);
        assert_eq!(decode(Vec::new()).json.len(), 0);
        // An expiry in the past leaves nothing.
        let mut past = encode(b"1", Duration::ZERO);
        past[1..9].copy_from_slice(&1u64.to_be_bytes());
        assert_eq!(decode(past).remaining(), Some(Duration::ZERO));
    }
}
