//! `SecuritySettings::load()`: the runtime settings of the cache and server (DESIGN.md §9).
//!
//! Precedence, lowest first: built-in defaults, then the TOML file (`SEALCACHE_CONFIG`, or
//! `sealcache.toml` in the working directory when present), then environment variables. TOML keys
//! are the variable names in lower case (`redis_url = "rediss://..."`).
//!
//! Every secret can come from its variable or from a file named by `*_FILE`; setting both is an
//! error naming the pair. Errors name the setting and its source, never its value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format as _, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use sealcache_codec::Keyring;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io};
use crate::secret::SecretString;

/// Every variable the settings read (the TOML keys are these in lower case).
pub const VARIABLES: &[&str] = &[
    "ENVIRONMENT",
    "REDIS_SECURITY_MODE",
    "REDIS_URL",
    "REDIS_USERNAME",
    "REDIS_ACL_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_PASSWORD_FILE",
    "REDIS_MONITOR_USERNAME",
    "REDIS_MONITOR_PASSWORD",
    "REDIS_MONITOR_PASSWORD_FILE",
    "REDIS_TLS_ENABLED",
    "REDIS_TLS_CA_PATH",
    "REDIS_TLS_CERT_PATH",
    "REDIS_TLS_KEY_PATH",
    "REDIS_ENCRYPTION_KEY",
    "REDIS_ENCRYPTION_KEYS_FILE",
    "REDIS_NETWORK_ISOLATION",
    "REDIS_PROTECTED_MODE",
    "CACHE_NAMESPACE",
    "API_KEY",
    "API_KEY_FILE",
    "ADDITIONAL_API_KEYS",
    "SEALCACHE_LISTEN",
    "SEALCACHE_METRICS_PUBLIC",
    "SEALCACHE_BODY_LIMIT",
    "SEALCACHE_HEADER_READ_TIMEOUT_SECS",
    "SEALCACHE_REQUEST_TIMEOUT_SECS",
    "SEALCACHE_BODY_READ_TIMEOUT_SECS",
    "SEALCACHE_MAX_HEADER_BYTES",
    "SEALCACHE_MAX_CONNECTIONS",
    "SEALCACHE_MAX_IN_FLIGHT",
    "SEALCACHE_MAX_IN_FLIGHT_BYTES",
    "SEALCACHE_L1_CAPACITY",
    "SEALCACHE_L1_MAX_BYTES",
    "SEALCACHE_L1_MAX_ENTRY_BYTES",
    "SEALCACHE_AUTH_FAILURE_LIMIT",
    "SEALCACHE_AUTH_FAILURE_WINDOW_SECS",
    "SEALCACHE_AUTH_BLOCK_SECS",
    "SEALCACHE_TRUSTED_PROXIES",
];

/// The HTTP server's protective limits (`SEALCACHE_*`). Every value has a safe default; zero is
/// refused where it would switch a protection off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// `SEALCACHE_BODY_LIMIT`: largest request body in bytes; a larger declared `Content-Length`
    /// is answered 413 at once (default 1 MiB).
    pub body_limit: usize,
    /// `SEALCACHE_HEADER_READ_TIMEOUT_SECS`: time to receive a request's whole header section,
    /// counted from when the connection is ready for a request, so it also closes idle keep-alive
    /// connections (default 10 s).
    pub header_read_timeout: std::time::Duration,
    /// `SEALCACHE_REQUEST_TIMEOUT_SECS`: longest time from the header to the response, body read
    /// included; then 408 (default 30 s).
    pub request_timeout: std::time::Duration,
    /// `SEALCACHE_BODY_READ_TIMEOUT_SECS`: longest wait for the next piece of a request body
    /// (default 10 s).
    pub body_read_timeout: std::time::Duration,
    /// `SEALCACHE_MAX_HEADER_BYTES`: connection read buffer, which bounds the header section;
    /// larger headers get 431 (default 16 KiB, at least 8 KiB).
    pub max_header_bytes: usize,
    /// `SEALCACHE_MAX_CONNECTIONS`: open connections; further ones wait in the kernel's accept
    /// queue (default 512).
    pub max_connections: usize,
    /// `SEALCACHE_MAX_IN_FLIGHT`: requests handled at once; more are answered 503 with
    /// `Retry-After` (default 64).
    pub max_in_flight: usize,
    /// `SEALCACHE_MAX_IN_FLIGHT_BYTES`: declared request-body bytes handled at once (a request
    /// without `Content-Length` counts as a full body); a request that does not fit is answered
    /// 503 with `Retry-After`. Bounds the memory a flood of large stores can take (default
    /// 32 MiB).
    pub max_in_flight_bytes: usize,
    /// `SEALCACHE_L1_CAPACITY`: L1 entries (default 10 000; 0 turns L1 off).
    pub l1_capacity: usize,
    /// `SEALCACHE_L1_MAX_BYTES`: L1 plaintext bytes (default: a quarter of the cgroup memory
    /// limit when one is set, else 64 MiB).
    pub l1_max_bytes: Option<usize>,
    /// `SEALCACHE_L1_MAX_ENTRY_BYTES`: larger values are served from Redis only (default 256 KiB).
    pub l1_max_entry_bytes: usize,
    /// `SEALCACHE_AUTH_FAILURE_LIMIT`: failed API-key attempts per peer and window before the
    /// peer is refused (default 10).
    pub auth_failure_limit: u32,
    /// `SEALCACHE_AUTH_FAILURE_WINDOW_SECS` (default 60 s).
    pub auth_failure_window: std::time::Duration,
    /// `SEALCACHE_AUTH_BLOCK_SECS`: how long a peer over the limit gets 429 (default 300 s).
    pub auth_block: std::time::Duration,
    /// `SEALCACHE_TRUSTED_PROXIES`: comma-separated addresses or CIDR ranges of reverse proxies
    /// whose `X-Forwarded-For` names the peer (default none: the socket peer counts).
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            body_limit: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_connections: 512,
            max_in_flight: 64,
            max_in_flight_bytes: 32 << 20,
            l1_capacity: 10_000,
            l1_max_bytes: None,
            l1_max_entry_bytes: 256 << 10,
            auth_failure_limit: 10,
            auth_failure_window: Duration::from_secs(60),
            auth_block: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The default `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "rediss://redis:6379/0";
/// The default ACL user.
pub const DEFAULT_USERNAME: &str = "cache_app";
/// The default key namespace.
pub const DEFAULT_NAMESPACE: &str = "ai_cache";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A value that may be written as a TOML boolean or as text.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
enum Flex {
    Bool(bool),
    Int(i64),
    Str(String),
}

impl Flex {
    fn text(&self) -> String {
        match self {
            Flex::Bool(b) => b.to_string(),
            Flex::Int(i) => i.to_string(),
            Flex::Str(s) => s.clone(),
        }
    }
}

type Raw = BTreeMap<String, Flex>;

/// Environment variables as a figment provider named `environment variable`.
struct Vars<'a>(&'a BTreeMap<String, String>);

impl Provider for Vars<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for name in VARIABLES {
            if let Some(value) = self.0.get(*name) {
                dict.insert(name.to_ascii_lowercase(), Value::from(value.clone()));
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The loaded settings. `Debug` shows no secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SecuritySettings {
    /// `ENVIRONMENT`, as given (detection is separate).
    pub environment: Option<String>,
    /// `REDIS_SECURITY_MODE=development`: the explicit, logged development override.
    pub development_override: bool,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `REDIS_USERNAME` (alias `REDIS_ACL_USERNAME`).
    pub redis_username: String,
    /// `REDIS_PASSWORD` / `REDIS_PASSWORD_FILE`.
    pub redis_password: Option<SecretString>,
    /// `REDIS_MONITOR_USERNAME` (the ACL LOG poller's user).
    pub redis_monitor_username: Option<String>,
    /// `REDIS_MONITOR_PASSWORD` / `REDIS_MONITOR_PASSWORD_FILE`.
    pub redis_monitor_password: Option<SecretString>,
    /// `REDIS_TLS_ENABLED` (defaults to what the URL scheme says).
    pub redis_tls_enabled: bool,
    /// `REDIS_TLS_CA_PATH`.
    pub redis_tls_ca_path: Option<PathBuf>,
    /// `REDIS_TLS_CERT_PATH`.
    pub redis_tls_cert_path: Option<PathBuf>,
    /// `REDIS_TLS_KEY_PATH`.
    pub redis_tls_key_path: Option<PathBuf>,
    /// `REDIS_ENCRYPTION_KEY` / `REDIS_ENCRYPTION_KEYS_FILE`.
    pub keyring: Option<Keyring>,
    /// `REDIS_NETWORK_ISOLATION`: the operator's claim (the server verifies it).
    pub redis_network_isolation: bool,
    /// `REDIS_PROTECTED_MODE`.
    pub redis_protected_mode: bool,
    /// `CACHE_NAMESPACE`.
    pub cache_namespace: String,
    /// `API_KEY` / `API_KEY_FILE` plus `ADDITIONAL_API_KEYS` (comma-separated).
    pub api_keys: Vec<SecretString>,
    /// `SEALCACHE_LISTEN`.
    pub listen: String,
    /// `SEALCACHE_METRICS_PUBLIC`: `/metrics` without authentication.
    pub metrics_public: bool,
    /// The HTTP server's limits (`SEALCACHE_*`).
    pub limits: ServerLimits,
    /// Where each setting came from, by variable name (`default`, `environment variable`, a
    /// TOML path).
    pub sources: BTreeMap<String, String>,
}

/// "TOML file /etc/sealcache.toml", "environment variable", ...
fn describe(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(source) => format!("{} {source}", metadata.name),
        None => metadata.name.to_string(),
    }
}

fn convert(err: &figment::Error) -> Error {
    use figment::error::Kind;
    let key = err.path.join(".").to_ascii_uppercase();
    let source_name = err
        .metadata
        .as_ref()
        .map_or_else(|| "configuration".to_owned(), describe);
    let problem = match &err.kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("expected {expected}")
        }
        Kind::MissingField(field) => format!("missing {field}"),
        Kind::UnknownField(field, _) => format!("unknown setting {field}"),
        // Parser messages can quote the offending line, which may hold a secret.
        _ => "cannot be read (syntax or type error)".to_owned(),
    };
    Error::InvalidSetting {
        key: if key.is_empty() {
            "(file)".to_owned()
        } else {
            key
        },
        source_name,
        problem,
    }
}

fn truthy(key: &str, raw: &Raw, default: bool, sources: &BTreeMap<String, String>) -> Result<bool> {
    let Some(v) = raw.get(&key.to_ascii_lowercase()) else {
        return Ok(default);
    };
    match v.text().trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::InvalidSetting {
            key: key.to_owned(),
            source_name: sources.get(key).cloned().unwrap_or_default(),
            problem: "expected true or false".to_owned(),
        }),
    }
}

/// A whole number setting at least `min`, or `default` when unset.
fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    raw: &Raw,
    default: T,
    min: T,
    sources: &BTreeMap<String, String>,
) -> Result<T> {
    let Some(v) = raw
        .get(&key.to_ascii_lowercase())
        .filter(|v| !v.text().trim().is_empty())
    else {
        return Ok(default);
    };
    match v.text().trim().parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(Error::InvalidSetting {
            key: key.to_owned(),
            source_name: sources.get(key).cloned().unwrap_or_default(),
            problem: format!("expected a whole number of at least {min}"),
        }),
    }
}

fn limits(raw: &Raw, sources: &BTreeMap<String, String>) -> Result<ServerLimits> {
    use std::time::Duration;
    let d = ServerLimits::default();
    let secs = |key: &str, default: Duration| -> Result<Duration> {
        number(key, raw, default.as_secs(), 1, sources).map(Duration::from_secs)
    };
    let l1_max_bytes = match raw
        .get("sealcache_l1_max_bytes")
        .filter(|v| !v.text().trim().is_empty())
    {
        Some(_) => Some(number("SEALCACHE_L1_MAX_BYTES", raw, 0usize, 0, sources)?),
        None => None,
    };
    Ok(ServerLimits {
        body_limit: number("SEALCACHE_BODY_LIMIT", raw, d.body_limit, 1024, sources)?,
        header_read_timeout: secs("SEALCACHE_HEADER_READ_TIMEOUT_SECS", d.header_read_timeout)?,
        request_timeout: secs("SEALCACHE_REQUEST_TIMEOUT_SECS", d.request_timeout)?,
        body_read_timeout: secs("SEALCACHE_BODY_READ_TIMEOUT_SECS", d.body_read_timeout)?,
        max_header_bytes: number(
            "SEALCACHE_MAX_HEADER_BYTES",
            raw,
            d.max_header_bytes,
            8192,
            sources,
        )?,
        max_connections: number(
            "SEALCACHE_MAX_CONNECTIONS",
            raw,
            d.max_connections,
            1,
            sources,
        )?,
        max_in_flight: number("SEALCACHE_MAX_IN_FLIGHT", raw, d.max_in_flight, 1, sources)?,
        max_in_flight_bytes: number(
            "SEALCACHE_MAX_IN_FLIGHT_BYTES",
            raw,
            d.max_in_flight_bytes,
            1 << 20,
            sources,
        )?,
        l1_capacity: number("SEALCACHE_L1_CAPACITY", raw, d.l1_capacity, 0, sources)?,
        l1_max_bytes,
        l1_max_entry_bytes: number(
            "SEALCACHE_L1_MAX_ENTRY_BYTES",
            raw,
            d.l1_max_entry_bytes,
            0,
            sources,
        )?,
        auth_failure_limit: number(
            "SEALCACHE_AUTH_FAILURE_LIMIT",
            raw,
            d.auth_failure_limit,
            1,
            sources,
        )?,
        auth_failure_window: secs("SEALCACHE_AUTH_FAILURE_WINDOW_SECS", d.auth_failure_window)?,
        auth_block: secs("SEALCACHE_AUTH_BLOCK_SECS", d.auth_block)?,
        trusted_proxies: raw
            .get("sealcache_trusted_proxies")
            .map(|v| {
                v.text()
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn read_secret_file(path: &Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path).map_err(io("cannot read secret file", path))?;
    Ok(SecretString::new(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

impl SecuritySettings {
    /// Loads the settings of this process: its variables, then `SEALCACHE_CONFIG` or
    /// `./sealcache.toml` when present.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`], [`Error::BothPlainAndFileSet`], [`Error::Io`] for unreadable
    /// secret files, key format errors.
    pub fn load() -> Result<Self> {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        let toml = vars
            .get("SEALCACHE_CONFIG")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("sealcache.toml")).filter(|p| p.exists()));
        Self::load_from(&vars, toml.as_deref())
    }

    /// Loads from explicit variables and an optional TOML file (tests, tools).
    ///
    /// # Errors
    /// As [`SecuritySettings::load`]; a named TOML file that does not exist is an error.
    pub fn load_from(vars: &BTreeMap<String, String>, toml: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Raw::new()));
        if let Some(path) = toml {
            if !path.exists() {
                return Err(Error::Io {
                    action: "cannot read settings file",
                    path: path.to_path_buf(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment.merge(Vars(vars));
        let raw: Raw = figment.extract().map_err(|e| convert(&e))?;
        let mut sources = BTreeMap::new();
        for key in raw.keys() {
            let name = figment
                .find_metadata(key)
                .map_or_else(|| "default".to_owned(), describe);
            sources.insert(key.to_ascii_uppercase(), name);
        }
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

        let redis_url = get("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
        let scheme_tls = redis_url.starts_with("rediss://");
        if !scheme_tls && !redis_url.starts_with("redis://") && !redis_url.starts_with("unix://") {
            return Err(Error::InvalidSetting {
                key: "REDIS_URL".into(),
                source_name: sources.get("REDIS_URL").cloned().unwrap_or_default(),
                problem: "expected a rediss://, redis:// or unix:// URL".into(),
            });
        }
        let redis_tls_enabled = truthy("REDIS_TLS_ENABLED", &raw, scheme_tls, &sources)?;
        if redis_tls_enabled != scheme_tls && !redis_url.starts_with("unix://") {
            return Err(Error::InvalidSetting {
                key: "REDIS_TLS_ENABLED".into(),
                source_name: sources
                    .get("REDIS_TLS_ENABLED")
                    .cloned()
                    .unwrap_or_default(),
                problem: "disagrees with the REDIS_URL scheme (rediss:// means TLS on)".into(),
            });
        }

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
            (Some(text), None) => Some(Keyring::parse(&zeroize::Zeroizing::new(text))?),
            (None, Some(path)) => Some(Keyring::from_file(path)?),
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

        let username = match (get("REDIS_USERNAME"), get("REDIS_ACL_USERNAME")) {
            (Some(u), _) | (None, Some(u)) => u,
            (None, None) => DEFAULT_USERNAME.to_owned(),
        };

        Ok(Self {
            environment: get("ENVIRONMENT"),
            development_override: get("REDIS_SECURITY_MODE")
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("development")),
            redis_url,
            redis_username: username,
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
            redis_network_isolation: truthy("REDIS_NETWORK_ISOLATION", &raw, true, &sources)?,
            redis_protected_mode: truthy("REDIS_PROTECTED_MODE", &raw, true, &sources)?,
            cache_namespace: get("CACHE_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            api_keys,
            listen: get("SEALCACHE_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            metrics_public: truthy("SEALCACHE_METRICS_PUBLIC", &raw, false, &sources)?,
            limits: limits(&raw, &sources)?,
            sources,
        })
    }
}
