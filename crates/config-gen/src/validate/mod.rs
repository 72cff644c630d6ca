//! `validate`: a verdict on an existing configuration (a deployment directory or an env file).
//!
//! # Score
//!
//! `security_score = max(0, 100 - 25 * errors - 10 * warnings)`; infos cost nothing. The
//! recommendation is `regenerate` when any error is found, else `acceptable`. A configuration the
//! generator wrote scores 100 in its own environment (tested).

mod input;
mod rules;

use std::path::{Path, PathBuf};

use sealcache_env_detect::{
    Environment, EnvironmentDetector, FeatureContext, MapSource, Policy, SecurityMode,
};
use serde::Serialize;

use crate::error::Result;

pub use input::Facts;

/// Points an error costs.
pub const ERROR_WEIGHT: u32 = 25;
/// Points a warning costs.
pub const WARNING_WEIGHT: u32 = 10;

/// How bad an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; costs no points.
    Info,
    /// Weakens security; costs 10 points.
    Warning,
    /// Unacceptable; costs 25 points and forces `regenerate`.
    Error,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Stable identifier (`TLS_DISABLED`, ...).
    pub code: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What is wrong; never a secret value.
    pub message: String,
    /// How to fix it.
    pub remedy: String,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recommendation {
    /// No error.
    Acceptable,
    /// At least one error.
    Regenerate,
}

/// The validator's report (the JSON of `cargo xtask config validate --json`).
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// The environment validated against.
    pub environment: Environment,
    /// Its confidence (1.0 when given explicitly).
    pub confidence: f64,
    /// 0 to 100, see the module docs.
    pub security_score: u32,
    /// Every finding, errors first.
    pub issues: Vec<Issue>,
    /// `acceptable` or `regenerate`.
    pub recommendation: Recommendation,
}

/// What to validate.
#[derive(Debug, Clone)]
pub enum ValidationInput {
    /// A deployment directory (see [`crate::layout`]).
    Dir(PathBuf),
    /// An env file (the seed's flat format, or a `.env` with `*_FILE` paths).
    EnvFile(PathBuf),
}

/// Validates `input` for `environment` (detected from the configuration's own variables when
/// `None`).
///
/// # Errors
/// Only when the input is unusable (missing, unreadable, unparsable): exit code 2 territory.
pub fn validate(
    input: &ValidationInput,
    environment: Option<Environment>,
) -> Result<ValidationReport> {
    let facts = input::gather(input)?;
    let (environment, confidence) = match environment {
        Some(env) => (env, 1.0),
        None => {
            let info = EnvironmentDetector::new(MapSource::new().vars(facts.vars.clone()))
                .detect(FeatureContext::SecurityEnforcement);
            (info.environment(), info.confidence())
        }
    };
    let mut issues = rules::check(&facts, Policy::declared(environment, SecurityMode::Strict));
    issues.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(b.code)));
    let errors = issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .count() as u32;
    let warnings = issues
        .iter()
        .filter(|i| i.severity == Severity::Warning)
        .count() as u32;
    let security_score = 100u32.saturating_sub(ERROR_WEIGHT * errors + WARNING_WEIGHT * warnings);
    Ok(ValidationReport {
        environment,
        confidence,
        security_score,
        recommendation: if errors > 0 {
            Recommendation::Regenerate
        } else {
            Recommendation::Acceptable
        },
        issues,
    })
}

/// Validates a deployment directory.
///
/// # Errors
/// As [`validate`].
pub fn validate_dir(dir: &Path, environment: Option<Environment>) -> Result<ValidationReport> {
    validate(&ValidationInput::Dir(dir.to_path_buf()), environment)
}
