//! [`Observations`] and [`assess`]: the one place that turns what was observed into the status.

use std::collections::BTreeMap;

use sealcache_env_detect::{EnvironmentInfo, Policy};

use crate::error::Error;
use crate::keyring_reload::KeyringReloadStatus;

use super::certificates::certificate_check;
use super::cluster::cluster_checks;
use super::{
    CERTIFICATE_WARNING_DAYS, Check, CheckName, Impact, L1CoherenceStatus, Refusal, SecurityStatus,
    TlsProbe, Topology,
};

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
    let mut status = SecurityStatus::new(strict, checks);
    status.encryption_enabled = true;
    status.tls_enabled = tls_enabled;
    status.tls_version = tls_version.cloned();
    status.authenticated_user = user;
    status.default_user_disabled = o.anonymous_refused;
    status.auth_configured = named_user && o.anonymous_refused == Some(true);
    status.primary_key_id = o.primary_key_id;
    status.decrypt_only_key_ids = o.decrypt_only_key_ids;
    status.keyring_reloads = o.keyring_reloads;
    status.redis_password_generation = o.redis_password_generation;
    status.client_certificate_required = o.client_certificate_required;
    status.certificate_expires_in_days = earliest;
    status.environment = env.environment().to_string();
    status.confidence = env.confidence();
    status.development_override = policy.development_override();
    status.redis_available = available;
    status.recent_security_events = o.recent_security_events;
    status.security_events_by_type = o.security_events_by_type;
    status.write_failures = o.write_failures;
    status.l1_coherence = o.l1_coherence;
    status.cluster = cluster;
    status
}
