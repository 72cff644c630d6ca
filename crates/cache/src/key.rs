//! Cache keys: `{namespace}:v3:{operation}:{hex HMAC-SHA256(key_name_secret, owner ‖ canonical request)}`.
//!
//! The owner comes first: the tenant and the subject (or a tag saying there is none), or a tag
//! saying the entry is shared across tenants (see `scope`). So the same request under two tenants,
//! or two subjects, never shares a key, and neither id appears in the key name.
//!
//! The canonical request is length-prefixed: each field is a tag byte, a u64 big-endian length and
//! the bytes, in a fixed order (text, operation, options, question, model; absent optional fields
//! have their own tag). No two different requests share an encoding, and no request text ever
//! appears in a key name.
//!
//! Options are canonicalized as RFC 8785 (JSON Canonicalization Scheme) does: properties sorted by
//! their UTF-16 code units at every level, numbers written as ECMAScript writes an IEEE 754 double
//! (`1.0` and `1` are `1`, `-0` is `0`, `1e21` is `1e+21`), one string escaping. So equal option
//! values from clients in different languages share one entry. One addition keeps JCS from merging
//! requests that differ: JCS rounds every number to a double, so integers beyond ±2^53 (a 64-bit
//! `seed`, say) would collapse into their neighbours; their exact decimal digits are hashed as a
//! field of their own. Version `v3` of the key scheme (`v2` had no owner, `v1` rendered options by
//! serde_json): entries of earlier versions are simply never looked up again and expire by their
//! TTL.
//!
//! Keyed tags: the data-key records of a tenant and of a subject are named by a 128-bit HMAC tag
//! of the tenant (and subject) under the same secret, in a domain of its own (see `data_key`).

use hmac::{KeyInit as _, Mac as _};
use sealcache_codec::KeyNameSecret;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scope::{DataKeyScope, Owner};

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
/// characters, so `SCAN MATCH ns:v3:{op}:*` matches exactly one operation).
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

/// The longest namespace.
const MAX_NAMESPACE_LEN: usize = 64;
/// The longest explicit key of the generic cache.
const MAX_EXPLICIT_KEY_LEN: usize = 512;
/// The longest Redis key the cache makes: an explicit key in the longest namespace
/// (`{namespace}:kv:{key}`; an AI entry's key, `{namespace}:...:{operation}:{64 hex}`, is shorter).
pub(crate) const LONGEST_KEY: usize = MAX_NAMESPACE_LEN + ":kv:".len() + MAX_EXPLICIT_KEY_LEN;

/// Checks an explicit key for the generic cache.
///
/// # Errors
/// [`Error::InvalidKey`].
pub fn validate_key(key: &str) -> Result<()> {
    let ok = (1..=MAX_EXPLICIT_KEY_LEN).contains(&key.len())
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
    /// [`Error::InvalidNamespace`] if the namespace is empty, longer than 64 bytes, or has
    /// characters outside `a-z A-Z 0-9 _ - .` (a `:` would let one namespace's keys look like
    /// another's).
    pub fn new(namespace: &str, secret: &KeyNameSecret) -> Result<Self> {
        let ok = (1..=MAX_NAMESPACE_LEN).contains(&namespace.len())
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(Error::InvalidNamespace);
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

    /// The Redis key for `request` of the tenant `default` without a subject (what an
    /// [`crate::AiResponseCache`] not scoped with [`crate::AiResponseCache::tenant`] uses).
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub fn ai_key(&self, request: &AiRequest) -> Result<String> {
        self.owned_ai_key(&Owner::default_tenant(), request)
    }

    /// The Redis key for `request` shared across tenants (what
    /// [`crate::AiResponseCache::shared`] uses).
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub fn shared_ai_key(&self, request: &AiRequest) -> Result<String> {
        self.owned_ai_key(&Owner::Shared, request)
    }

    /// The Redis key for `request` of `owner`.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`].
    pub(crate) fn owned_ai_key(&self, owner: &Owner, request: &AiRequest) -> Result<String> {
        validate_operation(&request.operation)?;
        let mut mac = self.mac.clone();
        match owner {
            Owner::Tenant { tenant, subject } => {
                field(&mut mac, b'T', tenant.as_bytes());
                match subject {
                    Some(s) => field(&mut mac, b'S', s.as_bytes()),
                    None => mac.update(b"N"),
                }
            }
            Owner::Shared => mac.update(b"H"),
        }
        field(&mut mac, b't', request.text.as_bytes());
        field(&mut mac, b'o', request.operation.as_bytes());
        if request.options.is_empty() {
            // The canonical form of `{}` (the common case: no allocation, no serializer).
            field(&mut mac, b'p', b"{}");
        } else {
            field(&mut mac, b'p', &canonical_options(&request.options)?);
        }
        let exact = if request.options.is_empty() {
            String::new()
        } else {
            exact_integers(&request.options)
        };
        if !exact.is_empty() {
            // Present only when some integer is beyond ±2^53 (tag `x` appears in no other field).
            field(&mut mac, b'x', exact.as_bytes());
        }
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
        key.push_str(KEY_VERSION);
        key.push_str(&request.operation);
        key.push(':');
        crate::scope::push_hex(&mut key, &digest);
        Ok(key)
    }

    /// The keyed tags naming `owner`'s data key: the tenant's, and the subject's within it (`None`
    /// for a shared owner, whose entries are sealed under the keyring).
    pub(crate) fn data_key_scope(&self, owner: &Owner) -> Option<DataKeyScope> {
        let Owner::Tenant { tenant, subject } = owner else {
            return None;
        };
        let tag = |mac: HmacSha256| -> [u8; 16] {
            let digest = mac.finalize().into_bytes();
            let mut out = [0_u8; 16];
            out.copy_from_slice(&digest[..16]);
            out
        };
        // A domain of its own: an entry digest starts with `T` or `H`, never with a 0 byte.
        let mut mac = self.mac.clone();
        mac.update(b"\0sealcache data-key tag\0");
        field(&mut mac, b'T', tenant.as_bytes());
        let tenant_tag = tag(mac.clone());
        let subject_tag = subject.as_ref().map(|s| {
            let mut mac = mac;
            field(&mut mac, b'S', s.as_bytes());
            tag(mac)
        });
        Some(DataKeyScope {
            tenant: tenant_tag,
            subject: subject_tag,
        })
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
        Ok(format!("{}{KEY_VERSION}{operation}:*", self.namespace))
    }

    /// The operation and hex digest of an AI entry key of this namespace (`None` for any other
    /// key).
    pub(crate) fn ai_key_parts<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        let rest = key
            .strip_prefix(self.namespace.as_str())?
            .strip_prefix(KEY_VERSION)?;
        let (operation, digest) = rest.split_once(':')?;
        (validate_operation(operation).is_ok() && is_digest(digest)).then_some((operation, digest))
    }

    /// The tag that binds a lease token's `nonce` for `lease_key` to the owner `binding` (a
    /// tenant's tag, or shared): 8 bytes of the keyed MAC, as 16 lowercase hex digits.
    pub(crate) fn lease_tag(&self, binding: &[u8], lease_key: &str, nonce: &str) -> String {
        let mut mac = self.mac.clone();
        field(&mut mac, b'L', binding);
        field(&mut mac, b'K', lease_key.as_bytes());
        field(&mut mac, b'N', nonce.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The AI entry key of an operation and hex digest (both checked by the caller).
    pub(crate) fn ai_key_of(&self, operation: &str, digest: &str) -> String {
        format!("{}{KEY_VERSION}{operation}:{digest}", self.namespace)
    }

    /// The `SCAN MATCH` pattern of the whole namespace.
    #[must_use]
    pub fn namespace_pattern(&self) -> String {
        format!("{}:*", self.namespace)
    }
}

/// Whether `text` is a key digest: 64 lowercase hex digits.
pub(crate) fn is_digest(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key scheme version segment, between the namespace and the operation.
const KEY_VERSION: &str = ":v3:";

/// Largest integer a double holds exactly (2^53).
const EXACT_DOUBLE_LIMIT: u64 = 1 << 53;

/// The options as RFC 8785 canonical JSON.
fn canonical_options(options: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<u8>> {
    serde_json_canonicalizer::to_vec(options).map_err(|_| Error::Serialize)
}

/// One slot per number of `options`, in document order: the exact digits of an integer a double
/// cannot hold, empty for every other number (the map is ordered, so equal options give equal
/// text). Empty text when no such integer occurs, so ordinary options add nothing.
///
/// Slots are positional: `{"a": 2^53+1, "b": 2^53}` and `{"a": 2^53, "b": 2^53+1}` canonicalize to
/// the same JCS text but give `"9007199254740993,,"` and `",9007199254740993,"`.
fn exact_integers(options: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::new();
    let mut any = false;
    // Iterative walk: options from a library caller may be nested arbitrarily deep.
    let mut stack: Vec<&serde_json::Value> = options.values().rev().collect();
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Number(n) => {
                let big = n.as_u64().is_some_and(|u| u > EXACT_DOUBLE_LIMIT)
                    || n.as_i64()
                        .is_some_and(|i| i.unsigned_abs() > EXACT_DOUBLE_LIMIT);
                if big {
                    out.push_str(&n.to_string());
                    any = true;
                }
                out.push(',');
            }
            serde_json::Value::Array(items) => stack.extend(items.iter().rev()),
            serde_json::Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    if any { out } else { String::new() }
}

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
        assert!(key.starts_with("ai_cache:v3:summarize:"));
        assert_eq!(key.len(), "ai_cache:v3:summarize:".len() + 64);
        assert!(!key.contains("secret"));
        // The name is the HMAC in lowercase hex, and only that reads as a digest.
        let digest = &key["ai_cache:v3:summarize:".len()..];
        assert!(is_digest(digest), "{digest}");
        assert!(!is_digest(&digest.to_uppercase()));
        assert!(!is_digest(&digest[1..]));
        assert!(!is_digest(&format!("g{}", &digest[1..])));
        assert!(is_digest(&"0123456789abcdef".repeat(4)));
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

    /// RFC 8785 Appendix B: IEEE 754 doubles and their canonical text.
    #[test]
    fn numbers_follow_rfc8785_appendix_b() {
        let table: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, text) in table {
            let mut options = serde_json::Map::new();
            options.insert("n".into(), serde_json::json!(f64::from_bits(bits)));
            let got = canonical_options(&options).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                format!("{{\"n\":{text}}}"),
                "{bits:#018x}"
            );
        }
    }

    #[test]
    fn the_empty_options_fast_path_is_the_canonical_form() {
        assert_eq!(canonical_options(&serde_json::Map::new()).unwrap(), b"{}");
    }

    #[test]
    fn options_are_canonical_and_big_integers_stay_distinct() {
        let s = scheme();
        let with =
            |v: serde_json::Value| s.ai_key(&AiRequest::new("qa", "x").option("o", v)).unwrap();
        // Integral numbers as integers, -0 as 0, exponent forms as their value.
        assert_eq!(with(serde_json::json!(1)), with(serde_json::json!(1.0)));
        assert_eq!(with(serde_json::json!(0)), with(serde_json::json!(-0.0)));
        let parsed: serde_json::Value = serde_json::from_str("1e2").unwrap();
        assert_eq!(with(serde_json::json!(100)), with(parsed));
        // Property order by UTF-16 code units at every level (U+E000 sorts after U+1F600 there,
        // before it in UTF-8).
        let a: serde_json::Value =
            serde_json::from_str(r#"{"\ue000":1,"\ud83d\ude00":2}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"\ud83d\ude00":2,"\ue000":1}"#).unwrap();
        assert_eq!(with(a.clone()), with(b));
        let mut options = serde_json::Map::new();
        options.insert("o".into(), a);
        assert_eq!(
            String::from_utf8(canonical_options(&options).unwrap()).unwrap(),
            "{\"o\":{\"\u{1f600}\":2,\"\u{e000}\":1}}"
        );
        // One string escaping: `\u0041` and `A` are one string.
        let escaped: serde_json::Value = serde_json::from_str(r#""\u0041\/""#).unwrap();
        assert_eq!(with(escaped), with(serde_json::json!("A/")));
        // JCS rounds to doubles; integers a double cannot hold still give distinct keys.
        assert_ne!(
            with(serde_json::json!(9_007_199_254_740_993_u64)),
            with(serde_json::json!(9_007_199_254_740_992_u64))
        );
        assert_ne!(
            with(serde_json::json!([-9_007_199_254_740_993_i64])),
            with(serde_json::json!([-9_007_199_254_740_992_i64]))
        );
        assert_eq!(
            with(serde_json::json!({"seed": 12_345_678_901_234_567_890_u64})),
            with(serde_json::json!({"seed": 12_345_678_901_234_567_890_u64}))
        );
        // Positions count: swapping a big integer with its rounded neighbour is another request.
        let (big, near) = (9_007_199_254_740_993_u64, 9_007_199_254_740_992_u64);
        assert_ne!(
            with(serde_json::json!({"a": big, "b": near})),
            with(serde_json::json!({"a": near, "b": big}))
        );
        assert_ne!(
            with(serde_json::json!([big, 9_007_199_254_740_992.0])),
            with(serde_json::json!([9_007_199_254_740_992.0, big]))
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
            "ai_cache:v3:qa:*"
        );
        let err = KeyScheme::new(
            "bad:ns",
            &KeyNameSecret::new(SecretKey::from_bytes([1; 32])),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidNamespace), "{err:?}");
        assert!(err.to_string().contains("namespace"), "{err}");
    }
}
