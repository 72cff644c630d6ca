//! The cache's one error type. Stored-value failures never reach the caller: they are misses.

/// A requirement of the strict (production) policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Requirement {
    /// The connection must use TLS (`rediss://`).
    Tls,
    /// The cache must authenticate as a named ACL user, not `default` and not anonymously.
    AclUser,
    /// A password for that user.
    Password,
    /// An encryption key (values are sealed).
    EncryptionKey,
}

impl Requirement {
    /// What to set to meet it.
    #[must_use]
    pub fn remedy(self) -> &'static str {
        match self {
            Requirement::Tls => "TLS: use a rediss:// REDIS_URL with REDIS_TLS_ENABLED=true",
            Requirement::AclUser => {
                "ACL user: set REDIS_USERNAME to a least-privilege user (not `default`)"
            }
            Requirement::Password => "password: set REDIS_PASSWORD_FILE (or REDIS_PASSWORD)",
            Requirement::EncryptionKey => {
                "encryption key: set REDIS_ENCRYPTION_KEYS_FILE (or REDIS_ENCRYPTION_KEY)"
            }
        }
    }
}

/// The strict policy refused a configuration; every unmet requirement is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    /// The environment the policy was applied for.
    pub environment: String,
    /// Every unmet requirement.
    pub unmet: Vec<Requirement>,
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} security policy is not met:", self.environment)?;
        for r in &self.unmet {
            write!(f, "\n  - {}", r.remedy())?;
        }
        write!(
            f,
            "\n(development only: REDIS_SECURITY_MODE=development relaxes this, and is logged)"
        )
    }
}

/// Everything the cache can report to a caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The strict startup policy refused the configuration.
    #[error("{0}")]
    Policy(PolicyViolation),
    /// An operation name is empty, too long, or has characters other than `a-z 0-9 _ -`.
    #[error("invalid operation name: expected 1 to 64 characters of a-z, 0-9, `_` or `-`")]
    InvalidOperation,
    /// An explicit key is empty, too long, or has whitespace or glob characters.
    #[error(
        "invalid cache key: expected 1 to 512 printable characters without whitespace or `*?[]\\`"
    )]
    InvalidKey,
    /// The Redis URL or TLS material is unusable.
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    /// A TLS file could not be read.
    #[error("cannot read {what} from {path}")]
    TlsFile {
        /// Which file.
        what: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to Redis failed (the error kind only: messages can echo configuration).
    #[error("cannot connect to Redis ({0})")]
    Connect(String),
    /// Redis is unavailable (down, timed out, or skipped by the open breaker).
    #[error("Redis is unavailable")]
    Unavailable,
    /// Redis refused a command.
    #[error("Redis refused {command} ({kind})")]
    Redis {
        /// The command.
        command: &'static str,
        /// The error kind.
        kind: String,
    },
    /// The value could not be sealed (too large, randomness unavailable, ...).
    #[error("cannot seal the value: {0}")]
    Seal(#[source] sealcache_codec::Error),
    /// The value could not be serialized to JSON.
    #[error("the value could not be serialized to JSON")]
    Serialize,
    /// `clear` needs the confirmation value [`crate::CLEAR_CONFIRMATION`].
    #[error("clearing the namespace needs the explicit confirmation \"invalidate-all\"")]
    ClearNotConfirmed,
    /// The computation of `get_or_compute` failed; its error is the caller's.
    #[error("the computation failed")]
    Compute(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with the cache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
