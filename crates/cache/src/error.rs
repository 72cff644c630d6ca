//! The cache's one error type. Stored-value failures never reach the caller: they are misses.

pub use sealcache_env_detect::Requirement;

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
            "\n(REDIS_SECURITY_MODE=development relaxes this in any environment, logged and counted: for development only)"
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
    /// The namespace (`CACHE_NAMESPACE`) is empty, too long, or has characters other than
    /// `a-z A-Z 0-9 _ - .` (`:` separates the parts of a Redis key, so it is refused).
    #[error(
        "invalid namespace: expected 1 to 64 characters of a-z, A-Z, 0-9, `_`, `-` or `.` (no `:`: it separates the parts of a Redis key)"
    )]
    InvalidNamespace,
    /// A keyring reload was refused; the running keyring is unchanged.
    #[error("keyring reload refused: {reason}")]
    KeyringRefused {
        /// Why.
        reason: KeyringRefusal,
    },
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
    /// Redis is unavailable: the connection was refused, closed or timed out, or the open breaker
    /// skipped the call. Only transport failures are reported this way; refused credentials and
    /// failed TLS handshakes have their own variants.
    #[error("Redis is unavailable")]
    Unavailable,
    /// Redis refused the cache's credentials (`WRONGPASS`, `NOAUTH`, or `NOPERM` while
    /// connecting). Counted as an `auth_failed` security event. Check `REDIS_USERNAME` and the
    /// password file (a stray character such as a byte-order mark is a different password).
    #[error("Redis refused the credentials ({code})")]
    AuthenticationRefused {
        /// The refusal: `WRONGPASS`, `NOAUTH` or `NOPERM`.
        code: &'static str,
    },
    /// The TLS handshake with Redis failed. Counted as a `tls_error` security event.
    #[error("the TLS handshake with Redis failed ({failure})")]
    Tls {
        /// What failed.
        failure: TlsFailure,
    },
    /// Redis refused a write with an error reply (out of memory, read-only replica, ACL, ...).
    /// Nothing was cached anywhere: not in Redis, not in L1.
    #[error("Redis refused the write ({reason})")]
    WriteRefused {
        /// Why.
        reason: WriteRefusal,
    },
    /// The change reached Redis, but its L1 invalidation could not be published on the coherence
    /// channel (`PUBLISH` refused or failed), so other processes could go on serving their L1
    /// copy. A write is undone (its key unlinked, best effort) and refused; a delete or an
    /// invalidation has happened in Redis but is reported as failed. This process stops serving
    /// L1 until its own invalidation heartbeat gets through again, and so does every other
    /// process whose heartbeat fails the same way. Counted as a `config_weak` event.
    #[error(
        "the L1 invalidation could not be published, so the change is refused (check the ACL user's PUBLISH right and channel grant)"
    )]
    InvalidationNotPublished,
    /// The value is not JSON text that the cache can return byte for byte (not UTF-8, not one
    /// JSON value, or a `\u` escape that is not a valid UTF-16 sequence, such as an unpaired
    /// surrogate). Nothing was stored.
    #[error("the value is not JSON that can be returned exactly as given ({0})")]
    InvalidJson(&'static str),
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
    /// A server-sent event cannot be stored so that it replays exactly as given (a name that is
    /// empty or holds CR or LF, data holding CR), or a stream has no events. Nothing was stored.
    #[error("invalid event stream: {0}")]
    InvalidEvent(&'static str),
    /// A stream's events were asked of a value that is one JSON value.
    #[error("the cached value is not a stream of events")]
    NotAStream,
    /// A lease token is not one this cache hands out (`{operation}.{64 hex}.{32 hex}`); it names
    /// nothing, inside the namespace or outside it.
    #[error("invalid lease token")]
    InvalidLeaseToken,
    /// A writer id ([`crate::AiResponseCache::written_by`]) is not 1-64 characters of `a-z`,
    /// `0-9`, `_` or `-`.
    #[error("invalid writer id (1-64 characters of a-z, 0-9, _ or -)")]
    InvalidWriter,
    /// A lease token was given with a request whose entry it does not lease.
    #[error("the lease token belongs to another request")]
    LeaseNotForRequest,
    /// A lease token no longer holds its lease (released, or expired and perhaps taken by
    /// another caller): nothing was published with it.
    #[error("the lease is no longer held by this token")]
    LeaseLost,
    /// A tenant id is empty, longer than 256 bytes, or holds a control character.
    #[error("invalid tenant: expected 1 to 256 bytes without control characters")]
    InvalidTenant,
    /// A subject id is empty, longer than 1024 bytes, or holds a control character.
    #[error("invalid subject: expected 1 to 1024 bytes without control characters")]
    InvalidSubject,
    /// A subject was given for an entry shared across tenants (shared entries hold no personal
    /// data, so they never belong to a subject).
    #[error("a shared entry has no subject")]
    SharedWithSubject,
    /// The data key a value is to be sealed under could not be created or read (Redis
    /// unavailable, or the record refused to open: see the security events). Nothing was stored.
    #[error("the data key could not be obtained")]
    DataKeyUnavailable,
}

impl Error {
    /// A short, stable name of the variant (`unavailable`, `write_refused`, ...): the `error.type`
    /// of trace spans, never the message.
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::Policy(_) => "policy",
            Error::InvalidOperation => "invalid_operation",
            Error::InvalidKey => "invalid_key",
            Error::InvalidNamespace => "invalid_namespace",
            Error::KeyringRefused { .. } => "keyring_refused",
            Error::Config(_) => "config",
            Error::TlsFile { .. } => "tls_file",
            Error::Connect(_) => "connect",
            Error::Unavailable => "unavailable",
            Error::AuthenticationRefused { .. } => "authentication_refused",
            Error::Tls { .. } => "tls",
            Error::WriteRefused { .. } => "write_refused",
            Error::InvalidationNotPublished => "invalidation_not_published",
            Error::InvalidJson(_) => "invalid_json",
            Error::Redis { .. } => "redis",
            Error::Seal(_) => "seal",
            Error::Serialize => "serialize",
            Error::ClearNotConfirmed => "clear_not_confirmed",
            Error::InvalidEvent(_) => "invalid_event",
            Error::NotAStream => "not_a_stream",
            Error::InvalidLeaseToken => "invalid_lease_token",
            Error::InvalidWriter => "invalid_writer",
            Error::LeaseNotForRequest => "lease_not_for_request",
            Error::LeaseLost => "lease_lost",
            Error::InvalidTenant => "invalid_tenant",
            Error::InvalidSubject => "invalid_subject",
            Error::SharedWithSubject => "shared_with_subject",
            Error::DataKeyUnavailable => "data_key_unavailable",
        }
    }
}

/// Why a keyring reload was refused ([`Error::KeyringRefused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringRefusal {
    /// The key-name secret differs: every entry's Redis key would change.
    #[error("the key-name secret differs from the running keyring's")]
    NameSecretChanged,
    /// A key id present in both keyrings holds different key material.
    #[error("key id {key_id} holds different key material than the running keyring's")]
    KeyMaterialChanged {
        /// The key id.
        key_id: u32,
    },
    /// A dictionary id present in both keyrings holds different bytes.
    #[error("dictionary id {dictionary_id} holds different bytes than the running keyring's")]
    DictionaryChanged {
        /// The dictionary id.
        dictionary_id: u32,
    },
    /// The keyring drops a dictionary that live entries may be compressed with.
    #[error(
        "the keyring drops dictionary id {dictionary_id}, which live entries may be compressed with (force to drop it)"
    )]
    DropsDictionary {
        /// The dictionary id.
        dictionary_id: u32,
    },
    /// The keyring drops the key that seals new entries now (refused even when forced).
    #[error(
        "the keyring drops key id {key_id}, the key this process seals with (reload a keyring that promotes another key and keeps this one first; refused even when forced)"
    )]
    DropsPrimary {
        /// The key id.
        key_id: u32,
    },
    /// The keyring drops a key under which data-key records are still wrapped (after re-wrapping
    /// every one the running keyring could): applying it would destroy those tenants' and
    /// subjects' data keys. Refused even when forced.
    #[error(
        "the keyring drops key id {key_id}, under which {records} data-key record(s) are still wrapped (they could not be re-wrapped under the primary: keep the key and reload again; refused even when forced)"
    )]
    WrapsDataKeys {
        /// The key id.
        key_id: u32,
        /// How many records.
        records: u64,
    },
    /// The keyring drops key id `key_id`, and Redis could not be asked whether data-key records
    /// are still wrapped under it (refused even when forced: nothing is dropped on a guess).
    #[error(
        "the keyring drops key id {key_id}, and Redis could not be asked whether data-key records are still wrapped under it (reload again once Redis answers; refused even when forced)"
    )]
    DataKeysUnchecked {
        /// The key id.
        key_id: u32,
    },
    /// The keyring drops a key that may still seal live entries.
    #[error(
        "the keyring drops key id {key_id}, which may seal live entries for another {live_for_secs} s (retire it after the longest TTL, or force)"
    )]
    DropsLiveKey {
        /// The key id.
        key_id: u32,
        /// Seconds until entries sealed under it have expired, as far as this process knows.
        live_for_secs: u64,
    },
}

/// What failed in a TLS handshake with Redis ([`Error::Tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate does not chain to the pinned CA (`REDIS_TLS_CA_PATH`).
    UnknownIssuer,
    /// The server's certificate has expired (or is not valid yet).
    ServerCertificateExpired,
    /// The server's certificate does not name the host in `REDIS_URL`.
    ServerNameMismatch,
    /// The server's certificate is unusable for another reason.
    BadServerCertificate,
    /// The server requires a client certificate and none was presented
    /// (`REDIS_TLS_CERT_PATH`, `REDIS_TLS_KEY_PATH`).
    ClientCertificateRequired,
    /// The server rejected the client certificate (unknown CA, expired, revoked, ...).
    ClientCertificateRejected,
    /// The handshake failed otherwise (protocol versions, ciphers, a plaintext server).
    Handshake,
}

impl TlsFailure {
    /// Short name for logs and event details: `unknown_issuer`, `server_certificate_expired`, ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::UnknownIssuer => "unknown_issuer",
            TlsFailure::ServerCertificateExpired => "server_certificate_expired",
            TlsFailure::ServerNameMismatch => "server_name_mismatch",
            TlsFailure::BadServerCertificate => "bad_server_certificate",
            TlsFailure::ClientCertificateRequired => "client_certificate_required",
            TlsFailure::ClientCertificateRejected => "client_certificate_rejected",
            TlsFailure::Handshake => "handshake",
        }
    }

    /// The failure behind a rustls error.
    #[must_use]
    pub fn from_rustls(err: &rustls::Error) -> Self {
        use rustls::{AlertDescription as A, CertificateError as C};
        match err {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer | C::BadSignature => TlsFailure::UnknownIssuer,
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => TlsFailure::ServerCertificateExpired,
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    TlsFailure::ServerNameMismatch
                }
                _ => TlsFailure::BadServerCertificate,
            },
            rustls::Error::AlertReceived(A::CertificateRequired) => {
                TlsFailure::ClientCertificateRequired
            }
            rustls::Error::AlertReceived(
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::CertificateUnknown
                | A::UnsupportedCertificate
                | A::AccessDenied,
            ) => TlsFailure::ClientCertificateRejected,
            _ => TlsFailure::Handshake,
        }
    }

    /// The TLS failure somewhere in `err`'s source chain (a rustls error, possibly inside an
    /// `io::Error`), if any.
    #[must_use]
    pub fn find(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
        let mut next = Some(err);
        while let Some(mut e) = next {
            // redis-rs keeps its cause as an `Arc<dyn Error>`: look through it.
            while let Some(shared) = e.downcast_ref::<Shared>() {
                e = &**shared;
            }
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(Self::from_rustls(tls));
            }
            if let Some(tls) = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(Self::from_rustls(tls));
            }
            next = e.source();
        }
        None
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsFailure::UnknownIssuer => "the server certificate is not signed by the pinned CA",
            TlsFailure::ServerCertificateExpired => "the server certificate has expired",
            TlsFailure::ServerNameMismatch => {
                "the server certificate does not name the REDIS_URL host"
            }
            TlsFailure::BadServerCertificate => "the server certificate is unusable",
            TlsFailure::ClientCertificateRequired => {
                "the server requires a client certificate and none was presented"
            }
            TlsFailure::ClientCertificateRejected => "the server rejected the client certificate",
            TlsFailure::Handshake => "handshake failure",
        })
    }
}

/// Why Redis refused a write ([`Error::WriteRefused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteRefusal {
    /// `OOM`: Redis is at `maxmemory` and may not evict (`noeviction`).
    OutOfMemory,
    /// `READONLY`: the node is a replica.
    ReadOnly,
    /// `NOPERM`: the ACL user may not run this command on this key.
    NoPermission,
    /// Any other error reply.
    Other,
}

impl WriteRefusal {
    /// From a Redis error code (`OOM`, `READONLY`, `NOPERM`, ...).
    #[must_use]
    pub fn from_code(code: &str) -> Self {
        match code {
            "OOM" => WriteRefusal::OutOfMemory,
            "READONLY" => WriteRefusal::ReadOnly,
            "NOPERM" => WriteRefusal::NoPermission,
            _ => WriteRefusal::Other,
        }
    }

    /// Short name: `oom`, `readonly`, `noperm` or `refused` (the metric attribute value).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.failure().as_str()
    }

    /// The monitor's reason.
    #[must_use]
    pub fn failure(self) -> sealcache_monitor::WriteFailure {
        use sealcache_monitor::WriteFailure;
        match self {
            WriteRefusal::OutOfMemory => WriteFailure::OutOfMemory,
            WriteRefusal::ReadOnly => WriteFailure::ReadOnly,
            WriteRefusal::NoPermission => WriteFailure::NoPermission,
            WriteRefusal::Other => WriteFailure::Refused,
        }
    }
}

impl std::fmt::Display for WriteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteRefusal::OutOfMemory => "out of memory",
            WriteRefusal::ReadOnly => "read-only replica",
            WriteRefusal::NoPermission => "no ACL permission",
            WriteRefusal::Other => "error reply",
        })
    }
}

/// What `get_or_compute` returns on failure: the cache's own error, or the computation's error,
/// shared by every caller that waited for the same computation.
#[derive(Debug)]
#[non_exhaustive]
pub enum ComputeError<E> {
    /// The cache refused the call (an invalid operation name, an unserializable value, ...).
    Cache(Error),
    /// The computation failed; every waiter gets the same error. Errors are never cached.
    Compute(std::sync::Arc<E>),
}

impl<E: std::fmt::Display> std::fmt::Display for ComputeError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeError::Cache(e) => e.fmt(f),
            ComputeError::Compute(e) => write!(f, "the computation failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ComputeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ComputeError::Cache(e) => Some(e),
            ComputeError::Compute(e) => Some(&**e),
        }
    }
}

impl<E> From<Error> for ComputeError<E> {
    fn from(e: Error) -> Self {
        ComputeError::Cache(e)
    }
}

/// `Result` with the cache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sealcache_api::InvalidEvent> for Error {
    fn from(e: sealcache_api::InvalidEvent) -> Self {
        Error::InvalidEvent(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::TlsFailure;
    use rustls::{AlertDescription, CertificateError};

    #[test]
    fn rustls_errors_name_the_tls_failure_even_inside_io_and_shared_errors() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                TlsFailure::UnknownIssuer,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                TlsFailure::ServerCertificateExpired,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                TlsFailure::ServerNameMismatch,
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                TlsFailure::ClientCertificateRequired,
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::UnknownCA),
                TlsFailure::ClientCertificateRejected,
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
                TlsFailure::Handshake,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(TlsFailure::from_rustls(&err), want);
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
            assert_eq!(TlsFailure::find(&io), Some(want));
            let shared: std::sync::Arc<dyn std::error::Error + Send + Sync> =
                std::sync::Arc::new(io);
            assert_eq!(TlsFailure::find(&shared), Some(want));
        }
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(TlsFailure::find(&plain), None);
    }
}
