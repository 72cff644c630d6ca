//! The settings, each declared once: its variables, its meaning, its type and how it is read
//! (with its default). The structs, their readers and defaults, [`VARIABLES`] and the table in
//! docs/configuration.md are generated from here ([`super::declare`]). A new setting is one entry
//! below; the table test in `sealcache-integration-tests` then asks for the docs to be
//! regenerated.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sealcache_codec::Keyring;

use super::declare::declare_settings;
use super::readers::{
    Custom, FilePath, Flag, List, Number, OptionalBytes, OptionalText, Seconds, Secret, Text, Unit,
};
use super::{
    DEFAULT_LISTEN, DEFAULT_NAMESPACE, DEFAULT_OTEL_SERVICE_NAME, DEFAULT_REDIS_URL,
    DEFAULT_STATUS_INTERVAL, DEFAULT_USERNAME, custom,
};
use crate::secret::SecretString;

declare_settings! {
    /// The loaded settings. `Debug` shows no secret.
    #[derive(Debug, Clone)]
    #[non_exhaustive]
    pub struct SecuritySettings {
        /// The deployment environment as declared (`production`/`prod`, `staging`/`stage`,
        /// `testing`/`test`, `development`/`dev`): the strongest of the detection signals listed
        /// above; detection itself is separate.
        environment: Option<String> = ["ENVIRONMENT"] OptionalText { shown: "detected" },
        /// `development`: the explicit, logged development override of the security policy.
        development_override: bool = ["REDIS_SECURITY_MODE"] Custom {
            kind: "`development` or unset",
            shown: "unset",
            secret: &[],
            read: custom::development_override,
            default: || false,
        },
        /// The Redis server: `rediss://host:port/db` (`redis://` only in development; `unix://`
        /// for a socket).
        redis_url: String = ["REDIS_URL"] Custom {
            kind: "URL",
            shown: "`rediss://redis:6379/0`",
            secret: &[],
            read: custom::redis_url,
            default: || DEFAULT_REDIS_URL.to_owned(),
        },
        /// Seed URLs of a Redis Cluster, all `rediss://` or all `redis://` (their scheme sets the
        /// `REDIS_TLS_ENABLED` default). An error together with a `REDIS_URL` other than the
        /// default; empty: one server at `REDIS_URL`.
        redis_cluster_nodes: Vec<String> = ["REDIS_CLUSTER_NODES"] Custom {
            kind: "comma-separated URLs",
            shown: "none",
            secret: &[],
            read: custom::redis_cluster_nodes,
            default: Vec::new,
        },
        /// The ACL user the cache authenticates as.
        redis_username: String = ["REDIS_USERNAME"] Text { default: DEFAULT_USERNAME, trim: false },
        /// That user's password.
        redis_password: Option<SecretString> = ["REDIS_PASSWORD", "REDIS_PASSWORD_FILE"] Secret,
        /// The user of the ACL LOG poller and of the live-ACL checks (`cache_monitor`; without it
        /// `acl_users` and `acl_rights` are unobserved).
        redis_monitor_username: Option<String> = ["REDIS_MONITOR_USERNAME"]
            OptionalText { shown: "unset" },
        /// The monitor user's password.
        redis_monitor_password: Option<SecretString> =
            ["REDIS_MONITOR_PASSWORD", "REDIS_MONITOR_PASSWORD_FILE"] Secret,
        /// TLS to Redis; must agree with the URL scheme (`rediss://` means on).
        redis_tls_enabled: bool = ["REDIS_TLS_ENABLED"] Custom {
            kind: "flag",
            shown: "from the URL scheme",
            secret: &[],
            read: custom::redis_tls_enabled,
            default: || DEFAULT_REDIS_URL.starts_with("rediss://"),
        },
        /// The CA certificate to pin for Redis. Unset: the system's CA store, read once per process.
        redis_tls_ca_path: Option<PathBuf> = ["REDIS_TLS_CA_PATH"] FilePath,
        /// The client certificate presented to Redis.
        redis_tls_cert_path: Option<PathBuf> = ["REDIS_TLS_CERT_PATH"] FilePath,
        /// The client certificate's private key.
        redis_tls_key_path: Option<PathBuf> = ["REDIS_TLS_KEY_PATH"] FilePath,
        /// The sealing keys: one 44-character key (or an inline keyring), or a keyring file.
        keyring: Option<Keyring> = ["REDIS_ENCRYPTION_KEY", "REDIS_ENCRYPTION_KEYS_FILE"] Custom {
            kind: "secret, or a keyring file",
            shown: "unset",
            secret: &[0],
            read: custom::keyring,
            default: || None,
        },
        /// The operator's claim that Redis is on an isolated network; the server verifies it.
        redis_network_isolation: bool = ["REDIS_NETWORK_ISOLATION"] Flag { default: true },
        /// Accepted for the template's files and judged by the validator (`no` is an issue), but
        /// read by nothing at run time: Redis's `protected-mode yes` is set in its `redis.conf`;
        /// no longer written to generated files.
        redis_protected_mode: bool = ["REDIS_PROTECTED_MODE"] Flag { default: true },
        /// The key prefix (and the ACL key pattern `NS:*`).
        cache_namespace: String = ["CACHE_NAMESPACE"] Text { default: DEFAULT_NAMESPACE, trim: false },
        /// HTTP API keys (tenant `default`, every scope, key id `legacy`): one key or a file
        /// holding it, plus `ADDITIONAL_API_KEYS`, comma-separated.
        api_keys: Vec<SecretString> = ["API_KEY", "API_KEY_FILE", "ADDITIONAL_API_KEYS"] Custom {
            kind: "secret, or a file holding it; a comma-separated list",
            shown: "none",
            secret: &[0, 2],
            read: custom::api_keys,
            default: Vec::new,
        },
        /// Scoped HTTP API keys: a TOML file of `[[key]]` tables (`id`, `tenant`, `scopes`,
        /// `sha256`), digests only; read by the server at start and reloaded on `SIGHUP` (see
        /// "Scoped API keys" below).
        api_keys_file: Option<PathBuf> = ["SEALCACHE_API_KEYS_FILE"] FilePath,
        /// The telemetry's `service.name`.
        otel_service_name: String = ["OTEL_SERVICE_NAME"]
            Text { default: DEFAULT_OTEL_SERVICE_NAME, trim: true },
        /// The server's listen address.
        listen: String = ["SEALCACHE_LISTEN"] Text { default: DEFAULT_LISTEN, trim: false },
        /// `/metrics` without authentication.
        metrics_public: bool = ["SEALCACHE_METRICS_PUBLIC"] Flag { default: false },
        /// How often the status gauges (Redis reachability, L1 size) are refreshed.
        status_interval: Duration = ["SEALCACHE_STATUS_INTERVAL_SECS"]
            Seconds { default: DEFAULT_STATUS_INTERVAL.as_secs(), min: 1 },
    }
    computed {
        /// The HTTP server's limits (`SEALCACHE_*`).
        limits: ServerLimits,
        /// Deprecated names that were used, `(alias, canonical)`, each once, in the order met
        /// (the TOML file's first). Each was also logged once as a warning naming both, never
        /// the value.
        deprecated_aliases: Vec<(&'static str, &'static str)>,
        /// Where each setting came from, by variable name (`default`, `environment variable`, a
        /// TOML path; with the deprecated name when one was used).
        sources: BTreeMap<String, String>,
    }

    /// The HTTP server's protective limits (`SEALCACHE_*`; docs/api.md "Limits"). Every value
    /// has a safe default; zero is refused where it would switch a protection off.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct ServerLimits {
        /// The largest request body; a larger declared `Content-Length` is answered 413 at once.
        body_limit: usize = ["SEALCACHE_BODY_LIMIT"]
            Number::<usize> { default: 1 << 20, min: 1024, unit: Unit::Bytes },
        /// Time to receive a request's whole header section, counted from when the connection is
        /// ready for a request, so it also closes idle keep-alive connections.
        header_read_timeout: Duration = ["SEALCACHE_HEADER_READ_TIMEOUT_SECS"]
            Seconds { default: 10, min: 1 },
        /// The longest time from the header to the response, body read included; then 408.
        request_timeout: Duration = ["SEALCACHE_REQUEST_TIMEOUT_SECS"]
            Seconds { default: 30, min: 1 },
        /// The longest wait for the next piece of a request body.
        body_read_timeout: Duration = ["SEALCACHE_BODY_READ_TIMEOUT_SECS"]
            Seconds { default: 10, min: 1 },
        /// The connection read buffer, which bounds the header section; larger headers get 431.
        max_header_bytes: usize = ["SEALCACHE_MAX_HEADER_BYTES"]
            Number::<usize> { default: 16 << 10, min: 8 << 10, unit: Unit::Bytes },
        /// Open connections; further ones wait in the kernel's accept queue.
        max_connections: usize = ["SEALCACHE_MAX_CONNECTIONS"]
            Number::<usize> { default: 512, min: 1, unit: Unit::Count },
        /// Requests handled at once; more are answered 503 with `Retry-After`.
        max_in_flight: usize = ["SEALCACHE_MAX_IN_FLIGHT"]
            Number::<usize> { default: 64, min: 1, unit: Unit::Count },
        /// Declared request-body bytes handled at once (a request without `Content-Length`
        /// counts as a full body); a request that does not fit is answered 503 with
        /// `Retry-After`. Bounds the memory a flood of large stores can take.
        max_in_flight_bytes: usize = ["SEALCACHE_MAX_IN_FLIGHT_BYTES"]
            Number::<usize> { default: 32 << 20, min: 1 << 20, unit: Unit::Bytes },
        /// L1 entries (0 turns L1 off).
        l1_capacity: usize = ["SEALCACHE_L1_CAPACITY"]
            Number::<usize> { default: 10_000, min: 0, unit: Unit::Count },
        /// L1's heap bytes: keys and values, each in its heap block, and each entry's bookkeeping
        /// (a small entry costs about 440 B; a bound below 375 B, the least an entry costs, turns
        /// L1 off, with a warning).
        l1_max_bytes: Option<usize> = ["SEALCACHE_L1_MAX_BYTES"] OptionalBytes {
            shown: "a quarter of the cgroup memory limit (at most 1 GiB) when one is set, else 64 MiB",
        },
        /// Larger values are served from Redis only.
        l1_max_entry_bytes: usize = ["SEALCACHE_L1_MAX_ENTRY_BYTES"]
            Number::<usize> { default: 256 << 10, min: 0, unit: Unit::Bytes },
        /// Failed API-key attempts per peer and window before the peer is refused.
        auth_failure_limit: u32 = ["SEALCACHE_AUTH_FAILURE_LIMIT"]
            Number::<u32> { default: 10, min: 1, unit: Unit::Count },
        /// The window in which failed API-key attempts are counted.
        auth_failure_window: Duration = ["SEALCACHE_AUTH_FAILURE_WINDOW_SECS"]
            Seconds { default: 60, min: 1 },
        /// How long a peer over the limit gets 429.
        auth_block: Duration = ["SEALCACHE_AUTH_BLOCK_SECS"] Seconds { default: 300, min: 1 },
        /// Addresses or CIDR ranges of reverse proxies whose `X-Forwarded-For` names the peer
        /// (none: the socket peer counts).
        trusted_proxies: Vec<String> = ["SEALCACHE_TRUSTED_PROXIES"] List,
    }
    computed {}
}
