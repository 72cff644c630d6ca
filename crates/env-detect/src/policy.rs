//! The one security policy: every crate asks [`Policy`] and nothing else decides.
//!
//! A [`Policy`] is derived from an [`EnvironmentInfo`] (which only the detector makes), so a caller
//! cannot talk its way into the relaxed policy by building a verdict by hand.
//!
//! | environment | mode | TLS, ACL user, password, encryption key | API key | password entropy |
//! |---|---|---|---|---|
//! | production, unknown | strict | error | error | 192 bits |
//! | staging | strict | error | error | 144 bits |
//! | testing | strict | error | warning | 96 bits |
//! | development | — | warning | warning | 64 bits |
//! | any | `REDIS_SECURITY_MODE=development` | warning | warning | as the environment |
//!
//! Testing (CI) relaxes nothing that production requires of the Redis transport or of sealing: a
//! CI run that talks to Redis does so over TLS as a named ACL user with a password, with a real
//! key. It relaxes only what a throwaway test server needs: the HTTP API key (a warning) and the
//! password strength generated for it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Environment, EnvironmentInfo};

/// Whether the explicit development override is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    /// The policy follows the environment (the default).
    #[default]
    Strict,
    /// `REDIS_SECURITY_MODE=development`: every requirement becomes a warning. Always logged and
    /// counted as `override_used`.
    DevelopmentOverride,
}

impl SecurityMode {
    /// `strict` or `development_override`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Strict => "strict",
            SecurityMode::DevelopmentOverride => "development_override",
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the policy can require of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Requirement {
    /// The connection to Redis uses TLS (`rediss://`).
    Tls,
    /// The cache authenticates as a named ACL user, not `default` and not anonymously.
    AclUser,
    /// A password for that user.
    Password,
    /// An encryption key (values are sealed with a configured key, not an ephemeral one).
    EncryptionKey,
    /// The HTTP API refuses requests without an API key.
    ApiKey,
}

impl Requirement {
    /// Every requirement, in a fixed order.
    pub const ALL: [Requirement; 5] = [
        Requirement::Tls,
        Requirement::AclUser,
        Requirement::Password,
        Requirement::EncryptionKey,
        Requirement::ApiKey,
    ];

    /// The snake_case name (`tls`, `acl_user`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Tls => "tls",
            Requirement::AclUser => "acl_user",
            Requirement::Password => "password",
            Requirement::EncryptionKey => "encryption_key",
            Requirement::ApiKey => "api_key",
        }
    }

    /// What to set to meet it.
    #[must_use]
    pub fn remedy(self) -> &'static str {
        match self {
            Requirement::Tls => {
                "TLS: use rediss:// URLs (REDIS_URL, or every REDIS_CLUSTER_NODES seed) with REDIS_TLS_ENABLED=true"
            }
            Requirement::AclUser => {
                "ACL user: set REDIS_USERNAME to a least-privilege user (not `default`)"
            }
            Requirement::Password => "password: set REDIS_PASSWORD_FILE (or REDIS_PASSWORD)",
            Requirement::EncryptionKey => {
                "encryption key: set REDIS_ENCRYPTION_KEYS_FILE (or REDIS_ENCRYPTION_KEY)"
            }
            Requirement::ApiKey => "API key: set API_KEY_FILE (or API_KEY, ADDITIONAL_API_KEYS)",
        }
    }

    /// True for the requirements on the Redis transport and on sealing, which testing keeps.
    #[must_use]
    pub fn protects_redis(self) -> bool {
        !matches!(self, Requirement::ApiKey)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an unmet requirement is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Reported; the deployment still starts.
    Warning,
    /// Refused: the deployment does not start.
    Error,
}

/// The security policy for one detected environment.
///
/// ```
/// use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource, Policy, Requirement};
///
/// let host_only = MapSource::new().hostname("devon-web-01");
/// let info = EnvironmentDetector::new(host_only).detect(FeatureContext::SecurityEnforcement);
/// let policy = Policy::for_env(&info);
/// assert!(policy.is_strict()); // a host name alone never relaxes the policy
/// assert!(policy.refuses_without(Requirement::Tls));
///
/// let ci = MapSource::new().var("CI", "true");
/// let policy = Policy::for_env(&EnvironmentDetector::new(ci).detect(FeatureContext::Default));
/// assert!(!policy.is_strict());
/// assert!(policy.refuses_without(Requirement::Tls)); // testing keeps the Redis transport rules
/// assert!(!policy.refuses_without(Requirement::ApiKey));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Policy {
    environment: Environment,
    mode: SecurityMode,
}

impl Policy {
    /// The policy for a detected environment.
    #[must_use]
    pub fn for_env(info: &EnvironmentInfo) -> Self {
        Self {
            environment: info.environment(),
            mode: info.security_mode(),
        }
    }

    /// The policy for an environment a tool was told explicitly (a CLI flag such as
    /// `config validate --environment production`, or a deployment directory's record). The
    /// cache builder never takes a `Policy`: it derives one from detection, so this cannot relax
    /// a running cache.
    #[must_use]
    pub fn declared(environment: Environment, mode: SecurityMode) -> Self {
        Self { environment, mode }
    }

    /// The environment the policy applies to.
    #[must_use]
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The security mode.
    #[must_use]
    pub fn mode(&self) -> SecurityMode {
        self.mode
    }

    /// True when the full production policy applies: production, staging and unknown, without
    /// the explicit development override.
    #[must_use]
    pub fn is_strict(&self) -> bool {
        self.mode == SecurityMode::Strict && self.environment.is_production_like()
    }

    /// True when the explicit development override is in force.
    #[must_use]
    pub fn development_override(&self) -> bool {
        self.mode == SecurityMode::DevelopmentOverride
    }

    /// How an unmet `requirement` is treated (see the module table).
    #[must_use]
    pub fn enforcement(&self, requirement: Requirement) -> Enforcement {
        if self.mode == SecurityMode::DevelopmentOverride {
            return Enforcement::Warning;
        }
        match self.environment {
            Environment::Production | Environment::Staging | Environment::Unknown => {
                Enforcement::Error
            }
            Environment::Testing if requirement.protects_redis() => Enforcement::Error,
            Environment::Testing | Environment::Development => Enforcement::Warning,
        }
    }

    /// True when a deployment without `requirement` is refused.
    #[must_use]
    pub fn refuses_without(&self, requirement: Requirement) -> bool {
        self.enforcement(requirement) == Enforcement::Error
    }

    /// Every requirement with its enforcement.
    #[must_use]
    pub fn requirements(&self) -> Vec<(Requirement, Enforcement)> {
        Requirement::ALL
            .into_iter()
            .map(|r| (r, self.enforcement(r)))
            .collect()
    }

    /// Of `unmet`, the requirements that refuse the deployment.
    #[must_use]
    pub fn refused(&self, unmet: &[Requirement]) -> Vec<Requirement> {
        unmet
            .iter()
            .copied()
            .filter(|r| self.refuses_without(*r))
            .collect()
    }

    /// The password entropy, in bits, that generated passwords get and validation expects.
    #[must_use]
    pub fn password_bits(&self) -> u32 {
        password_bits(self.environment)
    }

    /// Problems the validator reports as errors here and as warnings in relaxed environments
    /// (weak passwords, short keys, insecure TLS options): errors where the policy is strict.
    #[must_use]
    pub fn hardening(&self) -> Enforcement {
        if self.is_strict() {
            Enforcement::Error
        } else {
            Enforcement::Warning
        }
    }
}

/// The password entropy, in bits, for `environment` (192 production and unknown, 144 staging, 96
/// testing, 64 development).
#[must_use]
pub fn password_bits(environment: Environment) -> u32 {
    match environment {
        Environment::Production | Environment::Unknown => 192,
        Environment::Staging => 144,
        Environment::Testing => 96,
        Environment::Development => 64,
    }
}
