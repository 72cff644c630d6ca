//! Redis connection settings and the TLS client (rustls with the `ring` provider only).

use std::path::PathBuf;
use std::time::Duration;

use redis::{ClientTlsConfig, IntoConnectionInfo as _, TlsCertificates};
use zeroize::Zeroizing;

use crate::breaker::BreakerConfig;
use crate::error::{Error, Result};

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default response timeout: a 1 MiB value over TLS on a LAN takes milliseconds; 2 s leaves room
/// for a loaded server without letting a dead one stall callers.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach Redis. `Debug` shows no password.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `rediss://host:port/db` (or `redis://`, only with the development override).
    pub url: String,
    /// ACL user.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<Zeroizing<String>>,
    /// The CA to pin (PEM). Without it the system roots are used.
    pub ca_path: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert_path: Option<PathBuf>,
    /// Client key (PEM).
    pub client_key_path: Option<PathBuf>,
    /// The CA to pin, as PEM in memory (instead of `ca_path`).
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate chain, as PEM in memory (instead of `client_cert_path`).
    pub client_cert_pem: Option<Vec<u8>>,
    /// The client key, as PEM in memory, zeroized on drop (instead of `client_key_path`).
    pub client_key_pem: Option<Zeroizing<Vec<u8>>>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Response timeout of every command.
    pub response_timeout: Duration,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
    /// Redis Cluster seed URLs (`REDIS_CLUSTER_NODES`); empty: the single node `url`. When set,
    /// `url` is the first seed (used for spans and the status probes).
    pub cluster_nodes: Vec<String>,
    /// A connection the application already owns, used instead of connecting.
    existing: Option<Existing>,
}

/// A connection the application handed over ([`RedisConfig::with_connection_manager`],
/// [`RedisConfig::with_cluster_connection`]).
#[derive(Clone)]
pub(crate) enum Existing {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_path", &self.ca_path)
            .field("client_cert_path", &self.client_cert_path)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<in memory>"))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "<in memory>"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field(
                "cluster_nodes",
                &self
                    .cluster_nodes
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field(
                "existing",
                &self
                    .existing
                    .as_ref()
                    .map(|_| "<application-owned connection>"),
            )
            .finish_non_exhaustive()
    }
}

/// The URL without any userinfo.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            // Userinfo ends at the authority's last `@` (a password may itself hold `@`).
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://<redacted>@{host}{tail}"),
                None => url.to_owned(),
            }
        }
        None => "<invalid url>".to_owned(),
    }
}

impl RedisConfig {
    /// A configuration for `url` with default timeouts and breaker.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            username: None,
            password: None,
            ca_path: None,
            client_cert_path: None,
            client_key_path: None,
            ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            breaker: BreakerConfig::default(),
            cluster_nodes: Vec::new(),
            existing: None,
        }
    }

    /// A Redis Cluster reached through `seeds` (`rediss://host:port` each; redis-rs discovers the
    /// rest with `CLUSTER SLOTS`). Credentials and TLS material are set as for one node and used
    /// for every node.
    #[must_use]
    pub fn cluster<I, S>(seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        let mut config = Self::new(seeds.first().cloned().unwrap_or_default());
        config.cluster_nodes = seeds;
        config
    }

    /// Whether this is a Redis Cluster configuration.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty() || matches!(self.existing, Some(Existing::Cluster(_)))
    }

    /// Uses `manager`, a connection the application already owns, instead of connecting. The rest
    /// of this configuration must describe its transport truthfully (URL scheme, ACL user, TLS
    /// material): the policy check and the security status read it, and the status probes
    /// connect with it.
    #[must_use]
    pub fn with_connection_manager(mut self, manager: redis::aio::ConnectionManager) -> Self {
        self.existing = Some(Existing::Single(manager));
        self
    }

    /// Uses `connection`, a Redis Cluster connection the application already owns (as
    /// [`RedisConfig::with_connection_manager`]; set `cluster_nodes` with
    /// [`RedisConfig::cluster`] so the status can probe the nodes).
    #[must_use]
    pub fn with_cluster_connection(
        mut self,
        connection: redis::cluster_async::ClusterConnection,
    ) -> Self {
        self.existing = Some(Existing::Cluster(connection));
        self
    }

    pub(crate) fn take_existing(&mut self) -> Option<Existing> {
        self.existing.take()
    }

    /// Authenticates as `username` with `password`.
    #[must_use]
    pub fn acl_user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self.password = Some(Zeroizing::new(password.into()));
        self
    }

    /// Pins the CA and presents a client certificate.
    #[must_use]
    pub fn tls_files(
        mut self,
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.ca_path = Some(ca.into());
        self.client_cert_path = Some(cert.into());
        self.client_key_path = Some(key.into());
        self
    }

    /// Pins the CA and presents a client certificate, all as PEM in memory (for secrets that come
    /// from a vault or the environment rather than files). Takes precedence over the paths.
    ///
    /// ```
    /// use sealcache::RedisConfig;
    /// # let (ca, cert, key) = ("-----BEGIN CERTIFICATE-----...", "...", "...");
    /// let config = RedisConfig::new("rediss://redis.internal:6379/0")
    ///     .acl_user("cache_app", "password-from-the-vault")
    ///     .tls_pem(ca, cert, key);
    /// assert!(format!("{config:?}").contains("<redacted>"));
    /// ```
    #[must_use]
    pub fn tls_pem(
        mut self,
        ca: impl Into<Vec<u8>>,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.ca_pem = Some(ca.into());
        self.client_cert_pem = Some(cert.into());
        self.client_key_pem = Some(Zeroizing::new(key.into()));
        self
    }

    /// Pins the CA, as PEM in memory, without a client certificate.
    #[must_use]
    pub fn tls_ca_pem(mut self, ca: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(ca.into());
        self
    }

    /// Sets both timeouts.
    #[must_use]
    pub fn timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// Sets the breaker.
    #[must_use]
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// True for `rediss://` (or `valkeys://`, in any case: redis-rs reads both as TLS) with
    /// certificate verification: a `#insecure` fragment (redis-rs's switch that turns
    /// verification off) does not count as TLS for the policy.
    #[must_use]
    pub fn uses_tls(&self) -> bool {
        tls_scheme(&self.url) && !self.skips_verification()
    }

    /// True when the URL carries redis-rs's `#insecure` fragment (no certificate verification).
    #[must_use]
    pub fn skips_verification(&self) -> bool {
        self.url
            .split_once('#')
            .is_some_and(|(_, fragment)| fragment.eq_ignore_ascii_case("insecure"))
    }

    /// A redis-rs client with these settings (TLS, ACL user), for connections beside the cache's
    /// own, such as the ACL LOG poller's.
    ///
    /// # Errors
    /// As building the cache: [`Error::Config`], [`Error::TlsFile`].
    pub fn client(&self) -> Result<redis::Client> {
        client(self)
    }

    /// Host and port from the URL.
    #[must_use]
    pub fn host_and_port(&self) -> Option<(String, u16)> {
        self.host_port()
    }

    /// Host and port from the URL, parsed by the `url` crate: IPv6 literals with or without a
    /// port (`rediss://[::1]:6380/0`, `rediss://[::1]/0`) give the bare address; no port means
    /// 6379. `None` for `unix://` and unparsable URLs.
    pub(crate) fn host_port(&self) -> Option<(String, u16)> {
        let url = url::Url::parse(&self.url).ok()?;
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_owned(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        Some((host, url.port().unwrap_or(6379)))
    }
}

fn read(what: &'static str, path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::TlsFile {
        what,
        path: path.clone(),
        source,
    })
}

/// Installs rustls's `ring` provider as the process default **only when no provider is installed
/// yet**: redis-rs builds its TLS configuration with the process default, and rustls cannot pick
/// one by itself when an application links several. An application that installs its own provider
/// (aws-lc-rs, FIPS) before building the cache keeps it; sealcache's own TLS probe always uses
/// `ring` explicitly and never touches the default.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The connect and response timeouts of `config` for one connection (redis-rs's own defaults,
/// 1 s and 500 ms, are not the configured ones).
pub(crate) fn connection_config(config: &RedisConfig) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout))
}

/// Builds the redis-rs client for `config`: credentials from the settings (never from the URL's
/// userinfo, which is refused), `CLIENT SETINFO` not sent (it is not in the ACL), TLS with the
/// pinned CA and the client certificate.
pub(crate) fn client(config: &RedisConfig) -> Result<redis::Client> {
    install_crypto_provider();
    refuse_credentials_in(&config.url, "REDIS_URL")?;
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| Error::Config(format!("REDIS_URL is not a Redis URL ({:?})", e.kind())))?;
    let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
    if let Some(user) = &config.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password.as_str());
    }
    let info = info.set_redis_settings(settings);
    if !config.uses_tls() {
        return redis::Client::open(info).map_err(|e| Error::Config(format!("{:?}", e.kind())));
    }
    redis::Client::build_with_tls(info, tls_certificates(config)?)
        .map_err(|e| Error::Config(format!("TLS material rejected ({:?})", e.kind())))
}

/// Credentials belong in `REDIS_USERNAME`/`REDIS_PASSWORD_FILE`, never in a URL (it is logged,
/// shown by `ps`, kept in shell history).
fn refuse_credentials_in(url: &str, variable: &str) -> Result<()> {
    if url
        .split_once("://")
        .is_some_and(|(_, r)| r.split('/').next().unwrap_or("").contains('@'))
    {
        return Err(Error::Config(format!(
            "credentials in {variable} are refused: use REDIS_USERNAME and REDIS_PASSWORD_FILE"
        )));
    }
    Ok(())
}

/// The pinned CA and the client certificate, read from memory or files.
fn tls_certificates(config: &RedisConfig) -> Result<TlsCertificates> {
    // Always given: redis-rs would otherwise fall back to its built-in roots. The system's store,
    // when no CA is pinned, is read once per process (see `system_roots`).
    let root_cert = match (&config.ca_pem, &config.ca_path) {
        (Some(pem), _) => Some(pem.clone()),
        (None, Some(p)) => Some(read("the CA certificate", p)?),
        (None, None) => Some(system_roots()?.to_vec()),
    };
    let cert = match (&config.client_cert_pem, &config.client_cert_path) {
        (Some(pem), _) => Some(pem.clone()),
        (None, Some(p)) => Some(read("the client certificate", p)?),
        (None, None) => None,
    };
    let key = match (&config.client_key_pem, &config.client_key_path) {
        (Some(pem), _) => Some(pem.to_vec()),
        (None, Some(p)) => Some(read("the client key", p)?),
        (None, None) => None,
    };
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig {
            client_cert,
            client_key,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "a client certificate needs both the certificate and its key (REDIS_TLS_CERT_PATH and REDIS_TLS_KEY_PATH)".into(),
            ));
        }
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// Whether redis-rs connects to `url` over TLS: its scheme is `rediss` or `valkeys` (URL schemes
/// are case-insensitive). Every such connection is given the pinned CA or the system store; one
/// that is not would trust redis-rs's own default roots.
fn tls_scheme(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
    })
}

/// The system's CA certificates (`rustls-native-certs`: the platform store, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`) as one PEM bundle, read when the first client is built and kept for the life
/// of the process: a TLS connection without a pinned CA trusts what the system trusted then (a
/// changed store needs a restart). redis-rs would read the whole store again on every connection
/// (hundreds of files, on an async worker: it stalled every request in flight while the status
/// probes or a password change opened connections), so it is never left to it.
///
/// # Errors
/// [`Error::Config`] when the store cannot be read completely, or holds no certificate (every
/// handshake would fail).
fn system_roots() -> Result<&'static [u8]> {
    static ROOTS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(roots);
    }
    // Only a complete store is kept: a failed read is tried again by the next client built.
    let loaded = rustls_native_certs::load_native_certs();
    if let Some(first) = loaded.errors.first() {
        return Err(Error::Config(format!(
            "no pinned CA (REDIS_TLS_CA_PATH) and the system's CA certificates could not all be read: {first}"
        )));
    }
    if loaded.certs.is_empty() {
        return Err(Error::Config(
            "no pinned CA (REDIS_TLS_CA_PATH) and the system has no CA certificates".into(),
        ));
    }
    let pems: Vec<pem::Pem> = loaded
        .certs
        .iter()
        .map(|der| pem::Pem::new("CERTIFICATE", der.to_vec()))
        .collect();
    Ok(ROOTS.get_or_init(|| pem::encode_many(&pems).into_bytes()))
}

/// A redis-rs cluster client for `config.cluster_nodes`: the same credentials and TLS material
/// for every node, hard connect and response timeouts, few retries (the breaker and the
/// caller's deadline bound the rest).
pub(crate) fn cluster_client(config: &RedisConfig) -> Result<redis::cluster::ClusterClient> {
    install_crypto_provider();
    let tls = config.uses_tls();
    for seed in &config.cluster_nodes {
        refuse_credentials_in(seed, "REDIS_CLUSTER_NODES")?;
        let seed_tls = tls_scheme(seed);
        if seed_tls != tls
            || seed
                .split_once('#')
                .is_some_and(|(_, f)| f.eq_ignore_ascii_case("insecure"))
        {
            return Err(Error::Config(
                "REDIS_CLUSTER_NODES: every seed must use the same scheme as the first, and none may skip certificate verification (#insecure)".into(),
            ));
        }
    }
    let mut builder =
        redis::cluster::ClusterClient::builder(config.cluster_nodes.iter().map(String::as_str))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout)
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(500);
    if let Some(user) = &config.username {
        builder = builder.username(user);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password.as_str());
    }
    if tls {
        builder = builder
            .tls(redis::TlsMode::Secure)
            .certs(tls_certificates(config)?);
    }
    builder.build().map_err(|e| {
        Error::Config(format!(
            "REDIS_CLUSTER_NODES is not a list of Redis URLs ({:?})",
            e.kind()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::{RedisConfig, tls_certificates};

    /// redis-rs reads every URL whose scheme is `rediss` or `valkeys`, in any case, as TLS: each
    /// is TLS for the policy and gets the pinned CA (or the system store), never redis-rs's own
    /// default roots.
    #[test]
    fn every_scheme_redis_rs_reads_as_tls_is_tls_here() {
        for url in [
            "rediss://redis:6379/0",
            "REDISS://redis:6379/0",
            "Rediss://redis:6379/0",
            "valkeys://redis:6379/0",
        ] {
            assert!(RedisConfig::new(url).uses_tls(), "{url}");
        }
        for url in [
            "redis://redis:6379/0",
            "rediss://redis:6379/0#insecure",
            "REDISS://redis:6379/0#INSECURE",
            "unix:///run/redis.sock",
        ] {
            assert!(!RedisConfig::new(url).uses_tls(), "{url}");
        }
    }

    /// A TLS client is always given its roots: the pinned CA as given, or, with none pinned, the
    /// system's store (read once, the same bytes for every later client). redis-rs given none
    /// would read the system store on every connection, on an async worker.
    #[test]
    fn a_tls_client_always_gets_its_roots_the_pinned_ca_or_the_system_store() {
        let pinned = b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n".to_vec();
        let config = RedisConfig::new("rediss://redis:6379/0").tls_ca_pem(pinned.clone());
        let given = tls_certificates(&config).unwrap();
        assert_eq!(given.root_cert, Some(pinned));
        let unpinned = RedisConfig::new("rediss://redis:6379/0");
        match tls_certificates(&unpinned) {
            Ok(given) => {
                let roots = given.root_cert.expect("the system store");
                assert!(roots.starts_with(b"-----BEGIN CERTIFICATE-----"));
                let again = tls_certificates(&unpinned).unwrap().root_cert.unwrap();
                assert_eq!(again, roots, "read once, the same store for every client");
            }
            // A machine without a CA store: refused with a reason, never left to redis-rs.
            Err(e) => assert!(e.to_string().contains("REDIS_TLS_CA_PATH"), "{e}"),
        }
    }

    #[test]
    fn host_and_port_come_from_a_url_parser() {
        for (url, want) in [
            ("rediss://[::1]:6380/0", Some(("::1", 6380))),
            ("rediss://[::1]/0", Some(("::1", 6379))),
            ("rediss://[2001:db8::7]:7000", Some(("2001:db8::7", 7000))),
            ("rediss://redis:6379/3", Some(("redis", 6379))),
            ("redis://127.0.0.1/0", Some(("127.0.0.1", 6379))),
            (
                "rediss://cache.internal.example:6390/0#frag",
                Some(("cache.internal.example", 6390)),
            ),
            ("unix:///run/redis.sock", None),
            ("not a url", None),
        ] {
            let got = RedisConfig::new(url).host_and_port();
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{url}");
        }
    }
}
