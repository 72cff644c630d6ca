//! Fail-secure detection of the deployment environment.
//!
//! # Brief overview
//!
//! * [`EnvironmentDetector`] reads signals from a [`SignalSource`] ([`ProcessSource`] for the real
//!   process, [`MapSource`] for tests and env files) and returns an [`EnvironmentInfo`]: the
//!   [`Environment`], a confidence, the reasoning and every [`EnvironmentSignal`] it saw.
//! * [`FeatureContext`] says why detection runs; under
//!   [`FeatureContext::SecurityEnforcement`], `ENFORCE_AUTH` means production.
//! * [`Policy::for_env`] is the one place that answers every policy question: strict or not, which
//!   [`Requirement`]s refuse a deployment, the password entropy. The strict policy applies to
//!   production, staging **and unknown**, unless `REDIS_SECURITY_MODE=development` (the explicit
//!   override, [`SecurityMode::DevelopmentOverride`], always reported). Testing keeps every
//!   requirement on the Redis transport and on sealing.
//! * [`EnvironmentInfo`] has private fields: only the detector makes one.
//!
//! # Example
//!
//! ```
//! use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};
//!
//! let ci = MapSource::new().var("GITHUB_ACTIONS", "true").var("CI", "true");
//! let info = EnvironmentDetector::new(ci).detect(FeatureContext::Default);
//! assert_eq!(info.environment(), Environment::Testing);
//! assert_eq!(info.confidence(), 0.8); // 0.75, plus 0.05 for the agreeing second CI variable
//! assert!(!info.strict_policy());
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Policy
//!
//! | signal | environment | confidence |
//! |---|---|---|
//! | `ENVIRONMENT` with an exact name | named | 0.95 |
//! | `APP_ENV`, `NODE_ENV`, `RAILS_ENV`, ... exact | named | 0.85 |
//! | any of those by pattern (`prod-us-east`, `stg2`, `uat`, `preprod`, `qa`, `local`) | named | 0.80 |
//! | `ENFORCE_AUTH` truthy, security-enforcement context | production | 0.98 |
//! | `KUBERNETES_SERVICE_HOST`, `K_SERVICE`, `DYNO`, `AWS_LAMBDA_FUNCTION_NAME`, `ECS_CONTAINER_METADATA_URI_V4` | production | 0.70 |
//! | `CI`, `GITHUB_ACTIONS`, `GITLAB_CI`, `BUILDKITE`, ... | testing | 0.75 |
//! | `DEBUG` false | production | 0.75 |
//! | host name pattern naming production / staging | production / staging | 0.70 / 0.65 |
//!
//! **Weak signals may only tighten.** A host name naming development or testing (`devon-web-01`,
//! `localhost.localdomain`), `DEBUG=true`, and the file indicators (`.git`, `.env`, a dev compose
//! file) are *hints*: listed in [`EnvironmentInfo::hints`] and in the reasoning, never deciding. A
//! verdict resting on them alone is `unknown` (strict). Relaxing takes an explicit variable above
//! or `REDIS_SECURITY_MODE=development`.
//!
//! The strongest signal decides; each agreeing signal adds 0.05 (cap 0.98); each conflicting signal
//! above 0.70 multiplies the confidence by 0.85. No signal gives `unknown` at 0.50.
//!
//! # Feature flags
//!
//! None. The crate depends only on `serde`.
//!
//! # Security
//!
//! Fails secure: an absent or unrecognised environment is `unknown`, which gets the production
//! policy. Signal values are variable values, host names and file names; the detector reads no
//! secret variable. Variables whose value is not informative (platform, CI) are reported as `set`.

mod detector;
mod environment;
mod names;
mod policy;
mod signals;
mod source;

pub use detector::{
    AGREEMENT_BONUS, CONFIDENCE_CAP, CONFLICT_FACTOR, CONFLICT_THRESHOLD, EnvironmentDetector,
    EnvironmentInfo, EnvironmentSignal, NO_SIGNAL_CONFIDENCE, SECURITY_MODE_VARIABLE, detect,
};
pub use environment::{Environment, FeatureContext, UnknownEnvironmentName};
pub use policy::{Enforcement, Policy, Requirement, SecurityMode, password_bits};
pub use signals::{
    CI_VARIABLES, CONF_CI, CONF_DEBUG_FALSE, CONF_DEBUG_TRUE, CONF_ENFORCE_AUTH,
    CONF_ENVIRONMENT_EXACT, CONF_EXPLICIT_EXACT, CONF_FILE, CONF_HOSTNAME_OTHER,
    CONF_HOSTNAME_PRODUCTION, CONF_HOSTNAME_STAGING, CONF_PATTERN, CONF_PLATFORM,
    EXPLICIT_VARIABLES, FILE_INDICATORS, PLATFORM_VARIABLES,
};
pub use source::{MapSource, Overlay, ProcessSource, SignalSource};

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
