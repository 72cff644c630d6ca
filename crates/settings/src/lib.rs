//! The runtime settings of sealcache: what the cache and the server read, and nothing of
//! provisioning (certificates, ACL files, the generator and validator live in
//! `sealcache-config-gen`).
//!
//! # Brief overview
//!
//! * [`SecuritySettings::load`] reads the variable contract (docs/architecture.md §9): defaults,
//!   then `sealcache.toml` (`SEALCACHE_CONFIG`), then variables; `*_FILE` secrets; the deprecated
//!   names of the Python template with one warning each ([`ALIASES`]); misspellings are errors
//!   naming the right variable ([`NEAR_MISSES`]).
//! * [`SecuritySettings::detect_environment`] detects the environment with the loaded settings
//!   laid over the process, so `environment = "production"` in `sealcache.toml` counts.
//! * [`SecretString`] holds secrets: zeroized on drop, redacted in `Debug`, compared in constant
//!   time.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use sealcache_env_detect::{Environment, FeatureContext, MapSource};
//! use sealcache_settings::SecuritySettings;
//!
//! let vars: BTreeMap<String, String> = [
//!     ("ENVIRONMENT", "production"),
//!     ("REDIS_URL", "rediss://redis.internal:6379/0"),
//!     ("REDIS_AUTH", "a-password-from-the-old-template"), // read as REDIS_PASSWORD, with a warning
//! ]
//! .into_iter()
//! .map(|(k, v)| (k.to_owned(), v.to_owned()))
//! .collect();
//! let settings = SecuritySettings::load_from(&vars, None)?;
//! assert_eq!(settings.redis_username, "cache_app");
//! assert_eq!(settings.deprecated_aliases, [("REDIS_AUTH", "REDIS_PASSWORD")]);
//! let info = settings.detect_environment_with(MapSource::new(), FeatureContext::SecurityEnforcement);
//! assert_eq!(info.environment(), Environment::Production);
//!
//! // A near miss is an error naming the right variable.
//! let typo: BTreeMap<String, String> =
//!     [("REDIS_ENCRYPTION_KEY_FILE".to_owned(), "/run/secrets/k".to_owned())].into();
//! let err = SecuritySettings::load_from(&typo, None).unwrap_err();
//! assert!(err.to_string().contains("REDIS_ENCRYPTION_KEYS_FILE"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None.
//!
//! # Security
//!
//! Errors name a setting and its source, never its value; `Debug` of the settings shows no
//! secret; secret files and variables lose one leading byte order mark and trailing CR/LF.

mod detection;
mod error;
mod secret;
mod settings;

pub use error::{Error, Result};
pub use secret::SecretString;
pub use settings::{
    ALIASES, DEFAULT_LISTEN, DEFAULT_NAMESPACE, DEFAULT_OTEL_SERVICE_NAME, DEFAULT_REDIS_URL,
    DEFAULT_STATUS_INTERVAL, DEFAULT_USERNAME, NEAR_MISSES, OTHER_VARIABLES, SETTINGS,
    SecuritySettings, ServerLimits, Setting, VARIABLES, markdown_table,
};

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
