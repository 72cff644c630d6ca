//! `SecuritySettings::load()`: the runtime settings of the cache and server
//! (docs/architecture.md §9), the one input every component reads its configuration from.
//!
//! Precedence, lowest first: built-in defaults, then the TOML file (`SEALCACHE_CONFIG`, or
//! `sealcache.toml` in the working directory when present), then environment variables. TOML keys
//! are the variable names in lower case (`redis_url = "rediss://..."`).
//!
//! Names are checked before anything is read ([`names`]): deprecated aliases of the Python
//! template are read with one warning each, misspellings are errors naming the right variable.
//! Every secret can come from its variable or from a file named by `*_FILE`; setting both is an
//! error naming the pair. A leading byte order mark and trailing CR/LF are removed from secret
//! files and variables. Errors name the setting and its source, never its value.

mod layers;
mod limits;
mod names;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;
use sealcache_codec::Keyring;

use crate::error::{Error, Result};
use crate::secret::SecretString;
use values::{Flex, Raw, Sources, invalid, number, read_secret_file, truthy};

pub use limits::ServerLimits;
pub use names::{ALIASES, NEAR_MISSES, OTHER_VARIABLES, VARIABLES};

/// The default `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "rediss://redis:6379/0";
/// The default ACL user.
pub const DEFAULT_USERNAME: &str = "cache_app";
/// The default key namespace.
pub const DEFAULT_NAMESPACE: &str = "ai_cache";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default `OTEL_SERVICE_NAME`.
pub const DEFAULT_OTEL_SERVICE_NAME: &str = "sealcache-server";
/// The default `SEALCACHE_STATUS_INTERVAL_SECS`.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(15);

/// The loaded settings. `Debug` shows no secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SecuritySettings {
    /// `ENVIRONMENT`, as given (detection is separate).
    pub environment: Option<String>,
    /// `REDIS_SECURITY_MODE=development`: the explicit, logged development override.
    pub development_override: bool,
    /// `REDIS_URL` (alias `CACHE_REDIS_URL`).
    pub redis_url: String,
    /// `REDIS_CLUSTER_NODES`: comma-separated seed URLs of a Redis Cluster (empty: one server at
    /// `redis_url`). Refused together with a `REDIS_URL` other than the default.
    pub redis_cluster_nodes: Vec<String>,
    /// `REDIS_USERNAME` (alias `REDIS_ACL_USERNAME`).
    pub redis_username: String,
    /// `REDIS_PASSWORD` / `REDIS_PASSWORD_FILE` (aliases `REDIS_AUTH`, `REDIS_ACL_PASSWORD`,
    /// `CACHE_REDIS_PASSWORD`).
    pub redis_password: Option<SecretString>,
    /// `REDIS_MONITOR_USERNAME` (the ACL LOG poller's user).
    pub redis_monitor_username: Option<String>,
    /// `REDIS_MONITOR_PASSWORD` / `REDIS_MONITOR_PASSWORD_FILE` (alias `REDIS_CACHE_PASSWORD`).
    pub redis_monitor_password: Option<SecretString>,
    /// `REDIS_TLS_ENABLED` (defaults to what the URL scheme says; aliases `REDIS_USE_TLS`,
    /// `REDIS_SSL`).
    pub redis_tls_enabled: bool,
    /// `REDIS_TLS_CA_PATH` (aliases `REDIS_TLS_CA_CERT`, `REDIS_SSL_CA_CERTS`).
    pub redis_tls_ca_path: Option<PathBuf>,
    /// `REDIS_TLS_CERT_PATH` (alias `REDIS_SSL_CERTFILE`).
    pub redis_tls_cert_path: Option<PathBuf>,
    /// `REDIS_TLS_KEY_PATH` (alias `REDIS_SSL_KEYFILE`).
    pub redis_tls_key_path: Option<PathBuf>,
    /// `REDIS_ENCRYPTION_KEY` / `REDIS_ENCRYPTION_KEYS_FILE`.
    pub keyring: Option<Keyring>,
    /// `REDIS_NETWORK_ISOLATION`: the operator's claim (the server verifies it).
    pub redis_network_isolation: bool,
    /// `REDIS_PROTECTED_MODE`: accepted (the template wrote it) but nothing acts on it at run
    /// time; Redis's `protected-mode yes` is set in its `redis.conf`.
    pub redis_protected_mode: bool,
    /// `CACHE_NAMESPACE` (aliases `REDIS_CACHE_NAMESPACE`, `CACHE_PREFIX`, `CACHE_KEY_PREFIX`).
    pub cache_namespace: String,
    /// `API_KEY` / `API_KEY_FILE` plus `ADDITIONAL_API_KEYS` (comma-separated).
    pub api_keys: Vec<SecretString>,
    /// `SEALCACHE_API_KEYS_FILE`: the scoped API keys (TOML `[[key]]` tables of `id`, `tenant`,
    /// `scopes`, `sha256`; read by the server at start and on `SIGHUP`, see
    /// `sealcache_config_gen::api_keys`).
    pub api_keys_file: Option<PathBuf>,
    /// `SEALCACHE_LISTEN`.
    pub listen: String,
    /// `SEALCACHE_METRICS_PUBLIC`: `/metrics` without authentication.
    pub metrics_public: bool,
    /// `OTEL_SERVICE_NAME`: the `service.name` of the telemetry (default
    /// [`DEFAULT_OTEL_SERVICE_NAME`]).
    pub otel_service_name: String,
    /// `SEALCACHE_STATUS_INTERVAL_SECS`: how often the status gauges (Redis reachability, L1
    /// size) are refreshed (default [`DEFAULT_STATUS_INTERVAL`], at least 1 s).
    pub status_interval: Duration,
    /// The HTTP server's limits (`SEALCACHE_*`).
    pub limits: ServerLimits,
    /// Deprecated names that were used, `(alias, canonical)`, each once, in the order met (the
    /// TOML file's first). Each was also logged once as a warning naming both, never the value.
    pub deprecated_aliases: Vec<(&'static str, &'static str)>,
    /// Where each setting came from, by variable name (`default`, `environment variable`, a
    /// TOML path; with the deprecated name when one was used).
    pub sources: BTreeMap<String, String>,
}

/// A keyring that cannot be used, as an error naming the setting and where it came from.
fn key_error(key: &str, sources: &BTreeMap<String, String>, err: &sealcache_codec::Error) -> Error {
    Error::InvalidSetting {
        key: key.to_owned(),
        source_name: sources.get(key).cloned().unwrap_or_default(),
        problem: err.to_string(),
    }
}

impl SecuritySettings {
    /// Loads the settings of this process: its variables, then `SEALCACHE_CONFIG` or
    /// `./sealcache.toml` when present.
    ///
    /// Variables whose name or value is not UTF-8 are skipped, unless the name is a setting or an
    /// alias: then the value is refused.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`], [`Error::BothPlainAndFileSet`], [`Error::MisspelledSetting`],
    /// [`Error::UnknownSetting`], [`Error::AliasConflict`], [`Error::Io`] for unreadable secret
    /// or settings files, key format errors.
    pub fn load() -> Result<Self> {
        let mut vars = BTreeMap::new();
        for (name, value) in std::env::vars_os() {
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => {
                    vars.insert(name, value);
                }
                Err(_) if names::is_read(values::clean_name(&name)) => {
                    return Err(Error::InvalidSetting {
                        key: name,
                        source_name: "environment variable".to_owned(),
                        problem: "is not valid UTF-8".to_owned(),
                    });
                }
                Err(_) => {}
            }
        }
        let toml = vars
            .get("SEALCACHE_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("sealcache.toml")).filter(|p| p.exists()));
        Self::load_from(&vars, toml.as_deref())
    }

    /// Loads from explicit variables and an optional TOML file (tests, tools).
    ///
    /// # Errors
    /// As [`SecuritySettings::load`]; a named TOML file that does not exist is an error.
    pub fn load_from(vars: &BTreeMap<String, String>, toml: Option<&Path>) -> Result<Self> {
        let mut layers = Vec::with_capacity(2);
        if let Some(path) = toml {
            if !path.exists() {
                return Err(Error::Io {
                    action: "cannot read settings file",
                    path: path.to_path_buf(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            layers.push(layers::toml_file(path)?);
        }
        layers.push(layers::variables(vars)?);

        let mut figment = Figment::from(Serialized::defaults(Raw::new()));
        for layer in &layers {
            figment = figment.merge(layer);
        }
        let raw: Raw = figment.extract().map_err(|e| values::convert(&e))?;
        let mut sources = Sources::new();
        for key in raw.keys() {
            let name = figment
                .find_metadata(key)
                .map_or_else(|| "default".to_owned(), values::describe);
            sources.insert(key.to_ascii_uppercase(), name);
        }
        let mut deprecated_aliases = Vec::new();
        for layer in &layers {
            let source_name = layer.source_name();
            for (canonical, alias) in &layer.via_alias {
                if let Some(source) = sources.get_mut(*canonical)
                    && *source == source_name
                {
                    source.push_str(&format!(" {alias} (deprecated name)"));
                }
            }
            for &(alias, canonical) in &layer.aliases {
                if !deprecated_aliases.contains(&(alias, canonical)) {
                    tracing::warn!(
                        deprecated = alias,
                        canonical,
                        "deprecated setting name: rename {alias} to {canonical}"
                    );
                    deprecated_aliases.push((alias, canonical));
                }
            }
        }
        Self::from_raw(&raw, sources, deprecated_aliases)
    }

    fn from_raw(
        raw: &Raw,
        sources: Sources,
        deprecated_aliases: Vec<(&'static str, &'static str)>,
    ) -> Result<Self> {
        let get = |name: &str| {
            raw.get(&name.to_ascii_lowercase())
                .map(Flex::text)
                .filter(|s| !s.is_empty())
        };
        let secret = |var: &'static str, file_var: &'static str| -> Result<Option<SecretString>> {
            match (get(var), get(file_var)) {
                (Some(_), Some(_)) => Err(Error::BothPlainAndFileSet { var, file_var }),
                (Some(v), None) => Ok(Some(SecretString::new(v))),
                (None, Some(path)) => read_secret_file(Path::new(&path)).map(Some),
                (None, None) => Ok(None),
            }
        };

        let (redis_url, redis_cluster_nodes, redis_tls_enabled) = transport(raw, &sources)?;

        let keyring = match (
            get("REDIS_ENCRYPTION_KEY"),
            get("REDIS_ENCRYPTION_KEYS_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::BothPlainAndFileSet {
                    var: "REDIS_ENCRYPTION_KEY",
                    file_var: "REDIS_ENCRYPTION_KEYS_FILE",
                });
            }
            // Codec errors never echo the key: name the setting and its source around them.
            (Some(text), None) => Some(
                Keyring::parse(&zeroize::Zeroizing::new(text))
                    .map_err(|e| key_error("REDIS_ENCRYPTION_KEY", &sources, &e))?,
            ),
            (None, Some(path)) => Some(
                Keyring::from_file(path)
                    .map_err(|e| key_error("REDIS_ENCRYPTION_KEYS_FILE", &sources, &e))?,
            ),
            (None, None) => None,
        };

        let mut api_keys: Vec<SecretString> =
            secret("API_KEY", "API_KEY_FILE")?.into_iter().collect();
        if let Some(extra) = get("ADDITIONAL_API_KEYS") {
            let extra = zeroize::Zeroizing::new(extra);
            api_keys.extend(
                extra
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(SecretString::from),
            );
        }

        Ok(Self {
            environment: get("ENVIRONMENT"),
            development_override: get("REDIS_SECURITY_MODE")
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("development")),
            redis_url,
            redis_cluster_nodes,
            redis_username: get("REDIS_USERNAME").unwrap_or_else(|| DEFAULT_USERNAME.to_owned()),
            redis_password: secret("REDIS_PASSWORD", "REDIS_PASSWORD_FILE")?,
            redis_monitor_username: get("REDIS_MONITOR_USERNAME"),
            redis_monitor_password: secret(
                "REDIS_MONITOR_PASSWORD",
                "REDIS_MONITOR_PASSWORD_FILE",
            )?,
            redis_tls_enabled,
            redis_tls_ca_path: get("REDIS_TLS_CA_PATH").map(PathBuf::from),
            redis_tls_cert_path: get("REDIS_TLS_CERT_PATH").map(PathBuf::from),
            redis_tls_key_path: get("REDIS_TLS_KEY_PATH").map(PathBuf::from),
            keyring,
            redis_network_isolation: truthy("REDIS_NETWORK_ISOLATION", raw, true, &sources)?,
            redis_protected_mode: truthy("REDIS_PROTECTED_MODE", raw, true, &sources)?,
            cache_namespace: get("CACHE_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            api_keys,
            api_keys_file: get("SEALCACHE_API_KEYS_FILE").map(PathBuf::from),
            listen: get("SEALCACHE_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            metrics_public: truthy("SEALCACHE_METRICS_PUBLIC", raw, false, &sources)?,
            otel_service_name: get("OTEL_SERVICE_NAME")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_OTEL_SERVICE_NAME.to_owned()),
            status_interval: Duration::from_secs(number(
                "SEALCACHE_STATUS_INTERVAL_SECS",
                raw,
                DEFAULT_STATUS_INTERVAL.as_secs(),
                1,
                &sources,
            )?),
            limits: limits::limits(raw, &sources)?,
            deprecated_aliases,
            sources,
        })
    }
}

/// `REDIS_URL`, `REDIS_CLUSTER_NODES` and `REDIS_TLS_ENABLED`, checked against each other: the
/// TLS flag must agree with the URL scheme (or the cluster nodes' one scheme), and cluster nodes
/// exclude a `REDIS_URL` other than the default. URLs may hold credentials: no error shows one.
fn transport(raw: &Raw, sources: &Sources) -> Result<(String, Vec<String>, bool)> {
    let text = |key: &str| {
        raw.get(&key.to_ascii_lowercase())
            .map(Flex::text)
            .filter(|s| !s.trim().is_empty())
    };
    let given_url = text("REDIS_URL");
    let redis_url = given_url
        .clone()
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    let scheme_tls = redis_url.starts_with("rediss://");
    if !scheme_tls && !redis_url.starts_with("redis://") && !redis_url.starts_with("unix://") {
        return Err(invalid(
            "REDIS_URL",
            sources,
            "expected a rediss://, redis:// or unix:// URL",
        ));
    }
    let nodes: Vec<String> = text("REDIS_CLUSTER_NODES")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let scheme_tls = if nodes.is_empty() {
        scheme_tls
    } else {
        if given_url.is_some_and(|u| u != DEFAULT_REDIS_URL) {
            return Err(invalid(
                "REDIS_CLUSTER_NODES",
                sources,
                "cannot be combined with REDIS_URL: set one of them",
            ));
        }
        let tls = nodes.iter().filter(|n| n.starts_with("rediss://")).count();
        let plain = nodes.iter().filter(|n| n.starts_with("redis://")).count();
        if tls + plain != nodes.len() || (tls > 0 && plain > 0) {
            return Err(invalid(
                "REDIS_CLUSTER_NODES",
                sources,
                "expected comma-separated URLs, all rediss:// or all redis://",
            ));
        }
        tls > 0
    };
    let redis_tls_enabled = truthy("REDIS_TLS_ENABLED", raw, scheme_tls, sources)?;
    if redis_tls_enabled != scheme_tls && !redis_url.starts_with("unix://") {
        let scheme_of = if nodes.is_empty() {
            "REDIS_URL"
        } else {
            "REDIS_CLUSTER_NODES"
        };
        return Err(invalid(
            "REDIS_TLS_ENABLED",
            sources,
            format!("disagrees with the {scheme_of} scheme (rediss:// means TLS on)"),
        ));
    }
    Ok((redis_url, nodes, redis_tls_enabled))
}
