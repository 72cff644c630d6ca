//! Collecting signals from a source, strongest first.

use crate::names::{NameMatch, classify, pattern};
use crate::source::SignalSource;
use crate::{Environment, EnvironmentSignal, FeatureContext};

/// `ENVIRONMENT` with an exact name.
pub const CONF_ENVIRONMENT_EXACT: f64 = 0.95;
/// Another explicit variable with an exact name.
pub const CONF_EXPLICIT_EXACT: f64 = 0.85;
/// Any explicit variable whose value is recognised only by pattern.
pub const CONF_PATTERN: f64 = 0.80;
/// `ENFORCE_AUTH` truthy under the security-enforcement context.
pub const CONF_ENFORCE_AUTH: f64 = 0.98;
/// A platform (Kubernetes, Cloud Run, Heroku, Lambda, ECS).
pub const CONF_PLATFORM: f64 = 0.70;
/// A CI system.
pub const CONF_CI: f64 = 0.75;
/// `DEBUG` true (development).
pub const CONF_DEBUG_TRUE: f64 = 0.70;
/// `DEBUG` false (production).
pub const CONF_DEBUG_FALSE: f64 = 0.75;
/// Host name naming production.
pub const CONF_HOSTNAME_PRODUCTION: f64 = 0.70;
/// Host name naming staging.
pub const CONF_HOSTNAME_STAGING: f64 = 0.65;
/// Host name naming development or testing.
pub const CONF_HOSTNAME_OTHER: f64 = 0.60;
/// A development file indicator.
pub const CONF_FILE: f64 = 0.55;

/// Explicit environment variables, strongest first. `ENVIRONMENT` is the project's own.
pub const EXPLICIT_VARIABLES: &[&str] = &[
    "ENVIRONMENT",
    "APP_ENV",
    "NODE_ENV",
    "RAILS_ENV",
    "RACK_ENV",
    "FLASK_ENV",
    "DJANGO_ENV",
    "ASPNETCORE_ENVIRONMENT",
    "DOTNET_ENVIRONMENT",
    "DEPLOYMENT_ENV",
    "DEPLOY_ENV",
    "STAGE",
    "ENV",
];

/// Platform variables that mean a managed (production) deployment.
pub const PLATFORM_VARIABLES: &[(&str, &str)] = &[
    ("KUBERNETES_SERVICE_HOST", "Kubernetes"),
    ("K_SERVICE", "Cloud Run / Knative"),
    ("DYNO", "Heroku"),
    ("AWS_LAMBDA_FUNCTION_NAME", "AWS Lambda"),
    ("ECS_CONTAINER_METADATA_URI_V4", "AWS ECS"),
];

/// CI variables that mean a test run.
pub const CI_VARIABLES: &[&str] = &[
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "JENKINS_URL",
    "CIRCLECI",
];

/// Files whose presence in the working directory suggests a developer checkout.
pub const FILE_INDICATORS: &[&str] = &[
    ".git",
    ".env",
    "docker-compose.dev.yml",
    "docker-compose.override.yml",
    "deploy/docker-compose.dev.yml",
];

pub(crate) fn truthy(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn signal(
    source: impl Into<String>,
    value: impl Into<String>,
    environment: Environment,
    confidence: f64,
    reasoning: impl Into<String>,
) -> EnvironmentSignal {
    EnvironmentSignal {
        source: source.into(),
        value: value.into(),
        environment,
        confidence,
        reasoning: reasoning.into(),
    }
}

/// What a source shows: the signals that may decide, and the weak hints that may not.
pub(crate) struct Collected {
    /// Signals that may decide the verdict, strongest kind first.
    pub(crate) signals: Vec<EnvironmentSignal>,
    /// Weak signals that would relax the policy (a host name or file pointing at development or
    /// testing, `DEBUG` on): reported in the reasoning, never deciding.
    pub(crate) hints: Vec<EnvironmentSignal>,
    /// Explicit variables set to something that names no environment (`ENVIRONMENT=prduction`):
    /// they cannot decide, but they forbid relaxing on another signal's word.
    pub(crate) unrecognised: Vec<&'static str>,
}

/// Every signal the source shows, strongest kind first.
///
/// Weak signals may only tighten: a host name pattern counts when it points at production or
/// staging; pointing at development or testing it is a hint, as are the file indicators and
/// `DEBUG=true`. Relaxing takes an explicit variable or `REDIS_SECURITY_MODE=development`.
pub(crate) fn collect(source: &dyn SignalSource, context: FeatureContext) -> Collected {
    let mut out = Vec::new();
    let mut hints = Vec::new();
    let mut unrecognised = Vec::new();
    let mut explicit = false;

    for &name in EXPLICIT_VARIABLES {
        let Some(value) = source.var(name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        explicit = true;
        match classify(&value) {
            Some((env, NameMatch::Exact)) => {
                let conf = if name == "ENVIRONMENT" {
                    CONF_ENVIRONMENT_EXACT
                } else {
                    CONF_EXPLICIT_EXACT
                };
                out.push(signal(
                    name,
                    value.trim(),
                    env,
                    conf,
                    format!("{name} names {env} exactly"),
                ));
            }
            Some((env, NameMatch::Pattern)) => {
                out.push(signal(
                    name,
                    value.trim(),
                    env,
                    CONF_PATTERN,
                    format!("{name} value matches the {env} pattern"),
                ));
            }
            None => unrecognised.push(name),
        }
    }

    if context == FeatureContext::SecurityEnforcement
        && source.var("ENFORCE_AUTH").as_deref().and_then(truthy) == Some(true)
    {
        out.push(signal(
            "ENFORCE_AUTH",
            "true",
            Environment::Production,
            CONF_ENFORCE_AUTH,
            "ENFORCE_AUTH is on under security enforcement: production policy",
        ));
    }

    for &(name, platform) in PLATFORM_VARIABLES {
        if source.var(name).is_some_and(|v| !v.is_empty()) {
            out.push(signal(
                name,
                "set",
                Environment::Production,
                CONF_PLATFORM,
                format!("running on {platform}"),
            ));
        }
    }

    for &name in CI_VARIABLES {
        let set = source.var(name).is_some_and(|v| truthy(&v) != Some(false));
        if set {
            out.push(signal(
                name,
                "set",
                Environment::Testing,
                CONF_CI,
                "running in CI",
            ));
        }
    }

    if let Some(value) = source.var("DEBUG") {
        match truthy(&value) {
            Some(true) => hints.push(signal(
                "DEBUG",
                value.trim(),
                Environment::Development,
                CONF_DEBUG_TRUE,
                "DEBUG is on (a hint: DEBUG alone does not relax the policy)",
            )),
            Some(false) if !value.trim().is_empty() => out.push(signal(
                "DEBUG",
                value.trim(),
                Environment::Production,
                CONF_DEBUG_FALSE,
                "DEBUG is explicitly off",
            )),
            _ => {}
        }
    }

    if let Some(host) = source.hostname()
        && let Some(env) = pattern(&host.to_ascii_lowercase())
    {
        let conf = match env {
            Environment::Production => CONF_HOSTNAME_PRODUCTION,
            Environment::Staging => CONF_HOSTNAME_STAGING,
            _ => CONF_HOSTNAME_OTHER,
        };
        if matches!(env, Environment::Production | Environment::Staging) {
            let reasoning = format!("host name matches the {env} pattern");
            out.push(signal("hostname", host, env, conf, reasoning));
        } else {
            let reasoning =
                format!("host name matches the {env} pattern (a hint: host names only tighten)");
            hints.push(signal("hostname", host, env, conf, reasoning));
        }
    }

    // File indicators are weak and easily present in a production image too: hints only, and only
    // without any explicit variable.
    if !explicit {
        for &file in FILE_INDICATORS {
            if source.exists(file) {
                hints.push(signal(
                    format!("file:{file}"),
                    file,
                    Environment::Development,
                    CONF_FILE,
                    format!("{file} exists in the working directory (a hint: files only tighten)"),
                ));
            }
        }
    }
    Collected {
        signals: out,
        hints,
        unrecognised,
    }
}
