//! `security_status()`: what is observed, not what is configured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Serialize;

use crate::connect::RedisConfig;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityLevel {
    /// Every check passed in a strict environment.
    ProductionReady,
    /// Secure, but something needs attention (Redis unavailable, certificate expiring, ...).
    Degraded,
    /// A core protection is missing (TLS, authentication, encryption).
    Insecure,
    /// Development mode (environment or explicit override).
    Development,
}

/// One observed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name (`tls_negotiated`, ...).
    pub name: &'static str,
    /// Passed.
    pub passed: bool,
    /// What was observed (never a secret).
    pub detail: String,
}

/// The observed security posture of a cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityStatus {
    /// Values are sealed (always true: the cache cannot store plaintext).
    pub encryption_enabled: bool,
    /// A TLS session was negotiated with Redis (observed by a handshake).
    pub tls_enabled: bool,
    /// The negotiated protocol version, if any.
    pub tls_version: Option<String>,
    /// The ACL user Redis says we are (`ACL WHOAMI`).
    pub authenticated_user: Option<String>,
    /// An unauthenticated connection is refused (the `default` user is off or protected).
    pub default_user_disabled: Option<bool>,
    /// Authentication is in force: a named user, and anonymous access refused.
    pub auth_configured: bool,
    /// The sealing key id.
    pub primary_key_id: u32,
    /// Keys kept for decryption only.
    pub decrypt_only_key_ids: Vec<u32>,
    /// Days until the certificate the server presents expires.
    pub certificate_expires_in_days: Option<i64>,
    /// Detected environment.
    pub environment: String,
    /// Its confidence.
    pub confidence: f64,
    /// `REDIS_SECURITY_MODE=development` in force.
    pub development_override: bool,
    /// Redis answered `PING`.
    pub redis_available: bool,
    /// Security events in the last hour.
    pub recent_security_events: u64,
    /// Totals per type since start.
    pub security_events_by_type: BTreeMap<String, u64>,
    /// Writes that did not reach Redis since start, by reason (`oom`, `readonly`, `noperm`,
    /// `refused`, `unavailable`): each was refused to its caller and cached nowhere.
    pub write_failures: BTreeMap<String, u64>,
    /// The verdict.
    pub security_level: SecurityLevel,
    /// Every check.
    pub checks: Vec<Check>,
}

/// What a TLS probe saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsProbe {
    pub(crate) version: Option<String>,
    pub(crate) days_left: Option<i64>,
    pub(crate) error: Option<String>,
}

/// Handshakes with the server using the cache's own TLS settings and reads the certificate it
/// presents. Needs a pinned CA (without one there is nothing of ours to verify against).
pub(crate) async fn probe_tls(config: &RedisConfig) -> TlsProbe {
    match probe(config).await {
        Ok(p) => p,
        Err(e) => TlsProbe {
            error: Some(e),
            ..TlsProbe::default()
        },
    }
}

async fn probe(config: &RedisConfig) -> Result<TlsProbe, String> {
    let (host, port) = config.host_port().ok_or("no host in REDIS_URL")?;
    let ca_path = config
        .ca_path
        .as_ref()
        .ok_or("no pinned CA (REDIS_TLS_CA_PATH)")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_path).map_err(|_| "CA file unreadable")? {
        roots
            .add(cert.map_err(|_| "CA file is not PEM")?)
            .map_err(|_| "CA certificate rejected")?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| "no TLS versions")?
    .with_root_certificates(roots);
    let tls = match (&config.client_cert_path, &config.client_key_path) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|_| "client certificate unreadable")?
                .collect::<Result<_, _>>()
                .map_err(|_| "client certificate is not PEM")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|_| "client key unreadable")?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|_| "client certificate rejected")?
        }
        _ => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(host.clone()).map_err(|_| "invalid server name")?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let fut = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|_| "TCP connect failed")?;
        connector
            .connect(name, tcp)
            .await
            .map_err(|_| "TLS handshake failed")
    };
    let stream = tokio::time::timeout(config.connect_timeout + Duration::from_millis(500), fut)
        .await
        .map_err(|_| "TLS probe timed out")??;
    let (_, session) = stream.get_ref();
    let version = session.protocol_version().map(|v| format!("{v:?}"));
    let days_left = session
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            (cert.validity().not_after.timestamp() - now).div_euclid(86_400)
        });
    Ok(TlsProbe {
        version,
        days_left,
        error: None,
    })
}
