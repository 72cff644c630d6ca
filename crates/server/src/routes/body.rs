//! Request bodies: one JSON object, read strictly.
//!
//! A body is read in two passes over its bytes:
//! 1. [`scan`] walks the members of the top-level object: a member the endpoint does not take
//!    ([`Fields::FIELDS`]) or one that appears twice is refused at once, and inside `options` every
//!    object, at every depth, is checked for a member that appears twice. Names are compared as
//!    decoded (`"a"` and `"\u0061"` are one name). Every other value is skipped without being built
//!    (serde_json skips without recursion, so a `response` of any depth passes).
//! 2. The endpoint's type is deserialized as usual (`#[serde(deny_unknown_fields)]` there too).
//!
//! Why duplicates are refused: JSON leaves their meaning open (RFC 8259 §4: names "SHOULD be
//! unique", and parsers differ on which one wins), so a proxy, filter or log that reads the first
//! `"text"` would see a different request than this server, which would read the last; and a
//! duplicate inside `options` would key the cache by whichever member happened to be kept.
//! Unknown fields are refused so that a misspelt one (`"optoins"`) is an error, not an option
//! silently dropped from the cache key.
//!
//! `response` (the value a client stores) is not checked: it is the client's data, stored and
//! returned byte for byte, never interpreted by the server.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Error as _, IgnoredAny, Visitor};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A request body type: its top-level members.
pub(crate) trait Fields: DeserializeOwned {
    /// Every top-level member the endpoint takes; any other is refused as unknown.
    const FIELDS: &'static [&'static str];
    /// The members whose objects are checked for duplicates at every depth.
    const NESTED: &'static [&'static str] = &["options"];
}

/// A JSON body: 415 unless `application/json`, 400 when malformed or not strictly what the
/// endpoint takes (see the module docs).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: Fields> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else if caused_by_timeout(&e) {
                ApiError::RequestTimeout
            } else {
                // The body could not be read as HTTP framed it (a bad chunk size, a body shorter
                // than its `Content-Length`): a framing error, not bad JSON.
                ApiError::MalformedRequest
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// The body `bytes` as `T`, strictly (see the module docs).
pub(crate) fn parse<T: Fields>(bytes: &[u8]) -> Result<T, ApiError> {
    scan(bytes, T::FIELDS, T::NESTED)?;
    serde_json::from_slice(bytes).map_err(|e| unreadable(&e, bytes))
}

/// The first pass: unknown and duplicated members.
fn scan(
    bytes: &[u8],
    fields: &'static [&'static str],
    nested: &'static [&'static str],
) -> Result<(), ApiError> {
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let scanned = Members {
        fields,
        nested,
        problem: &mut problem,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (problem, scanned) {
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(unreadable(&e, bytes)),
        // Found before the end of the body: the rest must still be JSON for the problem to be the
        // answer.
        (Some(_), _) if serde_json::from_slice::<&RawValue>(bytes).is_err() => {
            Err(ApiError::MalformedJson)
        }
        (Some(problem), _) => Err(problem),
    }
}

/// The error for a body serde_json could not read (the same for both passes).
fn unreadable(error: &serde_json::Error, bytes: &[u8]) -> ApiError {
    if error.is_data() {
        ApiError::InvalidRequest("a required field is missing or has the wrong type")
    } else if serde_json::from_slice::<&RawValue>(bytes).is_ok() {
        // Valid JSON whose fields cannot be read: options nested deeper than 127 levels, a number
        // a double cannot hold, an unpaired UTF-16 surrogate in a text field.
        ApiError::InvalidRequest(
            "a field has a value the server cannot read (options nested over 127 levels, a number out of range, or an unpaired UTF-16 surrogate)",
        )
    } else {
        ApiError::MalformedJson
    }
}

/// Whether a body error comes from the body-read deadline (a stalled body is 408, not bad JSON).
fn caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A member name as decoded: borrowed from the body when it has no escape.
#[derive(PartialEq, Eq, Hash)]
struct Name<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The top-level object's members. A problem is written to `problem` and parsing stops there
/// (with an error serde_json reports, which [`scan`] then ignores).
struct Members<'p> {
    fields: &'static [&'static str],
    nested: &'static [&'static str],
    problem: &'p mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = vec![false; self.fields.len()];
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            let known = self
                .fields
                .iter()
                .zip(seen.iter_mut())
                .find(|(f, _)| **f == name);
            let Some((&field, seen)) = known else {
                *self.problem = Some(ApiError::unknown_field(&name));
                return Err(A::Error::custom("unknown field"));
            };
            if std::mem::replace(seen, true) {
                *self.problem = Some(ApiError::DuplicateMember {
                    field,
                    nested: false,
                });
                return Err(A::Error::custom("duplicate field"));
            }
            if self.nested.contains(&field) {
                map.next_value_seed(Unique {
                    field,
                    problem: &mut *self.problem,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A value inside one of our fields (`field`): every object in it, at any depth, has unique
/// member names.
struct Unique<'p> {
    field: &'static str,
    problem: &'p mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Unique {
                field: self.field,
                problem: &mut *self.problem,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = HashSet::new();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            if !names.insert(name) {
                *self.problem = Some(ApiError::DuplicateMember {
                    field: self.field,
                    nested: true,
                });
                return Err(A::Error::custom("duplicate member"));
            }
            map.next_value_seed(Unique {
                field: self.field,
                problem: &mut *self.problem,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::routes::{InvalidateFields, RequestFields, StoreFields};

    fn duplicate(field: &'static str, nested: bool) -> ApiError {
        ApiError::DuplicateMember { field, nested }
    }

    #[test]
    fn duplicates_at_the_top_and_at_any_depth_of_options_are_refused() {
        for (body, expected) in [
            (
                r#"{"text": "a", "text": "b", "operation": "qa"}"#,
                duplicate("text", false),
            ),
            (
                r#"{"text": "a", "operation": "qa", "operation": "qa"}"#,
                duplicate("operation", false),
            ),
            (
                r#"{"text": "a", "operation": "qa", "options": {}, "options": {}}"#,
                duplicate("options", false),
            ),
            (
                r#"{"text": "a", "operation": "qa", "options": {"a": 1, "a": 2}}"#,
                duplicate("options", true),
            ),
            (
                r#"{"text": "a", "operation": "qa", "options": {"a": 1, "\u0061": 1}}"#,
                duplicate("options", true),
            ),
            (
                r#"{"text": "a", "operation": "qa", "options": {"x": [1, {"y": {"z": 1, "z": 1}}]}}"#,
                duplicate("options", true),
            ),
        ] {
            assert_eq!(
                parse::<RequestFields>(body.as_bytes()).unwrap_err(),
                expected,
                "{body}"
            );
        }
        // Equal names in different objects, and equal values, are fine.
        let body = r#"{"text": "a", "operation": "qa", "options": {"a": {"a": 1}, "b": [{"a": 1}, {"a": 1}]}}"#;
        let fields = parse::<RequestFields>(body.as_bytes()).unwrap();
        assert_eq!(fields.options.unwrap().len(), 2);
        assert_eq!(
            parse::<StoreFields>(
                br#"{"text": "a", "operation": "qa", "response": 1, "response": 2}"#
            )
            .unwrap_err(),
            duplicate("response", false)
        );
        assert_eq!(
            parse::<InvalidateFields>(br#"{"all": true, "all": false}"#).unwrap_err(),
            duplicate("all", false)
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        assert_eq!(
            parse::<RequestFields>(br#"{"text": "a", "operation": "qa", "optoins": {}}"#)
                .unwrap_err(),
            ApiError::UnknownField(Some("optoins".into()))
        );
        // Where `flatten` used to accept anything.
        assert_eq!(
            parse::<StoreFields>(br#"{"text": "a", "operation": "qa", "response": 1, "ttl": 5}"#)
                .unwrap_err(),
            ApiError::UnknownField(Some("ttl".into()))
        );
        assert_eq!(
            parse::<InvalidateFields>(br#"{"operation": "qa", "text": "a"}"#).unwrap_err(),
            ApiError::UnknownField(Some("text".into()))
        );
        assert_eq!(
            parse::<RequestFields>("{\"t\u{e9}xt\": 1}".as_bytes()).unwrap_err(),
            ApiError::UnknownField(None)
        );
        // A problem found early still needs the rest of the body to be JSON.
        assert_eq!(
            parse::<RequestFields>(br#"{"optoins": 1, "#).unwrap_err(),
            ApiError::MalformedJson
        );
    }

    #[test]
    fn the_field_lists_are_the_types_fields() {
        // serde's own list, from its unknown-field error.
        fn derived<T: DeserializeOwned>() -> Vec<String> {
            let error = serde_json::from_str::<T>(r#"{"-": 0}"#)
                .err()
                .unwrap()
                .to_string();
            let list = error.split("expected one of ").nth(1).unwrap();
            let list = list.split(" at line").next().unwrap();
            list.split(", ")
                .map(|f| f.trim_matches('`').to_owned())
                .collect()
        }
        assert_eq!(derived::<RequestFields>(), RequestFields::FIELDS);
        assert_eq!(derived::<StoreFields>(), StoreFields::FIELDS);
        assert_eq!(derived::<InvalidateFields>(), InvalidateFields::FIELDS);
    }

    #[test]
    fn everything_else_reads_as_before() {
        let ok = br#"{"text": "a", "operation": "qa", "options": {"n": 12345678901234567890, "f": 1.5e300, "s": "\ud83d\ude00", "l": [null, true]}, "question": "q", "model": "m"}"#;
        let fields = parse::<RequestFields>(ok).unwrap();
        assert_eq!(
            serde_json::Value::Object(fields.options.unwrap()),
            serde_json::from_slice::<serde_json::Value>(ok).unwrap()["options"]
        );
        for (body, expected) in [
            (&b"{\"text\": "[..], ApiError::MalformedJson),
            (
                b"[1]",
                ApiError::InvalidRequest("a required field is missing or has the wrong type"),
            ),
            (
                br#"{"text": 1, "operation": "qa"}"#,
                ApiError::InvalidRequest("a required field is missing or has the wrong type"),
            ),
            (
                br#"{"operation": "qa"}"#,
                ApiError::InvalidRequest("a required field is missing or has the wrong type"),
            ),
            (
                br#"{"text": "a", "operation": "qa"} x"#,
                ApiError::MalformedJson,
            ),
        ] {
            assert_eq!(parse::<RequestFields>(body).unwrap_err(), expected);
        }
        // Options nested too deep, a number out of range, an unpaired surrogate: one answer, as
        // from the typed pass alone.
        let deep = format!(
            r#"{{"text": "a", "operation": "qa", "options": {{"d": {}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        for body in [
            deep.as_str(),
            r#"{"text": "a", "operation": "qa", "options": {"n": 1e400}}"#,
            r#"{"text": "a", "operation": "qa", "options": {"\ud800": 1}}"#,
            r#"{"text": "\ud800", "operation": "qa"}"#,
        ] {
            let error = parse::<RequestFields>(body.as_bytes()).unwrap_err();
            assert!(
                matches!(error, ApiError::InvalidRequest(m) if m.starts_with("a field has a value")),
                "{body}: {error:?}"
            );
        }
        // The depth limit is the typed pass's: the scan accepts whatever it accepts.
        for depth in 120..130 {
            let body = format!(
                r#"{{"text": "a", "operation": "qa", "options": {{"d": {}1{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert_eq!(
                parse::<RequestFields>(body.as_bytes()).is_ok(),
                serde_json::from_str::<RequestFields>(&body).is_ok(),
                "depth {depth}"
            );
        }
        // `response` is the client's: any depth, duplicates and all.
        let response = format!(
            "{}{{\"a\": 1, \"a\": 2}}{}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let body = format!(r#"{{"text": "a", "operation": "qa", "response": {response}}}"#);
        let (_, stored, _, _) = parse::<StoreFields>(body.as_bytes())
            .unwrap()
            .split()
            .unwrap();
        assert!(matches!(stored, crate::routes::Stored::Response(r) if r.get() == response));
    }
}
