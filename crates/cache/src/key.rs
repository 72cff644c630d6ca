//! Cache keys: `{namespace}:v1:{operation}:{hex HMAC-SHA256(key_name_secret, canonical request)}`.
//!
//! The canonical request is length-prefixed: each field is a tag byte, a u64 big-endian length and
//! the bytes, in a fixed order (text, operation, options as canonical JSON with sorted keys,
//! question, model; absent optional fields have their own tag). No two different requests share an
//! encoding, and no request text ever appears in a key name.

use hmac::{KeyInit as _, Mac as _};
use sealcache_codec::KeyNameSecret;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// An AI request: what the cached answer depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiRequest {
    /// The input text.
    pub text: String,
    /// The operation (`summarize`, `qa`, ...).
    pub operation: String,
    /// Options (a JSON object; key order does not matter).
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// The question, for question-answering operations.
    #[serde(default)]
    pub question: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
}

impl AiRequest {
    /// A request for `operation` on `text` without options, question or model.
    #[must_use]
    pub fn new(operation: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            operation: operation.into(),
            options: serde_json::Map::new(),
            question: None,
            model: None,
        }
    }

    /// Sets the question.
    #[must_use]
    pub fn question(mut self, question: impl Into<String>) -> Self {
        self.question = Some(question.into());
        self
    }

    /// Sets the model.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Adds an option.
    #[must_use]
    pub fn option(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.options.insert(key.into(), value);
        self
    }
}

/// Checks an operation name: 1 to 64 characters of `a-z 0-9 _ -` (no glob or separator
/// characters, so `SCAN MATCH ns:v1:{op}:*` matches exactly one operation).
///
/// # Errors
/// [`Error::InvalidOperation`].
pub fn validate_operation(operation: &str) -> Result<()> {
    let ok = (1..=64).contains(&operation.len())
        && operation
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOperation)
    }
}

/// Checks an explicit key for the generic cache.
///
/// # Errors
/// [`Error::InvalidKey`].
pub fn validate_key(key: &str) -> Result<()> {
    let ok = (1..=512).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'*' | b'?' | b'[' | b']' | b'\\'));
    if ok { Ok(()) } else { Err(Error::InvalidKey) }
}

/// Builds key names for one namespace with one key-name secret.
#[derive(Clone)]
pub struct KeyScheme {
    namespace: String,
    mac: HmacSha256,
}

impl std::fmt::Debug for KeyScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyScheme")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn field(mac: &mut HmacSha256, tag: u8, bytes: &[u8]) {
    mac.update(&[tag]);
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

impl KeyScheme {
    /// A scheme for `namespace` keyed with `secret`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the namespace has characters outside `a-z A-Z 0-9 _ - .`.
    pub fn new(namespace: &str, secret: &KeyNameSecret) -> Result<Self> {
        let ok = (1..=64).contains(&namespace.len())
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(Error::InvalidKey);
        }
        let mac =
            HmacSha256::new_from_slice(secret.expose_secret()).map_err(|_| Error::InvalidKey)?;
        Ok(Self {
            namespace: namespace.to_owned(),
            mac,
        })
    }

    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Redis key for `request`.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub fn ai_key(&self, request: &AiRequest) -> Result<String> {
        validate_operation(&request.operation)?;
        let mut mac = self.mac.clone();
        field(&mut mac, b't', request.text.as_bytes());
        field(&mut mac, b'o', request.operation.as_bytes());
        // serde_json's Map is a BTreeMap here (no `preserve_order`), so the rendering is canonical:
        // keys sorted at every level, compact.
        let options = serde_json::to_vec(&request.options).map_err(|_| Error::Serialize)?;
        field(&mut mac, b'p', &options);
        match &request.question {
            Some(q) => field(&mut mac, b'q', q.as_bytes()),
            None => mac.update(b"Q"),
        }
        match &request.model {
            Some(m) => field(&mut mac, b'm', m.as_bytes()),
            None => mac.update(b"M"),
        }
        let digest = mac.finalize().into_bytes();
        let mut key = String::with_capacity(self.namespace.len() + request.operation.len() + 70);
        key.push_str(&self.namespace);
        key.push_str(":v1:");
        key.push_str(&request.operation);
        key.push(':');
        for b in digest {
            key.push(char::from(HEX[usize::from(b >> 4)]));
            key.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Ok(key)
    }

    /// The Redis key for an explicit key of the generic cache: `{namespace}:kv:{key}`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`].
    pub fn explicit_key(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(format!("{}:kv:{key}", self.namespace))
    }

    /// The `SCAN MATCH` pattern of one operation's entries.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub fn operation_pattern(&self, operation: &str) -> Result<String> {
        validate_operation(operation)?;
        Ok(format!("{}:v1:{operation}:*", self.namespace))
    }

    /// The `SCAN MATCH` pattern of the whole namespace.
    #[must_use]
    pub fn namespace_pattern(&self) -> String {
        format!("{}:*", self.namespace)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use sealcache_codec::SecretKey;

    fn scheme() -> KeyScheme {
        KeyScheme::new(
            "ai_cache",
            &KeyNameSecret::new(SecretKey::from_bytes([9; 32])),
        )
        .unwrap()
    }

    #[test]
    fn keys_have_the_designed_shape_and_no_text() {
        let key = scheme()
            .ai_key(&AiRequest::new("summarize", "the secret user text"))
            .unwrap();
        assert!(key.starts_with("ai_cache:v1:summarize:"));
        assert_eq!(key.len(), "ai_cache:v1:summarize:".len() + 64);
        assert!(!key.contains("secret"));
    }

    #[test]
    fn different_requests_never_share_a_key() {
        let s = scheme();
        let k = |r: AiRequest| s.ai_key(&r).unwrap();
        // The template's collision: `a|b:c` and `a_b_c`.
        assert_ne!(
            k(AiRequest::new("qa", "a|b:c")),
            k(AiRequest::new("qa", "a_b_c"))
        );
        // Field boundaries are unambiguous.
        assert_ne!(
            k(AiRequest::new("qa", "ab").question("c")),
            k(AiRequest::new("qa", "a").question("bc"))
        );
        assert_ne!(
            k(AiRequest::new("qa", "x")),
            k(AiRequest::new("qa", "x").question(""))
        );
        assert_ne!(
            k(AiRequest::new("qa", "x").model("m")),
            k(AiRequest::new("qa", "x").question("m"))
        );
        // Option order does not matter; option values do.
        let a = AiRequest::new("qa", "x")
            .option("a", 1.into())
            .option("b", 2.into());
        let b = AiRequest::new("qa", "x")
            .option("b", 2.into())
            .option("a", 1.into());
        assert_eq!(k(a.clone()), k(b));
        assert_ne!(
            k(a),
            k(AiRequest::new("qa", "x")
                .option("a", 2.into())
                .option("b", 1.into()))
        );
        // Another secret gives other keys.
        let other = KeyScheme::new(
            "ai_cache",
            &KeyNameSecret::new(SecretKey::from_bytes([8; 32])),
        )
        .unwrap();
        assert_ne!(
            k(AiRequest::new("qa", "x")),
            other.ai_key(&AiRequest::new("qa", "x")).unwrap()
        );
    }

    #[test]
    fn operation_and_key_validation() {
        for bad in ["", "sum*", "a:b", "Qa", "a b", "x?", &"a".repeat(65)] {
            assert!(validate_operation(bad).is_err(), "{bad}");
        }
        for good in ["summarize", "key_points", "v2-qa"] {
            assert!(validate_operation(good).is_ok());
        }
        assert!(validate_key("user:42:profile").is_ok());
        assert!(
            validate_key("a*").is_err()
                && validate_key("a b").is_err()
                && validate_key("").is_err()
        );
        assert_eq!(
            scheme().operation_pattern("qa").unwrap(),
            "ai_cache:v1:qa:*"
        );
        assert!(
            KeyScheme::new(
                "bad:ns",
                &KeyNameSecret::new(SecretKey::from_bytes([1; 32]))
            )
            .is_err()
        );
    }
}
