//! The Redis server certificate the pods present: the directory's own when it names every host
//! the clients connect to, otherwise one issued from the directory's CA for the Kubernetes names
//! (kept in the secret output and reused while it still fits, so a rendering never churns it).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sealcache_config_gen::layout;
use sealcache_config_gen::tls::{LEAF_VALIDITY_DAYS, issue_server_certificate};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::X509Certificate;
use zeroize::Zeroizing;

use super::names::{self, REDIS_SERVICE};
use super::options::RenderOptions;
use super::source::{SecretFile, Source, file};
use crate::error::{Error, Result, io};

/// A kept certificate is issued anew this many days before it expires (the validator warns 30
/// days before any certificate expires).
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// Where the server certificate the pods get came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerCertificate {
    /// The directory's `secrets/tls/redis.crt` names every host (its CA key was not read).
    FromDirectory,
    /// The one an earlier rendering issued (kept in the secret output) still fits.
    Reused,
    /// Issued now from the directory's CA key, for the Kubernetes names.
    Issued,
}

/// The certificate and key the Redis pods mount as `redis.crt` and `redis.key`.
#[derive(Debug)]
pub(crate) struct ServerTls {
    pub(crate) cert: SecretFile,
    pub(crate) key: SecretFile,
    pub(crate) origin: ServerCertificate,
}

/// The host names clients connect to: the Service `redis` (single node), or every node's pod DNS
/// name (cluster: the names the nodes announce and redirect to).
pub(crate) fn required_names(source: &Source, options: &RenderOptions) -> Vec<String> {
    match &source.cluster {
        None => vec![REDIS_SERVICE.to_owned()],
        Some(record) => (0..record.nodes.len())
            .map(|i| names::cluster_node_host(i, &options.namespace, &options.cluster_domain))
            .collect(),
    }
}

/// Chooses (or issues) the server certificate; `kept` is the secret output's directory for an
/// issued one.
pub(crate) fn server_tls(
    source: &Source,
    options: &RenderOptions,
    kept: &Path,
) -> Result<ServerTls> {
    let names = required_names(source, options);
    let dir = &source.dir;
    let ca_path = dir.join(layout::CA_CERT);
    let ca = facts(&source.ca_cert.contents, &ca_path)?;
    let own_path = dir.join(layout::SERVER_CERT);
    let own = file(dir, layout::SERVER_CERT)?;
    if facts(&own.contents, &own_path)?.fits(&names, &ca) {
        return Ok(ServerTls {
            cert: own,
            key: file(dir, layout::SERVER_KEY)?,
            origin: ServerCertificate::FromDirectory,
        });
    }
    let kept_cert = kept.join(SERVER_CERT_NAME);
    let kept_key = kept.join(SERVER_KEY_NAME);
    if kept_cert.is_file() && kept_key.is_file() {
        let pem = std::fs::read(&kept_cert).map_err(io("read", &kept_cert))?;
        // A kept file that no longer parses is replaced, not an error: it is our own output.
        if facts(&pem, &kept_cert).is_ok_and(|f| f.fits(&names, &ca)) {
            return Ok(ServerTls {
                cert: file(kept, SERVER_CERT_NAME)?,
                key: file(kept, SERVER_KEY_NAME)?,
                origin: ServerCertificate::Reused,
            });
        }
    }
    let ca_key_path = dir.join(layout::CA_KEY);
    let ca_key = Zeroizing::new(
        std::fs::read_to_string(&ca_key_path).map_err(io("read the CA key", &ca_key_path))?,
    );
    // The short names too (`redis-0.redis-cluster`), for clients that rely on the search path.
    let mut all = names.clone();
    if source.cluster.is_some() {
        let suffix = format!(".{}.svc.{}", options.namespace, options.cluster_domain);
        all.extend(
            names
                .iter()
                .filter_map(|n| n.strip_suffix(&suffix).map(str::to_owned)),
        );
    }
    let (cert, key) = issue_server_certificate(&ca_key, &all, LEAF_VALIDITY_DAYS)?;
    Ok(ServerTls {
        cert: SecretFile {
            name: SERVER_CERT_NAME.to_owned(),
            contents: Zeroizing::new(cert.into_bytes()),
        },
        key: SecretFile {
            name: SERVER_KEY_NAME.to_owned(),
            contents: Zeroizing::new(key.expose_secret().as_bytes().to_vec()),
        },
        origin: ServerCertificate::Issued,
    })
}

/// The server certificate's file name in the pods (and in the kept copy).
pub(crate) const SERVER_CERT_NAME: &str = "redis.crt";
/// The server key's file name.
pub(crate) const SERVER_KEY_NAME: &str = "redis.key";

/// What deciding on a certificate needs from it.
#[derive(Debug)]
struct Facts {
    dns_names: Vec<String>,
    days_left: i64,
    /// Subject key id (a CA) or authority key id (a leaf).
    key_id: Option<Vec<u8>>,
}

impl Facts {
    /// Names every host, was issued by `ca`'s key, and is not about to expire.
    fn fits(&self, names: &[String], ca: &Facts) -> bool {
        self.days_left > RENEW_BEFORE_DAYS
            && self.key_id.is_some()
            && self.key_id == ca.key_id
            && names
                .iter()
                .all(|n| self.dns_names.iter().any(|san| covers(san, n)))
    }
}

fn facts(pem: &[u8], path: &Path) -> Result<Facts> {
    let bad = || Error::Certificate {
        path: path.to_path_buf(),
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| bad())?;
    let cert = pem.parse_x509().map_err(|_| bad())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(Facts {
        dns_names: dns_names(&cert),
        days_left: (cert.validity().not_after.timestamp() - now).div_euclid(86_400),
        key_id: key_id(&cert),
    })
}

fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The authority key id of a leaf, or the subject key id of a CA.
fn key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    let mut subject = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) if !cert.is_ca() => {
                return aki.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::SubjectKeyIdentifier(ski) => subject = Some(ski.0.to_vec()),
            _ => {}
        }
    }
    if cert.is_ca() { subject } else { None }
}

/// Whether the SAN `san` covers `host` (exactly, or as a wildcard for its first label).
pub(crate) fn covers(san: &str, host: &str) -> bool {
    if san.eq_ignore_ascii_case(host) {
        return true;
    }
    match (san.strip_prefix("*."), host.split_once('.')) {
        (Some(rest), Some((label, host_rest))) => {
            !label.is_empty() && rest.eq_ignore_ascii_case(host_rest)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("redis", "redis"));
        assert!(covers(
            "*.redis-cluster.ns.svc",
            "redis-0.redis-cluster.ns.svc"
        ));
        assert!(!covers("*.ns.svc", "redis-0.redis-cluster.ns.svc"));
        assert!(!covers("*.redis-cluster.ns.svc", "redis-cluster.ns.svc"));
        assert!(!covers("redis-node-1", "redis-0.redis-cluster.ns.svc"));
    }
}
