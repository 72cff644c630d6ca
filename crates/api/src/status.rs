//! The security status (`GET /internal/cache/security-status`) and its parts.
//!
//! How the level follows from the checks, in order:
//! 1. not the strict policy → `development`;
//! 2. a check that was observed and failed in a way that leaves a core protection missing
//!    (plaintext transport, the `default` user, anonymous access) → `insecure`;
//! 3. every check observed and passed → `production_ready`;
//! 4. anything else (a check that could not be observed, Redis unavailable, refused credentials, a
//!    failed handshake, a certificate within 30 days of expiry) → `degraded`, with the reason in
//!    the check's detail. What could not be seen is never reported as `insecure`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Days of remaining validity below which a certificate makes the status `degraded`.
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SecurityLevel {
    /// Every check observed and passed in a strict environment.
    ProductionReady,
    /// Secure as far as observed, but something needs attention (Redis unavailable, a check that
    /// could not be observed, a certificate expiring, refused credentials, ...).
    Degraded,
    /// A core protection is observed missing (TLS, authentication, anonymous access refused).
    Insecure,
    /// Not the strict policy (development or testing environment, or the explicit override).
    Development,
}

impl SecurityLevel {
    /// Every level, in a fixed order.
    pub const ALL: [SecurityLevel; 4] = [
        SecurityLevel::ProductionReady,
        SecurityLevel::Degraded,
        SecurityLevel::Insecure,
        SecurityLevel::Development,
    ];

    /// `production_ready`, `degraded`, `insecure` or `development` (the JSON value and the
    /// `level` attribute of `sealcache.security.level`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityLevel::ProductionReady => "production_ready",
            SecurityLevel::Degraded => "degraded",
            SecurityLevel::Insecure => "insecure",
            SecurityLevel::Development => "development",
        }
    }
}

impl std::fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of a check (stable: dashboards and scripts read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckName {
    /// A TLS session with Redis was negotiated.
    TlsNegotiated,
    /// The cache is authenticated as a named ACL user.
    AclUser,
    /// Observed by a caller with `ACL LIST` (the server, as the monitor user): the users are the
    /// generated ones, none has `nopass`, and `default` is `off`.
    AclUsers,
    /// Observed by a caller with `ACL LIST`: no generated user may do more than its grant
    /// (commands, categories, key and channel patterns, selectors).
    AclRights,
    /// An unauthenticated client is refused.
    DefaultUserDisabled,
    /// Values are sealed.
    Encryption,
    /// The earliest expiry of every certificate read is more than 30 days away.
    CertificateValidity,
    /// The certificate chain the server presents.
    ServerCertificate,
    /// The client certificate the cache presents (mutual TLS).
    ClientCertificate,
    /// The pinned CA certificate.
    CaCertificate,
    /// Redis answered `PING`.
    RedisAvailable,
    /// The strict policy applies.
    StrictPolicy,
    /// Redis is reachable only over an isolated network (observed by the server).
    NetworkIsolated,
    /// L1 is coherent with other processes: the invalidation subscription is confirmed.
    L1Coherence,
    /// Redis Cluster only: every node reports `cluster_state:ok`.
    ClusterState,
    /// Redis Cluster only: every node negotiates verified TLS and refuses anonymous clients.
    ClusterNodes,
    /// Mutual TLS is configured and Redis refuses a client without a certificate (observed by a
    /// handshake without one: `tls-auth-clients no` or `optional` fails it).
    ClientCertificateRequired,
    /// The latest keyring reload was applied (a refused one leaves the running keyring behind
    /// the keyring file).
    KeyringReload,
    /// A check this version does not know (read from a newer server); serialized as `other`.
    #[serde(other)]
    Other,
}

impl CheckName {
    /// The snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::TlsNegotiated => "tls_negotiated",
            CheckName::AclUser => "acl_user",
            CheckName::AclUsers => "acl_users",
            CheckName::AclRights => "acl_rights",
            CheckName::DefaultUserDisabled => "default_user_disabled",
            CheckName::Encryption => "encryption",
            CheckName::CertificateValidity => "certificate_validity",
            CheckName::ServerCertificate => "server_certificate",
            CheckName::ClientCertificate => "client_certificate",
            CheckName::CaCertificate => "ca_certificate",
            CheckName::RedisAvailable => "redis_available",
            CheckName::StrictPolicy => "strict_policy",
            CheckName::NetworkIsolated => "network_isolated",
            CheckName::L1Coherence => "l1_coherence",
            CheckName::ClusterState => "cluster_state",
            CheckName::ClusterNodes => "cluster_nodes",
            CheckName::ClientCertificateRequired => "client_certificate_required",
            CheckName::KeyringReload => "keyring_reload",
            CheckName::Other => "other",
        }
    }
}

impl CheckName {
    /// What a failure of this check means at worst: the [`Check::impact`] it reports while it
    /// passes or cannot be observed. `insecure` for the checks whose failure can mean a core
    /// protection is missing (transport, identity, the default user, ACLs, encryption, a cluster
    /// node), `degraded` for the rest, [`CheckName::Other`] included.
    #[must_use]
    pub fn failure_impact(self) -> Impact {
        match self {
            CheckName::TlsNegotiated
            | CheckName::AclUser
            | CheckName::AclUsers
            | CheckName::AclRights
            | CheckName::DefaultUserDisabled
            | CheckName::Encryption
            | CheckName::ClusterNodes => Impact::Insecure,
            _ => Impact::Degraded,
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failed check means for the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// A core protection is missing: the level is `insecure`.
    Insecure,
    /// Needs attention: the level is `degraded`.
    Degraded,
}

/// [`Check::observed`] of a server that does not send it: its checks were all observations.
fn observed_by_default() -> bool {
    true
}

/// [`Check::impact`] of a server that does not send it.
fn degraded() -> Impact {
    Impact::Degraded
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    /// Which check.
    pub name: CheckName,
    /// Observed and passed.
    pub passed: bool,
    /// False when the check could not be observed (then `passed` is false and the level is at
    /// best `degraded`). Read as `true` from a server that does not send it (before the field).
    #[serde(default = "observed_by_default")]
    pub observed: bool,
    /// What a failure means: on a failed check, what this failure means; on a passing or
    /// unobserved one, what its failure would mean at worst ([`CheckName::failure_impact`]).
    /// Read as `degraded` from a server that does not send it.
    #[serde(default = "degraded")]
    pub impact: Impact,
    /// What was observed (never a secret).
    pub detail: String,
}

impl Check {
    /// An observed pass (its `impact` is [`CheckName::failure_impact`]).
    #[must_use]
    pub fn pass(name: CheckName, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: true,
            observed: true,
            impact: name.failure_impact(),
            detail: detail.into(),
        }
    }

    /// An observed failure with `impact`.
    #[must_use]
    pub fn fail(name: CheckName, impact: Impact, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: false,
            observed: true,
            impact,
            detail: detail.into(),
        }
    }

    /// A check that could not be observed (the level becomes at best `degraded`; its `impact` is
    /// [`CheckName::failure_impact`], what a failure would mean once observed).
    #[must_use]
    pub fn unobserved(name: CheckName, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: false,
            observed: false,
            impact: name.failure_impact(),
            detail: detail.into(),
        }
    }
}

/// The observed security posture of a cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct SecurityStatus {
    /// Values are sealed (always true: the cache cannot store plaintext).
    pub encryption_enabled: bool,
    /// A TLS session was negotiated with Redis (observed by a handshake).
    #[serde(default)]
    pub tls_enabled: bool,
    /// The negotiated protocol version, if any.
    pub tls_version: Option<String>,
    /// The ACL user Redis says we are (`ACL WHOAMI`).
    pub authenticated_user: Option<String>,
    /// An unauthenticated connection is refused (`None`: could not be observed).
    pub default_user_disabled: Option<bool>,
    /// Authentication is in force: a named user, and anonymous access refused.
    #[serde(default)]
    pub auth_configured: bool,
    /// The sealing key id.
    pub primary_key_id: u32,
    /// Keys kept for decryption only.
    #[serde(default)]
    pub decrypt_only_key_ids: Vec<u32>,
    /// Keyring reloads since start: applied, refused, and why the latest was refused. Required
    /// when read: a backend that does not report its reloads cannot confirm a rotation, and the
    /// rotation refuses it up front (`sealcache-ops`).
    pub keyring_reloads: KeyringReloadStatus,
    /// Which Redis password this process authenticates new connections with: the first 12 hex
    /// digits of its SHA-256, the start of its `#<sha256>` ACL hash (`None`: no password, or a
    /// connection the application owns). A rotation compares it with the password files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_password_generation: Option<String>,
    /// Redis refuses a TLS client without a certificate (`None`: no client certificate is
    /// configured, or not observed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_required: Option<bool>,
    /// Days until the earliest `notAfter` of every certificate read: the server chain, the
    /// client certificate and the pinned CA.
    pub certificate_expires_in_days: Option<i64>,
    /// Detected environment.
    #[serde(default)]
    pub environment: String,
    /// Its confidence.
    #[serde(default)]
    pub confidence: f64,
    /// `REDIS_SECURITY_MODE=development` in force.
    #[serde(default)]
    pub development_override: bool,
    /// Redis answered `PING`.
    #[serde(default)]
    pub redis_available: bool,
    /// Redis is reachable only over an isolated network (`None` until a caller observed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_isolated: Option<bool>,
    /// The operator's claim `REDIS_NETWORK_ISOLATION` (`None` until a caller recorded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_isolation_claimed: Option<bool>,
    /// Security events in the last hour.
    #[serde(default)]
    pub recent_security_events: u64,
    /// Totals per type since start.
    #[serde(default)]
    pub security_events_by_type: BTreeMap<String, u64>,
    /// Writes that did not reach Redis since start, by reason (`oom`, `readonly`, `noperm`,
    /// `refused`, `unavailable`): each was refused to its caller and cached nowhere.
    #[serde(default)]
    pub write_failures: BTreeMap<String, u64>,
    /// L1 coherence across processes (`None`: L1 or coherence off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1_coherence: Option<L1CoherenceStatus>,
    /// Redis Cluster only: `cluster_state` and what was observed on each node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// Erasures (of a tenant's or subject's data key) whose wrapping keyring key is not retired
    /// yet: until then, a copy of the wrapped key restored from an older snapshot is refused by its
    /// tombstone only (see docs/security-model.md, "Is Ann's data gone?"). `None`: Redis could not
    /// be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_erasures: Option<u64>,
    /// The verdict.
    pub security_level: SecurityLevel,
    /// Every check.
    pub checks: Vec<Check>,
}

impl SecurityStatus {
    /// A status with `checks`, assessed under the strict policy or not (see the crate docs for
    /// the rules); every other field empty (`false`, `None`, zero), for the assessor to fill in.
    #[must_use]
    pub fn new(strict: bool, checks: Vec<Check>) -> Self {
        Self {
            encryption_enabled: false,
            tls_enabled: false,
            tls_version: None,
            authenticated_user: None,
            default_user_disabled: None,
            auth_configured: false,
            primary_key_id: 0,
            decrypt_only_key_ids: Vec::new(),
            keyring_reloads: KeyringReloadStatus::default(),
            redis_password_generation: None,
            client_certificate_required: None,
            certificate_expires_in_days: None,
            environment: String::new(),
            confidence: 0.0,
            development_override: false,
            redis_available: false,
            network_isolated: None,
            network_isolation_claimed: None,
            recent_security_events: 0,
            security_events_by_type: BTreeMap::new(),
            write_failures: BTreeMap::new(),
            l1_coherence: None,
            cluster: None,
            pending_erasures: None,
            security_level: level(strict, &checks),
            checks,
        }
    }

    /// Assesses the level again from the checks, under the policy the status was assessed with
    /// (`development` is the level exactly when the policy is not strict).
    fn reassess(&mut self) {
        let strict = self.security_level != SecurityLevel::Development;
        self.security_level = level(strict, &self.checks);
    }

    /// Adds a check observed outside the cache (such as network isolation) and re-assesses the
    /// level by the same rules.
    pub fn add_check(&mut self, check: Check) {
        self.checks.push(check);
        self.reassess();
    }

    /// Records what the live ACL says of the `default` user (read by a caller with `ACL LIST`,
    /// such as the server's posture probe): `default_user_disabled` and the
    /// `default_user_disabled` check then come from `user default off` / `on` instead of from the
    /// anonymous `PING` (which a `default` user that is `on` with a password also refuses), and
    /// `auth_configured` follows. An anonymous client observed served stays a failure. Re-assesses
    /// the level.
    pub fn record_default_user_from_acl(&mut self, disabled: bool, detail: &str) {
        let served = self.default_user_disabled == Some(false);
        let disabled = disabled && !served;
        let check = if disabled {
            Check::pass(CheckName::DefaultUserDisabled, detail)
        } else if served {
            Check::fail(
                CheckName::DefaultUserDisabled,
                Impact::Insecure,
                format!("an unauthenticated client is served; {detail}"),
            )
        } else {
            Check::fail(CheckName::DefaultUserDisabled, Impact::Insecure, detail)
        };
        self.default_user_disabled = Some(disabled);
        self.auth_configured = disabled && self.check(CheckName::AclUser).is_some_and(|c| c.passed);
        match self
            .checks
            .iter_mut()
            .find(|c| c.name == CheckName::DefaultUserDisabled)
        {
            Some(c) => *c = check,
            None => self.checks.push(check),
        }
        self.reassess();
    }

    /// Records the server's network-isolation observation and the operator's claim, as a
    /// `network_isolated` check.
    pub fn record_network_isolation(&mut self, isolated: bool, claimed: bool, detail: &str) {
        self.network_isolated = Some(isolated);
        self.network_isolation_claimed = Some(claimed);
        let detail = format!(
            "{detail}{}",
            if claimed {
                " (REDIS_NETWORK_ISOLATION=true claimed)"
            } else {
                ""
            }
        );
        self.add_check(if isolated {
            Check::pass(CheckName::NetworkIsolated, detail)
        } else {
            Check::fail(CheckName::NetworkIsolated, Impact::Degraded, detail)
        });
    }

    /// The check named `name`, if present.
    #[must_use]
    pub fn check(&self, name: CheckName) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

fn level(strict: bool, checks: &[Check]) -> SecurityLevel {
    if !strict {
        SecurityLevel::Development
    } else if checks
        .iter()
        .any(|c| c.observed && !c.passed && c.impact == Impact::Insecure)
    {
        SecurityLevel::Insecure
    } else if checks.iter().all(|c| c.passed) {
        SecurityLevel::ProductionReady
    } else {
        SecurityLevel::Degraded
    }
}

/// L1 coherence across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct L1CoherenceStatus {
    /// The invalidation subscription is confirmed, so L1 is served (else bypassed).
    pub subscribed: bool,
    /// Times the subscription was lost since start (each flushed L1).
    pub losses: u64,
}

impl L1CoherenceStatus {
    /// The subscription's state and losses.
    #[must_use]
    pub fn new(subscribed: bool, losses: u64) -> Self {
        Self { subscribed, losses }
    }
}

/// A Redis Cluster's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ClusterStatus {
    /// `ok` when every node that answered reports `cluster_state:ok`; else `fail` or `unknown`
    /// (`None`: no node answered).
    pub cluster_state: Option<String>,
    /// Every node `CLUSTER SLOTS` names, primaries first.
    pub nodes: Vec<NodeStatus>,
}

impl ClusterStatus {
    /// The cluster's state and its nodes.
    #[must_use]
    pub fn new(cluster_state: Option<String>, nodes: Vec<NodeStatus>) -> Self {
        Self {
            cluster_state,
            nodes,
        }
    }
}

/// One cluster node's role and observed transport and access control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct NodeStatus {
    /// `host:port` as the cluster announces it.
    pub address: String,
    /// Its role in the slot map.
    pub role: NodeRole,
    /// The TLS version negotiated with it (`None`: no verified TLS session).
    pub tls_version: Option<String>,
    /// It refuses an unauthenticated client (`None`: not observed).
    pub default_user_disabled: Option<bool>,
    /// `cluster_state` as this node reports it (`None`: it did not answer).
    pub cluster_state: Option<String>,
}

impl NodeStatus {
    /// A node at `address` (`host:port`) with `role`, nothing observed yet.
    #[must_use]
    pub fn new(address: impl Into<String>, role: NodeRole) -> Self {
        Self {
            address: address.into(),
            role,
            tls_version: None,
            default_user_disabled: None,
            cluster_state: None,
        }
    }
}

/// A cluster node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Serves its slots' writes.
    Primary,
    /// Replicates a primary.
    Replica,
}

/// Keyring reloads since the process started, for the security status: a refused reload keeps
/// the running keyring, so the operator's files and the running process disagree until a later
/// reload is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct KeyringReloadStatus {
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused (or whose keyring could not be read).
    pub refused: u64,
    /// Why the latest reload was refused, while it is the latest attempt (`None` once a later
    /// reload is applied). Key ids only, never key material.
    pub last_refusal: Option<String>,
}
