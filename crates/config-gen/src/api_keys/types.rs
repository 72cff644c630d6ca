//! The names and sets an API key is made of: scopes, tenants, key ids, digests.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// What an API key may do. Each HTTP route needs one (docs/api.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scope {
    /// Look entries up.
    Lookup,
    /// Store entries (and abandon leases).
    Store,
    /// Store an entry shared across tenants (answers that hold no personal data).
    StoreShared,
    /// Invalidate an operation's entries.
    Invalidate,
    /// Erase a subject's data (within the key's tenant).
    Erase,
    /// Operate the server: security status, metrics, clearing everything, erasing a tenant.
    Admin,
}

impl Scope {
    /// Every scope, in a fixed order.
    pub const ALL: [Scope; 6] = [
        Scope::Lookup,
        Scope::Store,
        Scope::StoreShared,
        Scope::Invalidate,
        Scope::Erase,
        Scope::Admin,
    ];

    /// The name in the keys file and the status (`lookup`, `store_shared`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Lookup => "lookup",
            Scope::Store => "store",
            Scope::StoreShared => "store_shared",
            Scope::Invalidate => "invalidate",
            Scope::Erase => "erase",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Lookup => 1,
            Scope::Store => 1 << 1,
            Scope::StoreShared => 1 << 2,
            Scope::Invalidate => 1 << 3,
            Scope::Erase => 1 << 4,
            Scope::Admin => 1 << 5,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a scope (the error shows no input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope (known: lookup, store, store_shared, invalidate, erase, admin)")]
pub struct UnknownScope;

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or(UnknownScope)
    }
}

/// A set of [`Scope`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every scope (the legacy `API_KEY`s have them all).
    #[must_use]
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    #[must_use]
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds `scope`.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// A comma-separated list (`lookup,store`): parses each name.
    ///
    /// # Errors
    /// [`UnknownScope`] for a name that is not a scope (or an empty list).
    pub fn parse_list(list: &str) -> Result<Self, UnknownScope> {
        let mut scopes = Scopes::empty();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            scopes.insert(name.parse()?);
        }
        if scopes.is_empty() {
            return Err(UnknownScope);
        }
        Ok(scopes)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Scopes::empty();
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

/// The longest tenant name or key id.
pub const MAX_NAME_LEN: usize = 64;

/// A tenant or key-id name that breaks the rule: 1-64 characters of `a-z`, `0-9`, `_` or `-`
/// (the error shows no input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 1-64 characters of a-z, 0-9, _ or -")]
pub struct InvalidName {
    /// Which name: `tenant` or `id`.
    pub what: &'static str,
}

fn check_name(name: &str, what: &'static str) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidName { what })
    }
}

/// A tenant: the customer a key acts for (1-64 characters of `a-z`, `0-9`, `_` or `-`).
///
/// # Security
/// A tenant name is customer data: it has no `Display`, and its `Debug` does not show it (logs,
/// metric labels and Redis get a keyed tag of it, never the name). [`Tenant::as_str`] is for
/// deriving keys and tags.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// The name of the tenant of a deployment with no tenants configured (and of the legacy
    /// `API_KEY`s).
    pub const DEFAULT: &'static str = "default";

    /// A tenant named `name`.
    ///
    /// # Errors
    /// [`InvalidName`] unless `name` is 1-64 characters of `a-z`, `0-9`, `_` or `-`.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        check_name(name, "tenant")?;
        Ok(Self(Arc::from(name)))
    }

    /// The tenant `default`.
    #[must_use]
    pub fn default_tenant() -> Self {
        Self(Arc::from(Self::DEFAULT))
    }

    /// Whether this is the tenant `default`.
    #[must_use]
    pub fn is_default(&self) -> bool {
        &*self.0 == Self::DEFAULT
    }

    /// The name (for key derivation and keyed tags; never log it).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Self::default_tenant()
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tenant(..)")
    }
}

impl FromStr for Tenant {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// An API key's id: shown in logs and in `written_by` (1-64 characters of `a-z`, `0-9`, `_` or
/// `-`). Never the key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Arc<str>);

impl KeyId {
    /// The id of the legacy keys (`API_KEY_FILE`, `API_KEY`, `ADDITIONAL_API_KEYS`); reserved, a
    /// keys file may not use it.
    pub const LEGACY: &'static str = "legacy";

    /// A key id `name`.
    ///
    /// # Errors
    /// [`InvalidName`] unless `name` is 1-64 characters of `a-z`, `0-9`, `_` or `-`.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        check_name(name, "id")?;
        Ok(Self(Arc::from(name)))
    }

    /// The id of the legacy keys, `legacy`.
    #[must_use]
    pub fn legacy() -> Self {
        Self(Arc::from(Self::LEGACY))
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The SHA-256 digest of an API key: what the keys file holds and the server compares.
///
/// # Security
/// Its `Debug` shows nothing; compare with [`Digest::ct_eq`], never `==` (there is no
/// `PartialEq`).
#[derive(Clone, Copy)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `key` (the exact bytes presented in the header).
    #[must_use]
    pub fn of(key: &[u8]) -> Self {
        Self(sha2::Sha256::digest(key).into())
    }

    /// A digest from its 64 hex digits (either case).
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let high = hex_value(pair[0])?;
            let low = hex_value(pair[1])?;
            *byte = high << 4 | low;
        }
        Some(Self(out))
    }

    /// The 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }

    /// Constant-time equality.
    #[must_use]
    pub fn ct_eq(&self, other: &Digest) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(..)")
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn scope_names_round_trip_and_unknown_ones_are_refused() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        assert_eq!("root".parse::<Scope>(), Err(UnknownScope));
        assert_eq!("Lookup".parse::<Scope>(), Err(UnknownScope));
        let scopes = Scopes::parse_list("store, lookup").unwrap();
        assert_eq!(scopes.to_string(), "lookup,store");
        assert!(scopes.contains(Scope::Lookup) && !scopes.contains(Scope::Admin));
        assert_eq!(Scopes::parse_list(""), Err(UnknownScope));
        assert_eq!(Scopes::parse_list("lookup,sudo"), Err(UnknownScope));
        assert_eq!(Scopes::all().iter().count(), 6);
    }

    #[test]
    fn names_follow_the_rule_and_tenants_are_not_shown() {
        for ok in ["acme", "a", "web-1", "x_y", &"a".repeat(64)] {
            assert!(Tenant::new(ok).is_ok(), "{ok}");
            assert!(KeyId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "a b", "a.b", "é", &"a".repeat(65), "a/b"] {
            assert_eq!(Tenant::new(bad), Err(InvalidName { what: "tenant" }));
            assert_eq!(KeyId::new(bad), Err(InvalidName { what: "id" }));
        }
        let tenant = Tenant::new("acme").unwrap();
        assert_eq!(format!("{tenant:?}"), "Tenant(..)");
        assert!(Tenant::default().is_default());
    }

    #[test]
    fn digests_parse_from_hex_and_compare_in_constant_time() {
        let digest = Digest::of(b"abc");
        let hex = digest.to_hex();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let parsed = Digest::from_hex(&hex.to_uppercase()).unwrap();
        assert!(bool::from(parsed.ct_eq(&digest)));
        assert!(!bool::from(Digest::of(b"abd").ct_eq(&digest)));
        assert!(Digest::from_hex(&hex[..63]).is_none());
        assert!(Digest::from_hex(&format!("{}g", &hex[..63])).is_none());
        assert_eq!(format!("{digest:?}"), "Digest(..)");
    }
}
