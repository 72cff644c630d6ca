//! Security events: what happened, how bad, where, with a short detail that never holds a secret.

use std::borrow::Cow;
use std::time::SystemTime;

use serde::Serialize;

/// The bounded set of event types (docs/architecture.md §7, `sealcache.security.events{type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventType {
    /// Redis rejected a password (AUTH failure), from the client or the server's ACL LOG.
    AuthFailed,
    /// A TLS handshake or certificate check failed.
    TlsError,
    /// A stored value failed authentication (tampered, wrong key, copied from another key).
    DecryptFailed,
    /// A stored value names a key id the keyring lacks.
    UnknownKeyId,
    /// A stored value has a malformed envelope.
    BadEnvelope,
    /// A value exceeded a size cap.
    Oversize,
    /// A legacy plaintext value was rejected.
    LegacyRejected,
    /// Redis denied a command or key by ACL (NOPERM).
    AclDenied,
    /// The configuration is weaker than the environment requires.
    ConfigWeak,
    /// An explicit security override (development mode, legacy window) is in use.
    OverrideUsed,
    /// An HTTP API request had a missing or wrong API key.
    ApiAuthFailed,
    /// A peer made too many failed API-key attempts and is refused (429) for a while.
    ApiRateLimited,
    /// A valid API key asked for an operation its scopes do not allow (403 `forbidden`).
    ApiScopeDenied,
    /// A tenant's or subject's data was erased (its data keys destroyed): an audit record, not an
    /// attack.
    DataErased,
}

impl SecurityEventType {
    /// Every type, in a fixed order (the index of [`SecurityEventType::index`]).
    pub const ALL: [SecurityEventType; 14] = [
        SecurityEventType::AuthFailed,
        SecurityEventType::TlsError,
        SecurityEventType::DecryptFailed,
        SecurityEventType::UnknownKeyId,
        SecurityEventType::BadEnvelope,
        SecurityEventType::Oversize,
        SecurityEventType::LegacyRejected,
        SecurityEventType::AclDenied,
        SecurityEventType::ConfigWeak,
        SecurityEventType::OverrideUsed,
        SecurityEventType::ApiAuthFailed,
        SecurityEventType::ApiRateLimited,
        SecurityEventType::ApiScopeDenied,
        SecurityEventType::DataErased,
    ];

    /// The metric attribute value (`auth_failed`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventType::AuthFailed => "auth_failed",
            SecurityEventType::TlsError => "tls_error",
            SecurityEventType::DecryptFailed => "decrypt_failed",
            SecurityEventType::UnknownKeyId => "unknown_key_id",
            SecurityEventType::BadEnvelope => "bad_envelope",
            SecurityEventType::Oversize => "oversize",
            SecurityEventType::LegacyRejected => "legacy_rejected",
            SecurityEventType::AclDenied => "acl_denied",
            SecurityEventType::ConfigWeak => "config_weak",
            SecurityEventType::OverrideUsed => "override_used",
            SecurityEventType::ApiAuthFailed => "api_auth_failed",
            SecurityEventType::ApiRateLimited => "api_rate_limited",
            SecurityEventType::ApiScopeDenied => "api_scope_denied",
            SecurityEventType::DataErased => "data_erased",
        }
    }

    /// The OpenTelemetry log record's `event.name`: `sealcache.security.<type>`.
    #[must_use]
    pub fn event_name(self) -> &'static str {
        match self {
            SecurityEventType::AuthFailed => "sealcache.security.auth_failed",
            SecurityEventType::TlsError => "sealcache.security.tls_error",
            SecurityEventType::DecryptFailed => "sealcache.security.decrypt_failed",
            SecurityEventType::UnknownKeyId => "sealcache.security.unknown_key_id",
            SecurityEventType::BadEnvelope => "sealcache.security.bad_envelope",
            SecurityEventType::Oversize => "sealcache.security.oversize",
            SecurityEventType::LegacyRejected => "sealcache.security.legacy_rejected",
            SecurityEventType::AclDenied => "sealcache.security.acl_denied",
            SecurityEventType::ConfigWeak => "sealcache.security.config_weak",
            SecurityEventType::OverrideUsed => "sealcache.security.override_used",
            SecurityEventType::ApiAuthFailed => "sealcache.security.api_auth_failed",
            SecurityEventType::ApiRateLimited => "sealcache.security.api_rate_limited",
            SecurityEventType::ApiScopeDenied => "sealcache.security.api_scope_denied",
            SecurityEventType::DataErased => "sealcache.security.data_erased",
        }
    }

    /// Position in [`SecurityEventType::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The default severity of this type.
    #[must_use]
    pub fn default_severity(self) -> Severity {
        match self {
            SecurityEventType::DecryptFailed
            | SecurityEventType::UnknownKeyId
            | SecurityEventType::BadEnvelope
            | SecurityEventType::TlsError => Severity::High,
            SecurityEventType::AuthFailed
            | SecurityEventType::AclDenied
            | SecurityEventType::ApiAuthFailed
            | SecurityEventType::ApiRateLimited
            | SecurityEventType::ApiScopeDenied
            | SecurityEventType::Oversize
            | SecurityEventType::LegacyRejected
            | SecurityEventType::ConfigWeak => Severity::Medium,
            SecurityEventType::OverrideUsed | SecurityEventType::DataErased => Severity::Low,
        }
    }
}

impl std::fmt::Display for SecurityEventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational (an override that was asked for).
    Low,
    /// Worth a look (failed logins, denied commands).
    Medium,
    /// Likely an attack or a broken deployment (tampered values, TLS failures).
    High,
    /// Act now.
    Critical,
}

/// What the system did about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Refused (a miss, a 401, a failed connection).
    Blocked,
    /// Allowed, and recorded (an override).
    Allowed,
    /// Only observed (server-side logs).
    Observed,
}

impl Outcome {
    /// `blocked`, `allowed` or `observed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Blocked => "blocked",
            Outcome::Allowed => "allowed",
            Outcome::Observed => "observed",
        }
    }
}

/// Where it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// The cache client (codec, connection).
    Client,
    /// Redis itself (the ACL LOG).
    RedisServer,
    /// The HTTP API.
    HttpApi,
    /// Start-up configuration checks.
    Configuration,
}

impl EventSource {
    /// `client`, `redis_server`, `http_api` or `configuration`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Client => "client",
            EventSource::RedisServer => "redis_server",
            EventSource::HttpApi => "http_api",
            EventSource::Configuration => "configuration",
        }
    }
}

/// The longest detail kept, in bytes; longer details are cut at a character boundary.
pub const MAX_DETAIL_LEN: usize = 160;

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityEvent {
    /// Type.
    #[serde(rename = "type")]
    pub kind: SecurityEventType,
    /// When.
    #[serde(serialize_with = "serialize_time")]
    pub timestamp: SystemTime,
    /// Severity.
    pub severity: Severity,
    /// Outcome.
    pub outcome: Outcome,
    /// Source.
    pub source: EventSource,
    /// A short detail. **Never** a value, key, password or full Redis key: a hash prefix at most.
    pub detail: Cow<'static, str>,
    /// How many occurrences this event stands for (1 by default). A source that learns of many
    /// identical failures at once (the `ACL LOG` poller: Redis folds repeated failures into one
    /// entry with a count) records **one** event with their number: totals, windows, thresholds
    /// and the OpenTelemetry counter add `count`, and one log record carries it. A count of 0 is
    /// counted as 1.
    pub count: u64,
    /// Whether recording it writes a log record (true by default). A source that aggregates its
    /// own records (the API-key throttle: one record per peer and window) turns it off; the event
    /// is still counted.
    #[serde(skip)]
    pub log_record: bool,
}

impl SecurityEvent {
    /// An event of `kind` now, with its default severity, `Blocked`, from the client.
    #[must_use]
    pub fn new(kind: SecurityEventType) -> Self {
        Self {
            kind,
            timestamp: SystemTime::now(),
            severity: kind.default_severity(),
            outcome: Outcome::Blocked,
            source: EventSource::Client,
            detail: Cow::Borrowed(""),
            count: 1,
            log_record: true,
        }
    }

    /// Makes the event stand for `count` occurrences (at least 1): one recorded event, one log
    /// record, `count` added to every total.
    #[must_use]
    pub fn count(mut self, count: u64) -> Self {
        self.count = count.max(1);
        self
    }

    /// The occurrences to add to totals: the `count` field, at least 1.
    pub(crate) fn occurrences(&self) -> u64 {
        self.count.max(1)
    }

    /// Counts the event without writing a log record of its own (the caller writes an aggregated
    /// one).
    #[must_use]
    pub fn without_log_record(mut self) -> Self {
        self.log_record = false;
        self
    }

    /// Sets the source.
    #[must_use]
    pub fn source(mut self, source: EventSource) -> Self {
        self.source = source;
        self
    }

    /// Sets the outcome.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the severity.
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the detail, cut to [`MAX_DETAIL_LEN`] bytes.
    ///
    /// # Security
    /// Pass no value, key, password or full Redis key: at most a short hash prefix of a key.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        let mut detail = detail.into();
        if detail.len() > MAX_DETAIL_LEN {
            let mut cut = MAX_DETAIL_LEN;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.to_mut().truncate(cut);
        }
        self.detail = detail;
        self
    }

    /// Sets the timestamp (tests and replayed server-side events).
    #[must_use]
    pub fn at(mut self, timestamp: SystemTime) -> Self {
        self.timestamp = timestamp;
        self
    }
}

fn serialize_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    s.serialize_f64((secs * 1000.0).round() / 1000.0)
}

/// A short, non-reversible tag for a Redis key, safe for an event detail: the first 12 hex
/// characters of the key's last `:` segment (already an HMAC in sealcache's key scheme).
#[must_use]
pub fn key_tag(redis_key: &str) -> String {
    let last = redis_key.rsplit(':').next().unwrap_or("");
    last.chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect()
}
