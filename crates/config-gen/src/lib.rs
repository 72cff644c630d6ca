//! Secure configuration for sealcache: generate it, validate it, load it.
//!
//! # Brief overview
//!
//! * [`SecureConfigGenerator::generate_for_environment`] makes a [`SecurityConfiguration`] for an
//!   environment detected by `sealcache-env-detect`: passwords from the OS CSPRNG with the entropy
//!   the environment needs, an encryption key, TLS on wherever the strict policy applies.
//! * [`write_deployment`] writes the deployment directory ([`layout`]): `.env`, `secrets/` (0700,
//!   files 0600) with passwords, the ACL file (hashes only), the keyring, the API key and TLS
//!   material, and the CA key apart in `ca/`. [`rotate_deployment`] rotates passwords and the
//!   encryption key in place.
//! * [`validate()`] judges a directory or env file: a deterministic score, issues with codes and
//!   remedies, and `acceptable` or `regenerate`.
//! * Redis Cluster: [`acl::render_with`] with [`Topology::Cluster`] (cluster grants and the
//!   replication user), [`redis_conf::directives`] (`cluster-enabled`, `tls-cluster`,
//!   `tls-replication`, `masteruser`/`masterauth`, ...) and [`tls::generate_cluster`] (node names
//!   in the server certificate, the nodes' own client certificate). The L1 coherence channel of
//!   every topology is [`invalidation_channel`].
//! * [`audit_acl`] compares a live `ACL LIST` reply with what the generator grants (extra users,
//!   `nopass`, the default user on, wider rights), for the server's security status.
//! * [`api_keys`]: the scoped API keys file (`SEALCACHE_API_KEYS_FILE`: tenant, scopes and the
//!   SHA-256 of each key), validated with errors naming line and field, and [`api_keys::mint`],
//!   which makes a key and appends its digest (what `cargo xtask api-key` and `sealcache api-key`
//!   call).
//! * [`SecuritySettings::load`] reads the runtime settings (variables, `*_FILE` secrets, optional
//!   `sealcache.toml`) for the cache and the server.
//!
//! # Example
//!
//! ```
//! use sealcache_config_gen::{
//!     DeploymentOptions, Recommendation, SecureConfigGenerator, validate_dir, write_deployment,
//! };
//! use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};
//!
//! let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
//!     .detect(FeatureContext::SecurityEnforcement);
//! let config = SecureConfigGenerator::generate_for_environment(&detected, None)?;
//! assert!(config.redis_tls_enabled);
//! assert_eq!(config.redis_password.len(), 33); // 192 bits over 62 symbols
//!
//! let dir = tempfile::tempdir()?;
//! write_deployment(&config, dir.path(), &DeploymentOptions::default())?;
//! let report = validate_dir(dir.path(), None)?;
//! assert_eq!(report.security_score, 100);
//! assert_eq!(report.recommendation, Recommendation::Acceptable);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None. TLS material is made with `rcgen` on the `ring` backend (no OpenSSL, no aws-lc).
//!
//! # Security
//!
//! No secret value reaches `Debug`, an error or a report; secret files are written 0600 in 0700
//! directories, atomically; the CA key never goes under `secrets/`. Left to the caller: keeping the
//! generated directory out of version control (the repository's `.gitignore` does) and mounting only
//! `secrets/` into containers. See `docs/configuration.md`.

pub mod acl;
pub mod acl_audit;
pub mod api_keys;
pub mod atomic;
pub mod cluster_dir;
pub mod layout;
pub mod password;
pub mod redis_conf;
pub mod rotation;
pub mod tls;

mod configuration;
mod deploy_dir;
mod env_file;
mod error;
mod validate;

/// Secrets are the settings crate's type: one `SecretString` everywhere.
mod secret {
    pub(crate) use sealcache_settings::SecretString;
}

pub use acl::{AclOptions, Topology, TopologyKind, invalidation_channel};
pub use acl_audit::{AclAudit, AclDeviation, audit as audit_acl};
pub use configuration::{ConfigurationSummary, SecureConfigGenerator, SecurityConfiguration};
pub use deploy_dir::{
    DeploymentOptions, OutputFormat, Rotation, WriteMode, WrittenDeployment, add_dictionary,
    render_env, rotate_deployment, write_deployment,
};
pub use env_file::{parse as parse_env, read as read_env_file};
// What the public API takes and returns, so a program needs this crate alone.
pub use error::{Error, Result};
pub use sealcache_codec::{Dictionary, Keyring};
pub use sealcache_env_detect::{
    Environment, EnvironmentDetector, EnvironmentInfo, FeatureContext, MapSource, Policy,
};
// The runtime settings moved to `sealcache-settings` (the cache and server need them without the
// provisioning half); re-exported so that tools keep one import.
pub use sealcache_settings::{
    ALIASES, DEFAULT_LISTEN, DEFAULT_NAMESPACE, DEFAULT_OTEL_SERVICE_NAME, DEFAULT_REDIS_URL,
    DEFAULT_STATUS_INTERVAL, DEFAULT_USERNAME, NEAR_MISSES, OTHER_VARIABLES, SecretString,
    SecuritySettings, ServerLimits, VARIABLES,
};
pub use validate::{
    ERROR_WEIGHT, Facts, Issue, Recommendation, Severity, ValidationInput, ValidationReport,
    WARNING_WEIGHT, validate, validate_dir,
};

/// The README's examples run as doc tests.
/// Helpers for the unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};

    /// A generated configuration for the environment `env` (as `ENVIRONMENT` names it).
    #[allow(clippy::unwrap_used)]
    pub(crate) fn config_for(env: &str) -> crate::SecurityConfiguration {
        let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", env))
            .detect(FeatureContext::SecurityEnforcement);
        crate::SecureConfigGenerator::generate_for_environment(&detected, None).unwrap()
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
