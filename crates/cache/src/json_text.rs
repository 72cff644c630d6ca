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

use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Checks that `bytes` is JSON the cache can store and return exactly as given.
///
/// # Errors
/// [`Error::InvalidJson`] naming what is wrong (never the content).
pub fn check_json_text(bytes: &[u8]) -> Result<()> {
    serde_json::from_slice::<&RawValue>(bytes)
        .map_err(|_| Error::InvalidJson("not one UTF-8 JSON value"))?;
    check_escapes(bytes)
}

/// Every `\u` escape inside a string is a BMP scalar or a high surrogate followed by a low one.
/// The syntax is already known to be valid, so only string contents and escapes are tracked.
fn check_escapes(bytes: &[u8]) -> Result<()> {
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
                        && hex4(bytes, i + 2).is_some_and(|low| (0xDC00..0xE000).contains(&low));
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
