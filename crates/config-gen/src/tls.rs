//! TLS material made in Rust (rcgen, `ring` backend): a CA, a Redis server certificate and a
//! distinct client certificate; and reading a certificate's expiry for the validator.
//!
//! Key type: ECDSA P-256 with SHA-256 for all three. Validity: the CA 5 years
//! ([`CA_VALIDITY_DAYS`]), the server and client certificates 397 days
//! ([`LEAF_VALIDITY_DAYS`], the CA/Browser Forum maximum), starting one hour in the past to absorb
//! clock skew. The server certificate carries serverAuth only, the client certificate clientAuth
//! only, so neither can stand in for the other.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// Days the CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 5 * 365;
/// Days the server and client certificates are valid.
pub const LEAF_VALIDITY_DAYS: i64 = 397;
/// Names every server certificate carries.
pub const DEFAULT_SERVER_NAMES: &[&str] = &["redis", "localhost", "127.0.0.1", "::1"];

/// How [`cluster_node_names`] names cluster nodes: `redis-node-1`, `redis-node-2`, ...
pub const CLUSTER_NODE_NAME_PREFIX: &str = "redis-node-";
/// The common name of the client certificate cluster nodes present to each other (cluster bus
/// and replication, `tls-client-cert-file`); see [`generate_cluster`].
pub const CLUSTER_NODE_CLIENT_NAME: &str = "redis-cluster-node";

/// The host names of `count` cluster nodes, `redis-node-1` to `redis-node-{count}`: the names a
/// cluster's server certificate must carry when nodes announce host names
/// (`cluster-announce-hostname`).
#[must_use]
pub fn cluster_node_names(count: usize) -> Vec<String> {
    (1..=count)
        .map(|i| format!("{CLUSTER_NODE_NAME_PREFIX}{i}"))
        .collect()
}

/// TLS material for a Redis Cluster: [`TlsMaterial`] whose server certificate also names every
/// node, and a distinct client certificate for the nodes themselves.
///
/// With `tls-auth-clients yes`, a node connecting to another (cluster bus, replication) must
/// present a client certificate; the server certificate carries serverAuth only, so the nodes get
/// their own clientAuth certificate (`tls-client-cert-file` / `tls-client-key-file`), distinct
/// from the application's.
#[derive(Debug, Clone)]
pub struct ClusterTlsMaterial {
    /// CA, server certificate (with the node names) and the application's client certificate.
    pub material: TlsMaterial,
    /// The nodes' client certificate (common name [`CLUSTER_NODE_CLIENT_NAME`]).
    pub node_client_cert: String,
    /// Its key.
    pub node_client_key: SecretString,
}

/// Generates [`ClusterTlsMaterial`] for `node_count` nodes: [`generate`] with
/// [`cluster_node_names`]`(node_count)` added to `extra_server_names`, plus the nodes' client
/// certificate.
///
/// # Errors
/// As [`generate`].
pub fn generate_cluster(
    node_count: usize,
    extra_server_names: &[String],
    client_name: &str,
) -> Result<ClusterTlsMaterial> {
    let mut names = extra_server_names.to_vec();
    names.extend(cluster_node_names(node_count));
    let material = generate(&names, client_name)?;
    let (node_client_cert, node_client_key) = issue_client_certificate(
        material.ca_key.expose_secret(),
        CLUSTER_NODE_CLIENT_NAME,
        LEAF_VALIDITY_DAYS,
    )?;
    Ok(ClusterTlsMaterial {
        material,
        node_client_cert,
        node_client_key,
    })
}

/// PEM certificates and keys for a deployment. Private keys are [`SecretString`]s.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA certificate (`secrets/tls/ca.crt`).
    pub ca_cert: String,
    /// The CA private key (`ca/ca.key`, never mounted into a container).
    pub ca_key: SecretString,
    /// The Redis server certificate (`secrets/tls/redis.crt`).
    pub server_cert: String,
    /// Its key (`secrets/tls/redis.key`).
    pub server_key: SecretString,
    /// The client certificate (`secrets/tls/client.crt`).
    pub client_cert: String,
    /// Its key (`secrets/tls/client.key`).
    pub client_key: SecretString,
}

fn tls_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Tls { what, source }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "sealcache");
    dn.push(DnType::CommonName, common);
    dn
}

/// The CA's distinguished name, as [`generate`] writes it (an issuer must repeat it exactly).
fn ca_name() -> DistinguishedName {
    name("sealcache deployment CA")
}

/// Issues a new client certificate (and key) from a deployment's CA key, valid for
/// `validity_days`: the renewal of `secrets/tls/client.crt` without a new CA. Returns the
/// certificate PEM and the key PEM.
///
/// # Errors
/// [`Error::Tls`] if the CA key is not a PEM private key or signing fails.
pub fn issue_client_certificate(
    ca_key_pem: &str,
    client_name: &str,
    validity_days: i64,
) -> Result<(String, SecretString)> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(tls_err("CA key"))?;
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let (cert, key) = client_certificate(&issuer, client_name, validity_days)?;
    Ok((cert.pem(), SecretString::new(key.serialize_pem())))
}

/// Issues a new Redis server certificate (and key) from a deployment's CA key, naming
/// [`DEFAULT_SERVER_NAMES`] plus `extra_names` (host names or IP addresses), valid for
/// `validity_days`, serverAuth only like the one [`generate`] makes. Returns the certificate PEM
/// and the key PEM.
///
/// This is the certificate for a platform whose host names were not known when the directory
/// was generated (Kubernetes pod DNS names such as
/// `redis-0.redis-cluster.sealcache.svc.cluster.local`): the clients keep pinning the same CA.
/// Only the command that issues it reads the CA key; the key never goes into a container.
///
/// # Errors
/// [`Error::Tls`] if the CA key is not a PEM private key, a name is invalid or signing fails.
pub fn issue_server_certificate(
    ca_key_pem: &str,
    extra_names: &[String],
    validity_days: i64,
) -> Result<(String, SecretString)> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(tls_err("CA key"))?;
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let mut names: Vec<String> = DEFAULT_SERVER_NAMES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for extra in extra_names {
        if !names.contains(extra) {
            names.push(extra.clone());
        }
    }
    let (cert, key) = server_certificate(&issuer, names, validity_days)?;
    Ok((cert.pem(), SecretString::new(key.serialize_pem())))
}

/// A server certificate (and its key) for `names`, signed by `issuer`: serverAuth only.
fn server_certificate(
    issuer: &Issuer<'_, &KeyPair>,
    names: Vec<String>,
    validity_days: i64,
) -> Result<(rcgen::Certificate, KeyPair)> {
    let server_key = KeyPair::generate().map_err(tls_err("server key"))?;
    let mut server = CertificateParams::new(names).map_err(tls_err("server names"))?;
    server.distinguished_name = name("redis");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    validity(&mut server, validity_days);
    let cert = server
        .signed_by(&server_key, issuer)
        .map_err(tls_err("server certificate"))?;
    Ok((cert, server_key))
}

/// The CA's parameters (name, constraints, usages), the same for generation and for issuing.
fn ca_params() -> Result<CertificateParams> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
    ca.distinguished_name = ca_name();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(ca)
}

/// A client certificate (and its key) named `client_name`, signed by `issuer`.
fn client_certificate(
    issuer: &Issuer<'_, &KeyPair>,
    client_name: &str,
    validity_days: i64,
) -> Result<(rcgen::Certificate, KeyPair)> {
    let client_key = KeyPair::generate().map_err(tls_err("client key"))?;
    let mut client =
        CertificateParams::new(Vec::<String>::new()).map_err(tls_err("client parameters"))?;
    client.distinguished_name = name(client_name);
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.use_authority_key_identifier_extension = true;
    validity(&mut client, validity_days);
    let cert = client
        .signed_by(&client_key, issuer)
        .map_err(tls_err("client certificate"))?;
    Ok((cert, client_key))
}

/// Generates a CA, a server certificate for [`DEFAULT_SERVER_NAMES`] plus `extra_server_names`,
/// and a client certificate whose common name is `client_name`.
///
/// A name that parses as an IP address becomes an IP address SAN (`iPAddress`), any other a DNS
/// name SAN: nodes that announce addresses (`cluster-announce-ip` without a host name) are
/// verified against them (`cargo xtask partitions` runs a cluster that way).
///
/// # Errors
/// [`Error::Tls`] if a name is invalid or key generation fails.
pub fn generate(extra_server_names: &[String], client_name: &str) -> Result<TlsMaterial> {
    let ca_key = KeyPair::generate().map_err(tls_err("CA key"))?;
    let mut ca = ca_params()?;
    validity(&mut ca, CA_VALIDITY_DAYS);
    let ca_cert = ca.self_signed(&ca_key).map_err(tls_err("CA certificate"))?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut names: Vec<String> = DEFAULT_SERVER_NAMES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for extra in extra_server_names {
        if !names.contains(extra) {
            names.push(extra.clone());
        }
    }
    let (server_cert, server_key) = server_certificate(&issuer, names, LEAF_VALIDITY_DAYS)?;

    let (client_cert, client_key) = client_certificate(&issuer, client_name, LEAF_VALIDITY_DAYS)?;

    Ok(TlsMaterial {
        ca_cert: ca_cert.pem(),
        ca_key: SecretString::new(ca_key.serialize_pem()),
        server_cert: server_cert.pem(),
        server_key: SecretString::new(server_key.serialize_pem()),
        client_cert: client_cert.pem(),
        client_key: SecretString::new(client_key.serialize_pem()),
    })
}

/// What the validator reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Whole days until `notAfter` (negative once expired).
    pub days_until_expiry: i64,
    /// The subject's distinguished name, as text.
    pub subject: String,
    /// The certificate's SHA-256-free identity: its DER bytes, for "distinct certificates" checks.
    pub der_len: usize,
    /// The serial number in hex.
    pub serial: String,
}

/// Reads the first certificate of a PEM text.
///
/// # Errors
/// [`Error::Certificate`] if it is not a PEM certificate.
pub fn certificate_facts(pem: &[u8]) -> Result<CertificateFacts> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| Error::Certificate)?;
    let cert = pem.parse_x509().map_err(|_| Error::Certificate)?;
    let not_after = cert.validity().not_after.timestamp();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Ok(CertificateFacts {
        days_until_expiry: (not_after - now).div_euclid(86_400),
        subject: cert.subject().to_string(),
        der_len: pem.contents.len(),
        serial: cert.raw_serial_as_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_distinct_and_valid() {
        let m = generate(&["redis.internal".to_owned()], "cache_app").unwrap();
        assert_ne!(m.server_cert, m.client_cert);
        assert_ne!(m.server_key.expose_secret(), m.client_key.expose_secret());
        for cert in [&m.ca_cert, &m.server_cert, &m.client_cert] {
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        }
        let server = certificate_facts(m.server_cert.as_bytes()).unwrap();
        assert!(
            (395..=397).contains(&server.days_until_expiry),
            "{server:?}"
        );
        assert!(server.subject.contains("redis"));
        let ca = certificate_facts(m.ca_cert.as_bytes()).unwrap();
        assert!(ca.days_until_expiry > 1800);
        let client = certificate_facts(m.client_cert.as_bytes()).unwrap();
        assert_ne!(client.serial, server.serial);
        assert!(format!("{m:?}").contains("SecretString(..)"));
        assert!(certificate_facts(b"not a certificate").is_err());
    }

    #[test]
    fn an_issued_server_certificate_names_the_extra_hosts_and_chains_to_the_same_ca() {
        let m = generate(&[], "cache_app").unwrap();
        let host = "redis-0.redis-cluster.sealcache.svc.cluster.local".to_owned();
        let (cert, key) =
            issue_server_certificate(m.ca_key.expose_secret(), std::slice::from_ref(&host), 30)
                .unwrap();
        assert!(key.expose_secret().contains("PRIVATE KEY"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let parsed = pem.parse_x509().unwrap();
        let sans = format!(
            "{:?}",
            parsed.subject_alternative_name().unwrap().unwrap().value
        );
        assert!(sans.contains(&host) && sans.contains("localhost"), "{sans}");
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(m.ca_cert.as_bytes()).unwrap();
        let ca = ca_pem.parse_x509().unwrap();
        assert_eq!(parsed.issuer(), ca.subject());
        // Issued by this CA's key: the authority key id is the CA's subject key id.
        let aki = parsed
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.clone()
                }
                _ => None,
            });
        let ski = ca
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.clone())
                }
                _ => None,
            });
        assert!(aki.is_some() && aki == ski, "{aki:?} {ski:?}");
        let facts = certificate_facts(cert.as_bytes()).unwrap();
        assert!((28..=30).contains(&facts.days_until_expiry), "{facts:?}");
        assert!(issue_server_certificate("not a key", &[], 30).is_err());
    }

    #[test]
    fn an_address_among_the_server_names_is_an_ip_san() {
        let m = generate_cluster(6, &["10.213.7.3".to_owned()], "cache_app").unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(m.material.server_cert.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let names = &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        let address = x509_parser::extensions::GeneralName::IPAddress(&[10, 213, 7, 3]);
        assert!(names.contains(&address), "{names:?}");
        assert!(
            names.contains(&x509_parser::extensions::GeneralName::DNSName(
                "redis-node-1"
            )),
            "{names:?}"
        );
    }

    #[test]
    fn cluster_material_names_every_node_and_has_a_distinct_node_client_certificate() {
        assert_eq!(
            cluster_node_names(3),
            vec!["redis-node-1", "redis-node-2", "redis-node-3"]
        );
        assert!(cluster_node_names(0).is_empty());
        let m = generate_cluster(6, &["redis.internal".to_owned()], "cache_app").unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(m.material.server_cert.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| format!("{n}"))
            .collect();
        for name in cluster_node_names(6)
            .into_iter()
            .chain(["redis.internal".to_owned(), "localhost".to_owned()])
        {
            assert!(sans.iter().any(|s| s.contains(&name)), "{name} in {sans:?}");
        }
        let node = certificate_facts(m.node_client_cert.as_bytes()).unwrap();
        let app = certificate_facts(m.material.client_cert.as_bytes()).unwrap();
        assert!(node.subject.contains(CLUSTER_NODE_CLIENT_NAME), "{node:?}");
        assert_ne!(node.serial, app.serial);
        assert!(!format!("{m:?}").contains("PRIVATE KEY"));
    }
}
