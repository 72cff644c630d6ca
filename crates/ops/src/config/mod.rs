//! `config generate|validate|dictionary`: a deployment directory generated for an environment,
//! judged, and given a trained compression dictionary.
//!
//! Every stage that writes files takes `dry_run`: it then does the same work in a scratch
//! directory and reports the files it would write ([`Mark::Planned`]), leaving the real one
//! untouched.

mod dictionary;
mod generate;

pub use self::dictionary::{DictionaryOptions, DictionaryOutcome, MIN_SAMPLES, train_dictionary};
pub use self::generate::{GenerateFormat, GenerateOptions, generate};

use std::path::Path;

use sealcache_config_gen::{
    Environment, Recommendation, Severity, ValidationInput, ValidationReport, validate,
};

use crate::error::Result;
use crate::report::{Mark, Progress, ProgressExt as _};

/// How a command that validates ends: the exit codes of `config validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// The configuration is acceptable (exit 0).
    Acceptable,
    /// It must be regenerated (exit 1).
    Regenerate,
    /// It could not be read (exit 2).
    Unusable,
}

impl Verdict {
    /// The process exit code for the verdict (0, 1 or 2).
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Acceptable => 0,
            Verdict::Regenerate => 1,
            Verdict::Unusable => 2,
        }
    }

    /// The verdict of a validation report.
    #[must_use]
    pub fn of(report: &ValidationReport) -> Self {
        if report.recommendation == Recommendation::Acceptable {
            Verdict::Acceptable
        } else {
            Verdict::Regenerate
        }
    }
}

/// Validates `input` against `environment` (detected from the configuration when `None`).
///
/// # Errors
/// The input cannot be read ([`crate::OpsError::Deployment`]).
pub fn validate_input(
    input: &ValidationInput,
    environment: Option<Environment>,
) -> Result<ValidationReport> {
    Ok(validate(input, environment)?)
}

/// Reports the verdict of `report` and each of its issues; returns the verdict.
pub fn report_verdict(report: &ValidationReport, progress: &mut dyn Progress) -> Verdict {
    let verdict = Verdict::of(report);
    let ok = verdict == Verdict::Acceptable;
    progress.mark(
        if ok { Mark::Ok } else { Mark::Failed },
        format!(
            "Validated: {} (score {}/100)",
            if ok { "acceptable" } else { "regenerate" },
            report.security_score
        ),
    );
    for issue in &report.issues {
        let mark = match issue.severity {
            Severity::Error => Mark::Failed,
            Severity::Warning => Mark::Warning,
            _ => Mark::Info,
        };
        progress.mark(
            mark,
            format!("  {}: {} — {}", issue.code, issue.message, issue.remedy),
        );
    }
    verdict
}

/// Validates the deployment directory `dir` for `environment` and reports the verdict; a
/// directory that cannot be read is [`Verdict::Unusable`], reported as a failed line.
pub fn validate_dir_report(
    dir: &Path,
    environment: Environment,
    progress: &mut dyn Progress,
) -> Verdict {
    match validate(&ValidationInput::Dir(dir.to_path_buf()), Some(environment)) {
        Ok(report) => report_verdict(&report, progress),
        Err(err) => {
            progress.failed(format!(
                "validation could not read {}: {err}",
                dir.display()
            ));
            Verdict::Unusable
        }
    }
}
