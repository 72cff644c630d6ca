//! The environments and feature contexts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's machine.
    Development,
    /// CI and test runs.
    Testing,
    /// Pre-production.
    Staging,
    /// Production.
    Production,
    /// No signal: the strict (production) policy applies.
    Unknown,
}

impl Environment {
    /// Every environment, in a fixed order.
    pub const ALL: [Environment; 5] = [
        Environment::Development,
        Environment::Testing,
        Environment::Staging,
        Environment::Production,
        Environment::Unknown,
    ];

    /// The lowercase name (`development`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Testing => "testing",
            Environment::Staging => "staging",
            Environment::Production => "production",
            Environment::Unknown => "unknown",
        }
    }

    /// True for production, staging and unknown: the strict security policy applies.
    ///
    /// Unknown counts as production on purpose: a deployment that forgot to say what it is must
    /// not get the relaxed development policy.
    #[must_use]
    pub fn is_production_like(self) -> bool {
        matches!(
            self,
            Environment::Production | Environment::Staging | Environment::Unknown
        )
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEnvironmentName;

impl fmt::Display for UnknownEnvironmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected one of development, testing, staging, production, unknown")
    }
}

impl std::error::Error for UnknownEnvironmentName {}

impl FromStr for Environment {
    type Err = UnknownEnvironmentName;

    /// Parses the canonical names exactly (case-insensitive); use the detector for patterns.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Environment::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or(UnknownEnvironmentName)
    }
}

/// Why the environment is being detected; it changes which signals count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureContext {
    /// General detection.
    #[default]
    Default,
    /// Deciding the security policy: `ENFORCE_AUTH` counts as a production signal.
    SecurityEnforcement,
    /// AI features.
    AiEnabled,
    /// Cache tuning.
    CacheOptimization,
    /// Resilience settings (timeouts, breakers).
    ResilienceStrategy,
}

impl FeatureContext {
    /// Every context.
    pub const ALL: [FeatureContext; 5] = [
        FeatureContext::Default,
        FeatureContext::SecurityEnforcement,
        FeatureContext::AiEnabled,
        FeatureContext::CacheOptimization,
        FeatureContext::ResilienceStrategy,
    ];

    /// The snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureContext::Default => "default",
            FeatureContext::SecurityEnforcement => "security_enforcement",
            FeatureContext::AiEnabled => "ai_enabled",
            FeatureContext::CacheOptimization => "cache_optimization",
            FeatureContext::ResilienceStrategy => "resilience_strategy",
        }
    }
}

impl fmt::Display for FeatureContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FeatureContext {
    type Err = UnknownEnvironmentName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeatureContext::ALL
            .into_iter()
            .find(|c| {
                c.as_str().eq_ignore_ascii_case(s.trim())
                    || c.as_str().replace('_', "-") == s.trim()
            })
            .ok_or(UnknownEnvironmentName)
    }
}
