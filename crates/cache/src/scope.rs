//! Whose an entry is: a tenant (the customer) and, within it, optionally a subject (the end user
//! whose data the entry holds), or nobody's in particular (shared across tenants).
//!
//! Both ids enter the key-name HMAC (so two owners never share an entry) and choose the data key
//! a value is sealed under (see `data_key`); neither is ever written to Redis, a metric label or a
//! log line in clear: Redis and the logs see 128-bit keyed tags only.

use crate::error::{Error, Result};

/// The tenant of a deployment without tenants, and of an [`crate::AiResponseCache`] not scoped with
/// [`crate::AiResponseCache::tenant`].
pub const DEFAULT_TENANT: &str = "default";

/// Longest tenant id, in bytes.
pub const MAX_TENANT_LEN: usize = 256;
/// Longest subject id, in bytes.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// Checks a tenant id: 1 to [`MAX_TENANT_LEN`] bytes, no control characters.
///
/// # Errors
/// [`Error::InvalidTenant`].
pub fn validate_tenant(tenant: &str) -> Result<()> {
    if (1..=MAX_TENANT_LEN).contains(&tenant.len()) && !tenant.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::InvalidTenant)
    }
}

/// Checks a subject id: 1 to [`MAX_SUBJECT_LEN`] bytes, no control characters.
///
/// # Errors
/// [`Error::InvalidSubject`].
pub fn validate_subject(subject: &str) -> Result<()> {
    if (1..=MAX_SUBJECT_LEN).contains(&subject.len()) && !subject.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::InvalidSubject)
    }
}

/// Whose an entry is (checked ids).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A tenant's, and within it a subject's when given.
    Tenant {
        /// The tenant id.
        tenant: String,
        /// The subject id.
        subject: Option<String>,
    },
    /// Shared across tenants: sealed under the keyring, never a subject.
    Shared,
}

impl std::fmt::Debug for Owner {
    // The ids are personal data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Tenant { subject, .. } => f
                .debug_struct("Tenant")
                .field("subject", &subject.as_ref().map(|_| "<redacted>"))
                .finish_non_exhaustive(),
            Owner::Shared => f.write_str("Shared"),
        }
    }
}

impl Owner {
    /// Tenant `default`, no subject.
    pub(crate) fn default_tenant() -> Self {
        Owner::Tenant {
            tenant: DEFAULT_TENANT.to_owned(),
            subject: None,
        }
    }
}

/// The keyed tags naming a data key: the tenant's, and the subject's within it (`None`: the
/// tenant's own data key, for its entries without a subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DataKeyScope {
    /// HMAC tag of the tenant.
    pub(crate) tenant: [u8; 16],
    /// HMAC tag of the tenant and subject.
    pub(crate) subject: Option<[u8; 16]>,
}

impl DataKeyScope {
    /// The subject tag as written in an envelope (all zero: none).
    pub(crate) fn subject_bytes(&self) -> [u8; 16] {
        self.subject.unwrap_or([0; 16])
    }

    /// From the tags as written in an envelope.
    pub(crate) fn from_bytes(tenant: [u8; 16], subject: [u8; 16]) -> Self {
        Self {
            tenant,
            subject: (subject != [0; 16]).then_some(subject),
        }
    }

    /// The tenant tag in hex.
    pub(crate) fn tenant_hex(&self) -> String {
        hex(&self.tenant)
    }

    /// The subject tag in hex (`_` for none).
    pub(crate) fn subject_hex(&self) -> String {
        self.subject
            .as_ref()
            .map_or_else(|| "_".to_owned(), |s| hex(s))
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends `bytes` to `out` as lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_tenant("acme").is_ok());
        assert!(validate_tenant("").is_err());
        assert!(validate_tenant(&"a".repeat(MAX_TENANT_LEN + 1)).is_err());
        assert!(validate_tenant("a\nb").is_err());
        assert!(validate_subject("ann@example.com").is_ok());
        assert!(validate_subject("").is_err());
        assert!(validate_subject("x\u{0}").is_err());
    }

    #[test]
    fn debug_never_shows_ids() {
        let owner = Owner::Tenant {
            tenant: "acme-secret".into(),
            subject: Some("ann@example.com".into()),
        };
        let text = format!("{owner:?}");
        assert!(!text.contains("acme") && !text.contains("ann"), "{text}");
    }
}
