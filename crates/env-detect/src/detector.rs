//! Combining signals into one verdict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::signals::{collect, truthy};
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

/// The verdict, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentInfo {
    /// The detected environment.
    pub environment: Environment,
    /// Confidence, 0 to 1, after agreement and conflicts.
    pub confidence: f64,
    /// Why, in words, including how to declare the environment when unsure.
    pub reasoning: String,
    /// The source of the deciding signal (`none` when nothing was seen).
    pub detected_by: String,
    /// Every signal seen, strongest first.
    pub signals: Vec<EnvironmentSignal>,
    /// The context detection ran under.
    pub feature_context: FeatureContext,
    /// Extra facts: `security_mode` (`strict` or `development_override`), `signal_count`, ...
    pub metadata: BTreeMap<String, String>,
}

impl EnvironmentInfo {
    /// True when `REDIS_SECURITY_MODE=development` asked for the development policy.
    #[must_use]
    pub fn development_override(&self) -> bool {
        self.metadata.get("security_mode").map(String::as_str) == Some("development_override")
    }

    /// True when the strict security policy applies: a production-like environment without the
    /// explicit development override.
    #[must_use]
    pub fn strict_policy(&self) -> bool {
        self.environment.is_production_like() && !self.development_override()
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
/// assert_eq!(info.environment, Environment::Production);
/// assert_eq!(info.confidence, 0.85); // pattern 0.80 + one agreeing signal
/// assert!(info.strict_policy());
///
/// let nothing = EnvironmentDetector::new(MapSource::new()).detect(FeatureContext::Default);
/// assert_eq!(nothing.environment, Environment::Unknown);
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
        let mut signals = collect(&self.source, context);
        // Strongest first; ties keep collection order (explicit before platform before files).
        signals.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));

        let mut metadata = BTreeMap::new();
        metadata.insert("signal_count".to_owned(), signals.len().to_string());
        if let Some(host) = self.source.hostname() {
            metadata.insert("hostname".to_owned(), host);
        }
        let override_on = self
            .source
            .var(SECURITY_MODE_VARIABLE)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("development"));
        metadata.insert(
            "security_mode".to_owned(),
            if override_on {
                "development_override"
            } else {
                "strict"
            }
            .to_owned(),
        );
        if self.source.var("ENFORCE_AUTH").as_deref().and_then(truthy) == Some(true) {
            metadata.insert("enforce_auth".to_owned(), "true".to_owned());
        }

        let Some(primary) = signals.first().cloned() else {
            let mut reasoning =
                "no environment signal found; treating the environment as unknown, \
                                 which gets the production security policy. Declare it with \
                                 ENVIRONMENT=development|testing|staging|production"
                    .to_owned();
            if override_on {
                reasoning.push_str("; REDIS_SECURITY_MODE=development override is active");
            }
            return EnvironmentInfo {
                environment: Environment::Unknown,
                confidence: NO_SIGNAL_CONFIDENCE,
                reasoning,
                detected_by: "none".to_owned(),
                signals,
                feature_context: context,
                metadata,
            };
        };

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
        EnvironmentInfo {
            environment: primary.environment,
            confidence,
            reasoning,
            detected_by: primary.source.clone(),
            signals,
            feature_context: context,
            metadata,
        }
    }
}

/// Detects the environment of the current process under `context`.
#[must_use]
pub fn detect(context: FeatureContext) -> EnvironmentInfo {
    EnvironmentDetector::default().detect(context)
}
