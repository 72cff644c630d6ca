//! Combining signals into one verdict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, SecurityMode};
use crate::signals::{Collected, EXPLICIT_VARIABLES, collect, truthy};
use crate::source::{ProcessSource, SignalSource};
use crate::{Environment, FeatureContext};

/// Each agreeing signal adds this much confidence.
pub const AGREEMENT_BONUS: f64 = 0.05;
/// Confidence never exceeds this.
pub const CONFIDENCE_CAP: f64 = 0.98;
/// A conflicting signal above this confidence weakens the verdict...
pub const CONFLICT_THRESHOLD: f64 = 0.70;
/// ...by this factor.
pub const CONFLICT_FACTOR: f64 = 0.85;
/// The confidence of `unknown` when nothing was seen.
pub const NO_SIGNAL_CONFIDENCE: f64 = 0.50;

/// One observation that points at an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentSignal {
    /// Where it came from: a variable name, `hostname`, or `file:PATH`.
    pub source: String,
    /// What was seen (`set` for variables whose value is not informative).
    pub value: String,
    /// The environment it points at.
    pub environment: Environment,
    /// How strongly, 0 to 1.
    pub confidence: f64,
    /// Why, in words.
    pub reasoning: String,
}

/// The verdict, with its evidence. Only [`EnvironmentDetector`] makes one, so the value that
/// decides the [`Policy`] cannot be forged by hand; read it through the accessors.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EnvironmentInfo {
    environment: Environment,
    confidence: f64,
    reasoning: String,
    detected_by: String,
    signals: Vec<EnvironmentSignal>,
    hints: Vec<EnvironmentSignal>,
    feature_context: FeatureContext,
    security_mode: SecurityMode,
    metadata: BTreeMap<String, String>,
}

impl EnvironmentInfo {
    /// The detected environment.
    #[must_use]
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// Confidence, 0 to 1, after agreement and conflicts.
    #[must_use]
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// Why, in words, including how to declare the environment when unsure.
    #[must_use]
    pub fn reasoning(&self) -> &str {
        &self.reasoning
    }

    /// The source of the deciding signal (`none` when nothing decided).
    #[must_use]
    pub fn detected_by(&self) -> &str {
        &self.detected_by
    }

    /// Every signal that could decide, strongest first.
    #[must_use]
    pub fn signals(&self) -> &[EnvironmentSignal] {
        &self.signals
    }

    /// Weak signals that would have relaxed the policy (a host name or file pointing at
    /// development or testing, `DEBUG` on): reported, never deciding.
    #[must_use]
    pub fn hints(&self) -> &[EnvironmentSignal] {
        &self.hints
    }

    /// The context detection ran under.
    #[must_use]
    pub fn feature_context(&self) -> FeatureContext {
        self.feature_context
    }

    /// Whether `REDIS_SECURITY_MODE=development` is in force.
    #[must_use]
    pub fn security_mode(&self) -> SecurityMode {
        self.security_mode
    }

    /// Extra facts: `signal_count`, `hint_count`, `hostname`, `enforce_auth`, and `security_mode`
    /// (a copy of [`EnvironmentInfo::security_mode`] for readers of the JSON).
    #[must_use]
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The policy for this environment (the one place that decides).
    #[must_use]
    pub fn policy(&self) -> Policy {
        Policy::for_env(self)
    }

    /// True when `REDIS_SECURITY_MODE=development` asked for the development policy.
    #[must_use]
    pub fn development_override(&self) -> bool {
        self.security_mode == SecurityMode::DevelopmentOverride
    }

    /// True when the strict security policy applies ([`Policy::is_strict`]).
    #[must_use]
    pub fn strict_policy(&self) -> bool {
        self.policy().is_strict()
    }
}

/// The variable of the explicit development override.
pub const SECURITY_MODE_VARIABLE: &str = "REDIS_SECURITY_MODE";

/// Detects the environment from a [`SignalSource`].
///
/// ```
/// use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};
///
/// let source = MapSource::new().var("ENVIRONMENT", "prod-us-east").var("KUBERNETES_SERVICE_HOST", "10.0.0.1");
/// let info = EnvironmentDetector::new(source).detect(FeatureContext::Default);
/// assert_eq!(info.environment(), Environment::Production);
/// assert_eq!(info.confidence(), 0.85); // pattern 0.80 + one agreeing signal
/// assert!(info.strict_policy());
///
/// let nothing = EnvironmentDetector::new(MapSource::new()).detect(FeatureContext::Default);
/// assert_eq!(nothing.environment(), Environment::Unknown);
/// assert!(nothing.strict_policy()); // unknown is treated like production
/// ```
#[derive(Debug, Clone)]
pub struct EnvironmentDetector<S = ProcessSource> {
    source: S,
}

impl Default for EnvironmentDetector<ProcessSource> {
    fn default() -> Self {
        Self::new(ProcessSource)
    }
}

impl<S: SignalSource> EnvironmentDetector<S> {
    /// A detector reading `source`.
    pub fn new(source: S) -> Self {
        Self { source }
    }

    /// Detects the environment under `context`.
    pub fn detect(&self, context: FeatureContext) -> EnvironmentInfo {
        let Collected {
            mut signals,
            hints,
            unrecognised,
        } = collect(&self.source, context);
        // Strongest first; ties keep collection order (explicit before platform before files).
        signals.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));

        let mut metadata = BTreeMap::new();
        metadata.insert("signal_count".to_owned(), signals.len().to_string());
        metadata.insert("hint_count".to_owned(), hints.len().to_string());
        if let Some(host) = self.source.hostname() {
            metadata.insert("hostname".to_owned(), host);
        }
        let override_on = self
            .source
            .var(SECURITY_MODE_VARIABLE)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("development"));
        let security_mode = if override_on {
            SecurityMode::DevelopmentOverride
        } else {
            SecurityMode::Strict
        };
        // A mirror for readers of the JSON; the typed field is what the policy reads.
        metadata.insert(
            "security_mode".to_owned(),
            security_mode.as_str().to_owned(),
        );
        if self.source.var("ENFORCE_AUTH").as_deref().and_then(truthy) == Some(true) {
            metadata.insert("enforce_auth".to_owned(), "true".to_owned());
        }

        let hint_text = if hints.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = hints
                .iter()
                .map(|h| format!("{} suggests {}", h.source, h.environment))
                .collect();
            format!(
                "; hint: {} (weak signals only tighten the policy; to relax it, set \
                 ENVIRONMENT=development or REDIS_SECURITY_MODE=development)",
                list.join(", ")
            )
        };
        let Some(primary) = signals.first().cloned() else {
            let mut reasoning = if !unrecognised.is_empty() {
                format!(
                    "{} names no known environment (expected development, testing, staging, \
                     production or a recognised pattern)",
                    unrecognised.join(", ")
                )
            } else if hints.is_empty() {
                "no environment signal found".to_owned()
            } else {
                "no decisive environment signal found".to_owned()
            };
            reasoning.push_str(
                "; treating the environment as unknown, which gets the production security \
                 policy. Declare it with ENVIRONMENT=development|testing|staging|production",
            );
            reasoning.push_str(&hint_text);
            if override_on {
                reasoning.push_str("; REDIS_SECURITY_MODE=development override is active");
            }
            return EnvironmentInfo {
                environment: Environment::Unknown,
                confidence: NO_SIGNAL_CONFIDENCE,
                reasoning,
                detected_by: "none".to_owned(),
                signals,
                hints,
                feature_context: context,
                security_mode,
                metadata,
            };
        };

        // Relaxing needs the explicit declarations to agree: when the deciding signal points at
        // development or testing and another explicit variable names something else (or names
        // nothing recognisable), the verdict is unknown, which is strict.
        if matches!(
            primary.environment,
            Environment::Development | Environment::Testing
        ) {
            let disagreeing: Vec<String> = signals
                .iter()
                .filter(|s| {
                    s.environment != primary.environment
                        && (EXPLICIT_VARIABLES.contains(&s.source.as_str())
                            || s.source == "ENFORCE_AUTH")
                })
                .map(|s| format!("{} says {}", s.source, s.environment))
                .chain(
                    unrecognised
                        .iter()
                        .map(|name| format!("{name} names no known environment")),
                )
                .collect();
            if !disagreeing.is_empty() {
                let mut reasoning = format!(
                    "{} ({}), but {}: the declarations disagree, so the environment is treated \
                     as unknown, which gets the production security policy. Make them agree, \
                     or set REDIS_SECURITY_MODE=development",
                    primary.reasoning,
                    primary.source,
                    disagreeing.join(", ")
                );
                if override_on {
                    reasoning.push_str("; REDIS_SECURITY_MODE=development override is active");
                }
                reasoning.push_str(&hint_text);
                return EnvironmentInfo {
                    environment: Environment::Unknown,
                    confidence: NO_SIGNAL_CONFIDENCE,
                    reasoning,
                    detected_by: "conflict".to_owned(),
                    signals,
                    hints,
                    feature_context: context,
                    security_mode,
                    metadata,
                };
            }
        }

        let mut confidence = primary.confidence;
        let (mut agree, mut conflict) = (0usize, 0usize);
        for other in signals.iter().skip(1) {
            if other.environment == primary.environment {
                confidence = (confidence + AGREEMENT_BONUS).min(CONFIDENCE_CAP);
                agree += 1;
            } else if other.confidence > CONFLICT_THRESHOLD {
                confidence *= CONFLICT_FACTOR;
                conflict += 1;
            }
        }
        let confidence = (confidence * 1000.0).round() / 1000.0;

        let mut reasoning = format!("{} ({})", primary.reasoning, primary.source);
        if agree > 0 {
            reasoning.push_str(&format!("; {agree} agreeing signal(s)"));
        }
        if conflict > 0 {
            reasoning.push_str(&format!(
                "; {conflict} strong conflicting signal(s) lowered confidence"
            ));
        }
        if override_on {
            reasoning.push_str("; REDIS_SECURITY_MODE=development override is active (logged)");
        }
        if confidence < 0.7 {
            reasoning.push_str("; low confidence: set ENVIRONMENT explicitly");
        }
        reasoning.push_str(&hint_text);
        EnvironmentInfo {
            environment: primary.environment,
            confidence,
            reasoning,
            detected_by: primary.source.clone(),
            signals,
            hints,
            feature_context: context,
            security_mode,
            metadata,
        }
    }
}

/// Detects the environment of the current process under `context`.
#[must_use]
pub fn detect(context: FeatureContext) -> EnvironmentInfo {
    EnvironmentDetector::default().detect(context)
}
