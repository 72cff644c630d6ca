//! The one security-posture assessment: [`SecurityStatus`] is built here and nowhere else.
//!
//! The cache gathers [`Observations`] (what Redis and the TLS handshakes showed); [`assess`] turns
//! them into typed [`Check`]s and one [`SecurityLevel`]. A caller that observes more (the server's
//! network-isolation probe) adds a check with [`SecurityStatus::add_check`], which re-assesses.
//!
//! The rules, in order:
//! 1. not strict ([`Policy::is_strict`] false) → `development`;
//! 2. a check that was observed and failed in a way that leaves a core protection missing
//!    (plaintext transport, the `default` user, anonymous access) → `insecure`;
//! 3. every check observed and passed → `production_ready`;
//! 4. anything else (a check that could not be observed, Redis unavailable, refused credentials, a
//!    failed handshake, a certificate within 30 days of expiry) → `degraded`, with the reason in
//!    the check's detail. What could not be seen is never reported as `insecure`.

use std::collections::BTreeMap;
use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sealcache_env_detect::{EnvironmentInfo, Policy};
use serde::Serialize;

use crate::error::{Error, TlsFailure};
use crate::keyring_reload::KeyringReloadStatus;

/// Days of remaining validity below which a certificate makes the status `degraded`.
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failed check means for the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// A core protection is missing: the level is `insecure`.
    Insecure,
    /// Needs attention: the level is `degraded`.
    Degraded,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check.
    pub name: CheckName,
    /// Observed and passed.
    pub passed: bool,
    /// False when the check could not be observed (then `passed` is false and the level is at
    /// best `degraded`).
    pub observed: bool,
    /// What a failure means.
    pub impact: Impact,
    /// What was observed (never a secret).
    pub detail: String,
}

impl Check {
    /// An observed pass.
    #[must_use]
    pub fn pass(name: CheckName, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: true,
            observed: true,
            impact: Impact::Degraded,
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

    /// A check that could not be observed (the level becomes at best `degraded`).
    #[must_use]
    pub fn unobserved(name: CheckName, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: false,
            observed: false,
            impact: Impact::Degraded,
            detail: detail.into(),
        }
    }
}

/// The observed security posture of a cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SecurityStatus {
    /// Values are sealed (always true: the cache cannot store plaintext).
    pub encryption_enabled: bool,
    /// A TLS session was negotiated with Redis (observed by a handshake).
    pub tls_enabled: bool,
    /// The negotiated protocol version, if any.
    pub tls_version: Option<String>,
    /// The ACL user Redis says we are (`ACL WHOAMI`).
    pub authenticated_user: Option<String>,
    /// An unauthenticated connection is refused (`None`: could not be observed).
    pub default_user_disabled: Option<bool>,
    /// Authentication is in force: a named user, and anonymous access refused.
    pub auth_configured: bool,
    /// The sealing key id.
    pub primary_key_id: u32,
    /// Keys kept for decryption only.
    pub decrypt_only_key_ids: Vec<u32>,
    /// Keyring reloads since start: applied, refused, and why the latest was refused.
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
    pub environment: String,
    /// Its confidence.
    pub confidence: f64,
    /// `REDIS_SECURITY_MODE=development` in force.
    pub development_override: bool,
    /// Redis answered `PING`.
    pub redis_available: bool,
    /// Redis is reachable only over an isolated network (`None` until a caller observed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_isolated: Option<bool>,
    /// The operator's claim `REDIS_NETWORK_ISOLATION` (`None` until a caller recorded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_isolation_claimed: Option<bool>,
    /// Security events in the last hour.
    pub recent_security_events: u64,
    /// Totals per type since start.
    pub security_events_by_type: BTreeMap<String, u64>,
    /// Writes that did not reach Redis since start, by reason (`oom`, `readonly`, `noperm`,
    /// `refused`, `unavailable`): each was refused to its caller and cached nowhere.
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
    #[serde(skip)]
    strict: bool,
}

impl SecurityStatus {
    /// Adds a check observed outside the cache (such as network isolation) and re-assesses the
    /// level by the same rules.
    pub fn add_check(&mut self, check: Check) {
        self.checks.push(check);
        self.security_level = level(self.strict, &self.checks);
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
        self.security_level = level(self.strict, &self.checks);
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

/// L1 coherence across processes, as observed by [`crate::SealedCache::security_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct L1CoherenceStatus {
    /// The invalidation subscription is confirmed, so L1 is served (else bypassed).
    pub subscribed: bool,
    /// Times the subscription was lost since start (each flushed L1).
    pub losses: u64,
}

/// A Redis Cluster's state, as observed by [`crate::SealedCache::security_status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// `ok` when every node that answered reports `cluster_state:ok`; else `fail` or `unknown`
    /// (`None`: no node answered).
    pub cluster_state: Option<String>,
    /// Every node `CLUSTER SLOTS` names, primaries first.
    pub nodes: Vec<NodeStatus>,
}

/// One cluster node's role and observed transport and access control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// A cluster node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Serves its slots' writes.
    Primary,
    /// Replicates a primary.
    Replica,
}

/// The topology a cluster backend reports, before the per-node probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    pub(crate) cluster_state: Option<String>,
    pub(crate) nodes: Vec<NodeObservation>,
}

/// One node's address and role, and later its probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeObservation {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) role: NodeRole,
    pub(crate) tls_version: Option<String>,
    pub(crate) anonymous_refused: Option<bool>,
    pub(crate) cluster_state: Option<String>,
}

impl NodeObservation {
    pub(crate) fn new(host: String, port: u16, role: NodeRole) -> Self {
        Self {
            host,
            port,
            role,
            tls_version: None,
            anonymous_refused: None,
            cluster_state: None,
        }
    }
}

/// The cluster checks and status (`None`, `[]` for a single node).
fn cluster_checks(topology: Option<Topology>) -> (Option<ClusterStatus>, Vec<Check>) {
    let Some(t) = topology else {
        return (None, Vec::new());
    };
    let state_check = match t.cluster_state.as_deref() {
        Some("ok") => Check::pass(CheckName::ClusterState, "cluster_state:ok"),
        Some(other) => Check::fail(
            CheckName::ClusterState,
            Impact::Degraded,
            format!("cluster_state:{other}"),
        ),
        None => Check::unobserved(CheckName::ClusterState, "CLUSTER INFO did not answer"),
    };
    let addresses = |weak: &dyn Fn(&NodeObservation) -> bool| -> Vec<String> {
        t.nodes
            .iter()
            .filter(|n| weak(n))
            .map(|n| format!("{}:{}", n.host, n.port))
            .collect()
    };
    // Observed open: a node answered an anonymous client. Not observed: a node that did not
    // answer (down, failing over) or did not complete a verified handshake.
    let open = addresses(&|n| n.anonymous_refused == Some(false));
    let weak = addresses(&|n| n.tls_version.is_none() || n.anonymous_refused != Some(true));
    let nodes_check = if t.nodes.is_empty() {
        Check::unobserved(CheckName::ClusterNodes, "CLUSTER SLOTS did not answer")
    } else if !open.is_empty() {
        Check::fail(
            CheckName::ClusterNodes,
            Impact::Insecure,
            format!("answering anonymous clients: {}", open.join(", ")),
        )
    } else if weak.is_empty() {
        Check::pass(
            CheckName::ClusterNodes,
            format!(
                "{} nodes: verified TLS, anonymous clients refused",
                t.nodes.len()
            ),
        )
    } else {
        Check::fail(
            CheckName::ClusterNodes,
            Impact::Degraded,
            format!(
                "no verified TLS session or no answer observed: {}",
                weak.join(", ")
            ),
        )
    };
    let status = ClusterStatus {
        cluster_state: t.cluster_state,
        nodes: t
            .nodes
            .into_iter()
            .map(|n| NodeStatus {
                address: format!("{}:{}", n.host, n.port),
                role: n.role,
                tls_version: n.tls_version,
                default_user_disabled: n.anonymous_refused,
                cluster_state: n.cluster_state,
            })
            .collect(),
    };
    (Some(status), vec![state_check, nodes_check])
}

/// Why a connection to Redis was refused, as last observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `WRONGPASS`, `NOAUTH`, `NOPERM` while connecting.
    Authentication(&'static str),
    /// A failed TLS handshake.
    Tls(TlsFailure),
}

impl Refusal {
    pub(crate) fn of(err: &Error) -> Option<Self> {
        match err {
            Error::AuthenticationRefused { code } => Some(Refusal::Authentication(code)),
            Error::Tls { failure } => Some(Refusal::Tls(*failure)),
            _ => None,
        }
    }

    fn detail(self) -> String {
        match self {
            Refusal::Authentication(code) => format!("authentication refused ({code})"),
            Refusal::Tls(failure) => format!("TLS handshake failed: {failure}"),
        }
    }
}

/// What a TLS probe saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsProbe {
    pub(crate) version: Option<String>,
    /// Days left of each certificate in the chain the server presented.
    pub(crate) chain_days: Vec<i64>,
    /// The handshake failed (observed).
    pub(crate) failure: Option<TlsFailure>,
    /// The probe could not run or finish (nothing observed), and why.
    pub(crate) unobserved: Option<String>,
}

/// Days left of one certificate file's certificates (`Err`: unreadable, with a reason).
pub(crate) fn file_days(path: &Path) -> Result<Vec<i64>, &'static str> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|_| "unreadable")?
        .collect::<Result<_, _>>()
        .map_err(|_| "not PEM")?;
    certs_days(&certs)
}

/// Days left of in-memory PEM certificates.
pub(crate) fn pem_days(pem: &[u8]) -> Result<Vec<i64>, &'static str> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| "not PEM")?;
    certs_days(&certs)
}

fn certs_days(certs: &[CertificateDer<'static>]) -> Result<Vec<i64>, &'static str> {
    if certs.is_empty() {
        return Err("no certificate in the file");
    }
    certs
        .iter()
        .map(|der| {
            der_days(der).ok_or(if cfg!(feature = "certificate-expiry") {
                "not an X.509 certificate"
            } else {
                "expiry not read (feature `certificate-expiry` is off)"
            })
        })
        .collect()
}

/// Days until a DER certificate's `notAfter` (negative once expired). `None` without the
/// `certificate-expiry` feature (the checks are then reported as not observed).
#[cfg(feature = "certificate-expiry")]
pub(crate) fn der_days(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Some((cert.validity().not_after.timestamp() - now).div_euclid(86_400))
}

/// Without the `certificate-expiry` feature no certificate is read.
#[cfg(not(feature = "certificate-expiry"))]
pub(crate) fn der_days(_der: &[u8]) -> Option<i64> {
    None
}

/// Everything the cache observed, gathered by [`crate::SealedCache::security_status`].
pub(crate) struct Observations<'a> {
    pub(crate) environment: &'a EnvironmentInfo,
    pub(crate) uses_tls: bool,
    pub(crate) ping: Result<(), Error>,
    pub(crate) whoami: Result<String, Error>,
    /// The last refusal the connection saw (kept while the breaker skips calls).
    pub(crate) refusal: Option<Refusal>,
    pub(crate) probe: Option<TlsProbe>,
    pub(crate) anonymous_refused: Option<bool>,
    /// A client without a certificate is refused (`None`: not configured or not observed).
    pub(crate) client_certificate_required: Option<bool>,
    /// Keyring reloads since start.
    pub(crate) keyring_reloads: KeyringReloadStatus,
    /// The generation of the Redis password in use.
    pub(crate) redis_password_generation: Option<String>,
    /// Days left of the configured client certificate (`None`: none configured).
    pub(crate) client_cert: Option<Result<Vec<i64>, &'static str>>,
    /// Days left of the pinned CA (`None`: none pinned).
    pub(crate) ca_cert: Option<Result<Vec<i64>, &'static str>>,
    pub(crate) primary_key_id: u32,
    pub(crate) decrypt_only_key_ids: Vec<u32>,
    pub(crate) recent_security_events: u64,
    pub(crate) security_events_by_type: BTreeMap<String, u64>,
    pub(crate) write_failures: BTreeMap<String, u64>,
    /// Redis Cluster only: the nodes, probed.
    pub(crate) topology: Option<Topology>,
    /// L1 coherence (`None`: L1 or coherence off).
    pub(crate) l1_coherence: Option<L1CoherenceStatus>,
}

fn certificate_check(
    name: CheckName,
    what: &str,
    days: Option<&Result<Vec<i64>, &'static str>>,
    absent: Check,
) -> (Check, Option<i64>) {
    match days {
        None => (absent, None),
        Some(Err(why)) => (
            Check::fail(name, Impact::Degraded, format!("{what}: {why}")),
            None,
        ),
        Some(Ok(days)) => match days.iter().min().copied() {
            Some(d) if d > CERTIFICATE_WARNING_DAYS => (
                Check::pass(name, format!("{what} expires in {d} days")),
                Some(d),
            ),
            Some(d) if d < 0 => (
                Check::fail(name, Impact::Degraded, format!("{what} has expired")),
                Some(d),
            ),
            Some(d) => (
                Check::fail(
                    name,
                    Impact::Degraded,
                    format!("{what} expires in {d} days (renew before {CERTIFICATE_WARNING_DAYS})"),
                ),
                Some(d),
            ),
            None => (Check::unobserved(name, format!("{what}: none read")), None),
        },
    }
}

/// Turns observations into the status (the one place that assesses).
pub(crate) fn assess(o: Observations<'_>) -> SecurityStatus {
    let env = o.environment;
    let policy = Policy::for_env(env);
    let strict = policy.is_strict();
    let refusal = match (&o.ping, o.refusal) {
        (Err(e), last) => Refusal::of(e).or(last),
        (Ok(()), _) => None,
    };

    // Transport.
    let (tls_check, tls_version) = match &o.probe {
        None => (
            Check::fail(
                CheckName::TlsNegotiated,
                Impact::Insecure,
                "plaintext connection (redis://), or TLS without certificate verification (#insecure)",
            ),
            None,
        ),
        Some(p) => match (&p.version, p.failure, &p.unobserved) {
            (Some(v), None, _) => (Check::pass(CheckName::TlsNegotiated, v.clone()), Some(v)),
            (_, Some(failure), _) => (
                Check::fail(
                    CheckName::TlsNegotiated,
                    Impact::Degraded,
                    format!("TLS handshake failed: {failure}"),
                ),
                None,
            ),
            (_, None, why) => (
                Check::unobserved(
                    CheckName::TlsNegotiated,
                    why.clone()
                        .unwrap_or_else(|| "no TLS session observed".into()),
                ),
                None,
            ),
        },
    };

    // Identity.
    let user = o.whoami.as_ref().ok().cloned();
    let acl_check = match (&o.whoami, refusal) {
        (Ok(u), _) if u != "default" => {
            Check::pass(CheckName::AclUser, format!("authenticated as {u}"))
        }
        (Ok(_), _) => Check::fail(
            CheckName::AclUser,
            Impact::Insecure,
            "authenticated as the default user",
        ),
        (Err(_), Some(Refusal::Authentication(code))) => Check::fail(
            CheckName::AclUser,
            Impact::Degraded,
            format!("authentication refused ({code}): check REDIS_USERNAME and the password"),
        ),
        (Err(_), _) => Check::unobserved(CheckName::AclUser, "ACL WHOAMI unanswered"),
    };
    let anonymous_check = match o.anonymous_refused {
        Some(true) => Check::pass(
            CheckName::DefaultUserDisabled,
            "an unauthenticated client is refused",
        ),
        Some(false) => Check::fail(
            CheckName::DefaultUserDisabled,
            Impact::Insecure,
            "an unauthenticated client is served",
        ),
        None => Check::unobserved(CheckName::DefaultUserDisabled, "could not be observed"),
    };

    // Certificates: each its own check, and the earliest expiry overall.
    let mut earliest: Option<i64> = None;
    let mut certificate_checks = Vec::new();
    if o.uses_tls {
        let server_days = o.probe.as_ref().and_then(|p| {
            (!p.chain_days.is_empty()).then(|| Ok::<_, &'static str>(p.chain_days.clone()))
        });
        let reads = [
            (
                CheckName::ServerCertificate,
                "server certificate",
                server_days,
                Check::unobserved(
                    CheckName::ServerCertificate,
                    "no server certificate observed",
                ),
            ),
            (
                CheckName::ClientCertificate,
                "client certificate",
                o.client_cert.clone(),
                Check::pass(
                    CheckName::ClientCertificate,
                    "no client certificate configured",
                ),
            ),
            (
                CheckName::CaCertificate,
                "pinned CA certificate",
                o.ca_cert.clone(),
                Check::unobserved(
                    CheckName::CaCertificate,
                    "no pinned CA (REDIS_TLS_CA_PATH): its expiry cannot be read",
                ),
            ),
        ];
        for (name, what, days, absent) in reads {
            let (check, d) = certificate_check(name, what, days.as_ref(), absent);
            earliest = match (earliest, d) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            certificate_checks.push(check);
        }
    }
    let validity = match earliest {
        Some(d) if d > CERTIFICATE_WARNING_DAYS => Check::pass(
            CheckName::CertificateValidity,
            format!("the earliest certificate expires in {d} days"),
        ),
        Some(d) => Check::fail(
            CheckName::CertificateValidity,
            Impact::Degraded,
            format!("a certificate expires in {d} days"),
        ),
        None => Check::unobserved(CheckName::CertificateValidity, "no certificate observed"),
    };

    let available = o.ping.is_ok();
    let available_check = match (&o.ping, refusal) {
        (Ok(()), _) => Check::pass(CheckName::RedisAvailable, "PING answered"),
        (Err(_), Some(r)) => Check::fail(CheckName::RedisAvailable, Impact::Degraded, r.detail()),
        (Err(_), None) => Check::fail(
            CheckName::RedisAvailable,
            Impact::Degraded,
            "Redis unavailable (connection refused, closed or timed out)",
        ),
    };
    let policy_check = if strict {
        Check::pass(
            CheckName::StrictPolicy,
            format!("{} environment", env.environment()),
        )
    } else if policy.development_override() {
        Check::fail(
            CheckName::StrictPolicy,
            Impact::Degraded,
            "REDIS_SECURITY_MODE=development override in force",
        )
    } else {
        Check::fail(
            CheckName::StrictPolicy,
            Impact::Degraded,
            format!("{} environment", env.environment()),
        )
    };

    let tls_enabled = tls_check.passed;
    let named_user = acl_check.passed;
    let mut checks = vec![
        tls_check,
        acl_check,
        anonymous_check,
        Check::pass(
            CheckName::Encryption,
            format!(
                "AES-256-GCM, primary key {}, decrypt-only {:?}",
                o.primary_key_id, o.decrypt_only_key_ids
            ),
        ),
        validity,
    ];
    checks.extend(certificate_checks);
    checks.push(available_check);
    checks.push(policy_check);
    if let Some(c) = o.l1_coherence {
        checks.push(if c.subscribed {
            Check::pass(
                CheckName::L1Coherence,
                format!(
                    "invalidation subscription confirmed ({} losses since start)",
                    c.losses
                ),
            )
        } else {
            Check::fail(
                CheckName::L1Coherence,
                Impact::Degraded,
                "invalidation subscription down: L1 bypassed (check the channel grant in the ACL)",
            )
        });
    }
    match o.client_certificate_required {
        Some(true) => checks.push(Check::pass(
            CheckName::ClientCertificateRequired,
            "a TLS client without a certificate is refused",
        )),
        Some(false) => checks.push(Check::fail(
            CheckName::ClientCertificateRequired,
            Impact::Degraded,
            "a TLS client without a certificate is served: Redis does not require client certificates (tls-auth-clients)",
        )),
        // Mutual TLS is configured but the handshake without a certificate observed nothing:
        // said so (a strict environment reads degraded), never left out.
        None if o.uses_tls && o.client_cert.is_some() => checks.push(Check::unobserved(
            CheckName::ClientCertificateRequired,
            "a TLS handshake without a client certificate observed nothing",
        )),
        None => {}
    }
    checks.push(match &o.keyring_reloads.last_refusal {
        None => Check::pass(
            CheckName::KeyringReload,
            format!(
                "{} reloads applied, {} refused since start",
                o.keyring_reloads.applied, o.keyring_reloads.refused
            ),
        ),
        Some(why) => Check::fail(
            CheckName::KeyringReload,
            Impact::Degraded,
            format!("the latest keyring reload was refused, the running keyring is not the file's: {why}"),
        ),
    });
    let (cluster, cluster_checks) = cluster_checks(o.topology);
    checks.extend(cluster_checks);
    SecurityStatus {
        encryption_enabled: true,
        tls_enabled,
        tls_version: tls_version.cloned(),
        authenticated_user: user,
        default_user_disabled: o.anonymous_refused,
        auth_configured: named_user && o.anonymous_refused == Some(true),
        primary_key_id: o.primary_key_id,
        decrypt_only_key_ids: o.decrypt_only_key_ids,
        keyring_reloads: o.keyring_reloads,
        redis_password_generation: o.redis_password_generation,
        client_certificate_required: o.client_certificate_required,
        certificate_expires_in_days: earliest,
        environment: env.environment().to_string(),
        confidence: env.confidence(),
        development_override: policy.development_override(),
        redis_available: available,
        network_isolated: None,
        network_isolation_claimed: None,
        recent_security_events: o.recent_security_events,
        security_events_by_type: o.security_events_by_type,
        write_failures: o.write_failures,
        l1_coherence: o.l1_coherence,
        cluster,
        pending_erasures: None,
        security_level: level(strict, &checks),
        checks,
        strict,
    }
}
