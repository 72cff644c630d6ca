//! `SecurityConfiguration`: the seed's generated settings, and the generator.

use std::collections::BTreeMap;
use std::time::SystemTime;

use sealcache_codec::SecretKey;
use sealcache_env_detect::{Environment, EnvironmentInfo, Policy, Requirement, SecurityMode};
use serde::Serialize;

use crate::acl::{AclPasswords, Topology};
use crate::error::Result;
use crate::password;
use crate::secret::SecretString;

/// A generated configuration with the seed's fields.
///
/// `redis_password` is the password the cache authenticates with (`cache_app`, the
/// `REDIS_PASSWORD` of docs/architecture.md §9); `redis_cache_password` is the monitor user's
/// (`cache_monitor`, which the server's ACL LOG poller uses). The health and admin passwords exist
/// only in the deployment directory. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct SecurityConfiguration {
    /// `cache_app`'s password (`REDIS_PASSWORD`).
    pub redis_password: SecretString,
    /// `cache_monitor`'s password (`REDIS_CACHE_PASSWORD`).
    pub redis_cache_password: SecretString,
    /// `cache_health`'s password.
    pub redis_health_password: SecretString,
    /// `cache_admin`'s password (operators only; never given to the application).
    pub redis_admin_password: SecretString,
    /// `cache_replication`'s password (`masterauth`): used only by a Redis Cluster
    /// ([`SecurityConfiguration::cluster_topology`]); a single-node deployment does not write it.
    pub redis_replication_password: SecretString,
    /// The encryption key (`REDIS_ENCRYPTION_KEY`, 44-character URL-safe base64).
    pub redis_encryption_key: SecretKey,
    /// The HTTP API key.
    pub api_key: SecretString,
    /// TLS on (`REDIS_TLS_ENABLED`).
    pub redis_tls_enabled: bool,
    /// `protected-mode yes` (`REDIS_PROTECTED_MODE`).
    pub redis_protected_mode: bool,
    /// The environment it was generated for.
    pub environment: Environment,
    /// When.
    pub generated_at: SystemTime,
    /// The detection confidence (1.0 when the environment was given explicitly).
    pub confidence: f64,
    /// Whether `REDIS_SECURITY_MODE=development` was in force.
    pub development_override: bool,
}

/// The non-secret summary of a configuration (for `--json` output and logs).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigurationSummary {
    /// Environment name.
    pub environment: Environment,
    /// Detection confidence.
    pub confidence: f64,
    /// TLS on.
    pub tls_enabled: bool,
    /// Password entropy in bits.
    pub password_bits: u32,
    /// Password length.
    pub password_length: usize,
    /// Whether the development override was in force.
    pub development_override: bool,
}

impl SecurityConfiguration {
    /// The seed's variables: `REDIS_PASSWORD`, `REDIS_CACHE_PASSWORD`, `REDIS_ENCRYPTION_KEY`,
    /// `REDIS_TLS_ENABLED`, `REDIS_PROTECTED_MODE`, `REDIS_SECURITY_ENVIRONMENT`.
    ///
    /// The map holds secrets: write it only to a 0600 file.
    #[must_use]
    pub fn to_env_dict(&self) -> BTreeMap<&'static str, SecretString> {
        let mut out = BTreeMap::new();
        out.insert("REDIS_PASSWORD", self.redis_password.clone());
        out.insert("REDIS_CACHE_PASSWORD", self.redis_cache_password.clone());
        out.insert(
            "REDIS_ENCRYPTION_KEY",
            SecretString::new(self.redis_encryption_key.expose_text().to_string()),
        );
        out.insert(
            "REDIS_TLS_ENABLED",
            SecretString::from(bool_text(self.redis_tls_enabled)),
        );
        out.insert(
            "REDIS_PROTECTED_MODE",
            SecretString::from(yes_no(self.redis_protected_mode)),
        );
        out.insert(
            "REDIS_SECURITY_ENVIRONMENT",
            SecretString::from(self.environment.as_str()),
        );
        out
    }

    /// The four ACL passwords.
    #[must_use]
    pub fn acl_passwords(&self) -> AclPasswords {
        AclPasswords {
            app: self.redis_password.clone(),
            health: self.redis_health_password.clone(),
            monitor: self.redis_cache_password.clone(),
            admin: self.redis_admin_password.clone(),
        }
    }

    /// [`Topology::Cluster`] with this configuration's replication password, for
    /// [`crate::acl::render_with`] and [`crate::redis_conf::directives`].
    #[must_use]
    pub fn cluster_topology(&self) -> Topology {
        Topology::Cluster {
            replication_password: self.redis_replication_password.clone(),
        }
    }

    /// What can be shown.
    #[must_use]
    pub fn summary(&self) -> ConfigurationSummary {
        let bits = password::required_bits(self.environment);
        ConfigurationSummary {
            environment: self.environment,
            confidence: self.confidence,
            tls_enabled: self.redis_tls_enabled,
            password_bits: bits,
            password_length: self.redis_password.len(),
            development_override: self.development_override,
        }
    }
}

pub(crate) fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

pub(crate) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Generates secure configurations for an environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecureConfigGenerator;

impl SecureConfigGenerator {
    /// Generates a configuration for the detected environment `context` (use
    /// [`sealcache_env_detect::EnvironmentDetector`]), or for `override_env` when given.
    ///
    /// Passwords carry 192 bits of entropy in production and unknown, 144 in staging, 96 in
    /// testing, 64 in development; TLS is on for staging, production and unknown (and in
    /// development only if the caller turns it on); the encryption key is always generated.
    ///
    /// # Errors
    /// [`crate::Error::Randomness`] if the OS generator fails.
    pub fn generate_for_environment(
        context: &EnvironmentInfo,
        override_env: Option<Environment>,
    ) -> Result<SecurityConfiguration> {
        let environment = override_env.unwrap_or(context.environment());
        let bits = password::required_bits(environment);
        Ok(SecurityConfiguration {
            redis_password: password::generate(bits)?,
            redis_cache_password: password::generate(bits)?,
            redis_health_password: password::generate(bits)?,
            redis_admin_password: password::generate(bits)?,
            redis_replication_password: password::generate(bits)?,
            redis_encryption_key: SecretKey::generate()?,
            api_key: password::generate(bits.max(192))?,
            redis_tls_enabled: Policy::declared(environment, SecurityMode::Strict)
                .refuses_without(Requirement::Tls),
            redis_protected_mode: true,
            environment,
            generated_at: SystemTime::now(),
            confidence: if override_env.is_some() {
                1.0
            } else {
                context.confidence()
            },
            development_override: context.development_override(),
        })
    }
}
