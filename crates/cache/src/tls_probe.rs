//! A TLS handshake with Redis using the cache's own TLS settings: what was negotiated, the chain
//! the server presents, and what failed (for `security_status`).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::connect::RedisConfig;
use crate::error::TlsFailure;
use crate::status::{TlsProbe, der_days};

/// Handshakes with the server and sends `PING` (a server that refuses the client certificate
/// says so only after a TLS 1.3 handshake, on the first read). Needs a pinned CA: without one
/// there is nothing of ours to verify against, and the probe reports that it observed nothing.
pub(crate) async fn probe_tls(config: &RedisConfig) -> TlsProbe {
    match probe(config).await {
        Ok(p) => p,
        Err(why) => TlsProbe {
            unobserved: Some(why.to_owned()),
            ..TlsProbe::default()
        },
    }
}

fn client_config(config: &RedisConfig) -> Result<rustls::ClientConfig, &'static str> {
    let ca: Vec<CertificateDer<'static>> = match (&config.ca_pem, &config.ca_path) {
        (Some(pem), _) => CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|_| "CA is not PEM")?,
        (None, Some(path)) => CertificateDer::pem_file_iter(path)
            .map_err(|_| "CA file unreadable")?
            .collect::<Result<_, _>>()
            .map_err(|_| "CA file is not PEM")?,
        (None, None) => return Err("no pinned CA (REDIS_TLS_CA_PATH)"),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert).map_err(|_| "CA certificate rejected")?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| "no TLS versions")?
    .with_root_certificates(roots);
    let chain: Option<Vec<CertificateDer<'static>>> =
        match (&config.client_cert_pem, &config.client_cert_path) {
            (Some(pem), _) => Some(
                CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<_, _>>()
                    .map_err(|_| "client certificate is not PEM")?,
            ),
            (None, Some(path)) => Some(
                CertificateDer::pem_file_iter(path)
                    .map_err(|_| "client certificate unreadable")?
                    .collect::<Result<_, _>>()
                    .map_err(|_| "client certificate is not PEM")?,
            ),
            (None, None) => None,
        };
    let key: Option<PrivateKeyDer<'static>> =
        match (&config.client_key_pem, &config.client_key_path) {
            (Some(pem), _) => {
                Some(PrivateKeyDer::from_pem_slice(pem).map_err(|_| "client key is not PEM")?)
            }
            (None, Some(path)) => {
                Some(PrivateKeyDer::from_pem_file(path).map_err(|_| "client key unreadable")?)
            }
            (None, None) => None,
        };
    Ok(match (chain, key) {
        (Some(chain), Some(key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|_| "client certificate rejected by rustls")?,
        _ => builder.with_no_client_auth(),
    })
}

fn failure(err: &std::io::Error) -> TlsFailure {
    TlsFailure::find(err).unwrap_or(TlsFailure::Handshake)
}

async fn probe(config: &RedisConfig) -> Result<TlsProbe, &'static str> {
    let (host, port) = config.host_port().ok_or("no host in REDIS_URL")?;
    let name = ServerName::try_from(host.clone()).map_err(|_| "invalid server name")?;
    let fut = async {
        // The certificate files are read off the async workers (a status probe reads them once
        // per node: on a slow filesystem that held a worker, and the requests behind it), within
        // the probe's timeout.
        let tls = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || client_config(&config))
                .await
                .map_err(|_| Err("the TLS settings could not be read"))?
                .map_err(Err)?
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|_| Err("TCP connect failed"))?;
        let mut stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| Ok(failure(&e)))?;
        let (_, session) = stream.get_ref();
        let version = session.protocol_version().map(|v| format!("{v:?}"));
        let chain_days: Vec<i64> = session
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .filter_map(|der| der_days(der))
            .collect();
        // The first read shows a post-handshake refusal (no or rejected client certificate).
        stream
            .write_all(b"PING\r\n")
            .await
            .map_err(|e| Ok(failure(&e)))?;
        let mut reply = [0u8; 64];
        match stream.read(&mut reply).await {
            Ok(0) => Err(Ok(TlsFailure::Handshake)),
            Ok(_) => Ok((version, chain_days)),
            Err(e) => Err(Ok(failure(&e))),
        }
    };
    match tokio::time::timeout(config.connect_timeout + Duration::from_millis(500), fut).await {
        Err(_) => Err("TLS probe timed out"),
        Ok(Err(Err(why))) => Err(why),
        Ok(Err(Ok(failure))) => Ok(TlsProbe {
            failure: Some(failure),
            ..TlsProbe::default()
        }),
        Ok(Ok((version, chain_days))) => Ok(TlsProbe {
            version,
            chain_days,
            failure: None,
            unobserved: None,
        }),
    }
}

/// Handshakes with the cache's TLS settings but without its client certificate, then sends
/// `PING`: `Some(true)` when the server refuses such a client (Redis's `tls-auth-clients yes`),
/// `Some(false)` when it answers (`tls-auth-clients no` or `optional`: the client certificate no
/// longer guards access), `None` when nothing could be observed.
pub(crate) async fn client_certificate_required(config: &RedisConfig) -> Option<bool> {
    let mut without = config.clone();
    without.client_cert_pem = None;
    without.client_cert_path = None;
    without.client_key_pem = None;
    without.client_key_path = None;
    match probe(&without).await {
        Ok(TlsProbe { failure: None, .. }) => Some(false),
        Ok(TlsProbe {
            failure: Some(_), ..
        }) => Some(true),
        Err(_) => None,
    }
}
