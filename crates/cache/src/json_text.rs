//! JSON text that the cache can hand back byte for byte.
//!
//! The cache stores the JSON text it is given and returns those bytes unchanged (never a
//! `serde_json::Value` round trip, which rounds numbers beyond double precision and reorders
//! nothing but can fail on input the parser accepted). A value is accepted only if every reader can
//! take it as it is: UTF-8, exactly one JSON value (surrounding white space allowed), and every
//! `\uXXXX` escape a valid UTF-16 sequence, since an unpaired surrogate is valid JSON syntax that no
//! conforming reader can decode into a string (RFC 8259 §8.2, RFC 7493 §2.1).
//!
//! The check never recurses: serde_json's `RawValue` skips nested values with an explicit stack,
//! so depth is bounded only by the value's size.

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// JSON text the cache has checked: exactly one UTF-8 JSON value whose `\u` escapes every reader
/// can decode ([`check_json_text`]). Holding one is the proof that lets a store check the text
/// once: [`crate::SealedCache::set_text`] and [`crate::AiResponseCache::set_json_text`] take it
/// and check nothing again.
///
/// Made only by [`JsonText::check`] (every check) or [`JsonText::from_raw_value`] (the escapes:
/// `serde_json` has already checked the syntax of a `RawValue`, which is what the server's
/// request parser produces).
///
/// ```
/// use sealcache::{Bytes, JsonText};
///
/// let text = JsonText::check(Bytes::from_static(br#"{"answer": 42}"#))?;
/// assert_eq!(text.as_bytes(), br#"{"answer": 42}"#);
/// assert!(JsonText::check(Bytes::from_static(br#""\ud800""#)).is_err());
/// let raw: Box<serde_json::value::RawValue> = serde_json::from_str(r#"[1, 2.50]"#)?;
/// assert_eq!(JsonText::from_raw_value(&raw)?.as_bytes(), b"[1, 2.50]");
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(Bytes);

impl JsonText {
    /// Checks `bytes` ([`check_json_text`]).
    ///
    /// # Errors
    /// [`Error::InvalidJson`] naming what is wrong (never the content).
    pub fn check(bytes: Bytes) -> Result<Self> {
        check_json_text(&bytes)?;
        Ok(Self(bytes))
    }

    /// The text of a parsed `RawValue` (one UTF-8 JSON value by construction), after checking
    /// only what its parser does not: its `\u` escapes.
    ///
    /// # Errors
    /// [`Error::InvalidJson`] for an unpaired UTF-16 surrogate escape.
    pub fn from_raw_value(raw: &RawValue) -> Result<Self> {
        let text = raw.get().as_bytes();
        check_escapes(text)?;
        Ok(Self(Bytes::copy_from_slice(text)))
    }

    /// The text.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, by value (a reference count, no copy).
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// Checks that `bytes` is JSON the cache can store and return exactly as given.
///
/// # Errors
/// [`Error::InvalidJson`] naming what is wrong (never the content).
pub fn check_json_text(bytes: &[u8]) -> Result<()> {
    serde_json::from_slice::<&RawValue>(bytes)
        .map_err(|_| Error::InvalidJson("not one UTF-8 JSON value"))?;
    check_escapes(bytes)
}

/// Every `\u` escape is a BMP scalar or a high surrogate followed by a low one.
///
/// The syntax is already known to be valid, so every backslash is inside a string and escapes
/// pair up from the start of each run of backslashes: a `\u` is an escape exactly when an even
/// number of backslashes comes before it. Only the `\u` occurrences are visited (found with
/// `memchr`'s vectorised search), so a text without any costs one fast scan, not a byte-by-byte
/// walk (that walk cost twice a full `RawValue` parse on the corpus).
fn check_escapes(bytes: &[u8]) -> Result<()> {
    const BAD: Error = Error::InvalidJson("an unpaired UTF-16 surrogate escape");
    // Escapes before this offset are consumed (the low half of a pair).
    let mut from = 0;
    for at in memchr::memmem::find_iter(bytes, b"\\u") {
        if at < from {
            continue;
        }
        let before = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if before % 2 == 1 {
            // An escaped backslash followed by a plain `u`.
            continue;
        }
        let unit = hex4(bytes, at + 2).ok_or(BAD)?;
        from = at + 6;
        if (0xD800..0xDC00).contains(&unit) {
            let paired = bytes.get(from) == Some(&b'\\')
                && bytes.get(from + 1) == Some(&b'u')
                && hex4(bytes, from + 2).is_some_and(|low| (0xDC00..0xE000).contains(&low));
            if !paired {
                return Err(BAD);
            }
            from += 6;
        } else if (0xDC00..0xE000).contains(&unit) {
            return Err(BAD);
        }
    }
    Ok(())
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_texts_pass() {
        for ok in [
            &br#"{"a":1}"#[..],
            br#"  [1, 2.50, 1e400000, -0, 123456789012345678901234567890]  "#,
            br#""\ud83d\ude00 \u00e9 \n \" \\ \/ \b \f \r \t""#,
            br#"{"k\ud800\udc00":"\u0000"}"#,
            "\"é 😀\"".as_bytes(),
            b"null",
        ] {
            assert!(
                check_json_text(ok).is_ok(),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(check_json_text(deep.as_bytes()).is_ok());
    }

    /// The byte-by-byte check this module used before `check_escapes` (the reference).
    fn walk_escapes(bytes: &[u8]) -> Result<()> {
        const BAD: Error = Error::InvalidJson("an unpaired UTF-16 surrogate escape");
        let mut i = 0;
        let mut in_string = false;
        while let Some(&b) = bytes.get(i) {
            if !in_string {
                in_string = b == b'"';
                i += 1;
                continue;
            }
            match b {
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                    let unit = hex4(bytes, i + 2).ok_or(BAD)?;
                    i += 6;
                    if (0xD800..0xDC00).contains(&unit) {
                        let paired = bytes.get(i) == Some(&b'\\')
                            && bytes.get(i + 1) == Some(&b'u')
                            && hex4(bytes, i + 2)
                                .is_some_and(|low| (0xDC00..0xE000).contains(&low));
                        if !paired {
                            return Err(BAD);
                        }
                        i += 6;
                    } else if (0xDC00..0xE000).contains(&unit) {
                        return Err(BAD);
                    }
                }
                // Any other escape is two bytes (`\"`, `\\`, `\n`, ...).
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        Ok(())
    }

    #[test]
    fn the_fast_escape_check_agrees_with_the_byte_walk() {
        // Strings built from pieces that stress backslash runs and surrogates, quoted: valid
        // JSON syntax whenever every piece is a complete escape or plain text.
        let pieces: [&str; 12] = [
            "a",
            "\\\\",
            "\\u0041",
            "\\ud83d",
            "\\ude00",
            "\\ud83d\\ude00",
            "u",
            "\\\\u",
            "\\n",
            "\\\"",
            "\\uDBFF\\uDFFF",
            "\\u00e9",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut bad, mut good) = (0, 0);
        for _ in 0..20_000 {
            let len = (next() % 6) as usize;
            let mut text = String::from("[\"");
            for _ in 0..len {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            text.push_str("\"]");
            assert!(serde_json::from_str::<&RawValue>(&text).is_ok(), "{text}");
            let (fast, walk) = (
                check_escapes(text.as_bytes()),
                walk_escapes(text.as_bytes()),
            );
            assert_eq!(fast.is_ok(), walk.is_ok(), "{text}");
            if fast.is_ok() { good += 1 } else { bad += 1 }
        }
        assert!(bad > 1000 && good > 1000, "{bad} refused, {good} accepted");
    }

    #[test]
    fn the_proof_checks_what_each_source_needs() {
        let parsed = |text: &str| -> Box<RawValue> { serde_json::from_str(text).unwrap() };
        // A RawValue's syntax is already checked; its escapes are not.
        let raw = parsed(r#" {"a": "\ud83d\ude00", "n": 1.50} "#);
        assert_eq!(
            JsonText::from_raw_value(&raw).unwrap().as_bytes(),
            br#"{"a": "\ud83d\ude00", "n": 1.50}"#
        );
        for bad in [r#""\ud800""#, r#"["\udc00"]"#] {
            assert!(matches!(
                JsonText::from_raw_value(&parsed(bad)),
                Err(Error::InvalidJson(_))
            ));
            assert!(JsonText::check(Bytes::from(bad)).is_err());
        }
        assert!(matches!(
            JsonText::check(Bytes::from_static(b"{} {}")),
            Err(Error::InvalidJson(_))
        ));
        let text = JsonText::check(Bytes::from_static(b" [1] ")).unwrap();
        assert_eq!(text.into_bytes(), Bytes::from_static(b" [1] "));
    }

    #[test]
    fn unreadable_texts_fail() {
        for bad in [
            &br#""\ud800""#[..],
            br#""\udc00""#,
            br#""\ud800\u0041""#,
            br#""\ud800x""#,
            br#"{"\udfff":1}"#,
            br#"["ok", "\ud83d"]"#,
            b"{\"a\":1} {}",
            b"",
            b"\xff",
            br#"{"a":"#,
        ] {
            assert!(
                matches!(check_json_text(bad), Err(Error::InvalidJson(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
