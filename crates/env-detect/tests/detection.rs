//! Every signal, every environment, agreement and conflict arithmetic, and the fail-secure default.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use Environment::*;
use sealcache_env_detect::{
    CI_VARIABLES, Environment, EnvironmentDetector, EnvironmentInfo, FeatureContext, MapSource,
    PLATFORM_VARIABLES,
};

fn detect(source: MapSource) -> EnvironmentInfo {
    EnvironmentDetector::new(source).detect(FeatureContext::Default)
}

fn approx(a: f64, b: f64) -> bool {
    // Confidences are rounded to three decimals.
    (a - b).abs() <= 0.0005 + 1e-9
}

#[test]
fn environment_variable_exact_names() {
    for (value, env) in [
        ("production", Production),
        ("prod", Production),
        ("staging", Staging),
        ("testing", Testing),
        ("development", Development),
        ("DEV", Development),
    ] {
        let info = detect(MapSource::new().var("ENVIRONMENT", value));
        assert_eq!(info.environment, env, "{value}");
        assert!(
            approx(info.confidence, 0.95),
            "{value}: {}",
            info.confidence
        );
        assert_eq!(info.detected_by, "ENVIRONMENT");
    }
}

#[test]
fn other_explicit_variables_are_085_and_patterns_080() {
    for name in [
        "APP_ENV",
        "NODE_ENV",
        "RAILS_ENV",
        "FLASK_ENV",
        "ENV",
        "DEPLOYMENT_ENV",
        "RACK_ENV",
        "ASPNETCORE_ENVIRONMENT",
    ] {
        let info = detect(MapSource::new().var(name, "production"));
        assert_eq!(info.environment, Production, "{name}");
        assert!(approx(info.confidence, 0.85), "{name}");
    }
    for (value, env) in [
        ("prod-us-east", Production),
        ("stg2", Staging),
        ("uat", Staging),
        ("preprod", Staging),
        ("qa", Testing),
        ("local", Development),
    ] {
        for name in ["ENVIRONMENT", "APP_ENV"] {
            let info = detect(MapSource::new().var(name, value));
            assert_eq!(info.environment, env, "{name}={value}");
            assert!(
                approx(info.confidence, 0.80),
                "{name}={value}: {}",
                info.confidence
            );
        }
    }
}

#[test]
fn enforce_auth_means_production_only_under_security_enforcement() {
    let source = MapSource::new().var("ENFORCE_AUTH", "true");
    let info = EnvironmentDetector::new(source.clone()).detect(FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment, Production);
    assert!(approx(info.confidence, 0.98));
    assert_eq!(info.feature_context, FeatureContext::SecurityEnforcement);
    let info = EnvironmentDetector::new(source).detect(FeatureContext::Default);
    assert_eq!(info.environment, Unknown);
    // It outranks even ENVIRONMENT=development when security is being decided.
    let dev = MapSource::new()
        .var("ENFORCE_AUTH", "1")
        .var("ENVIRONMENT", "development");
    let info = EnvironmentDetector::new(dev).detect(FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment, Production);
    assert!(approx(info.confidence, 0.98 * 0.85), "{}", info.confidence);
}

#[test]
fn platform_ci_and_debug_signals() {
    for (name, _) in PLATFORM_VARIABLES {
        let info = detect(MapSource::new().var(name, "x"));
        assert_eq!(info.environment, Production, "{name}");
        assert!(approx(info.confidence, 0.70), "{name}");
        let signal = &info.signals[0];
        assert_eq!(signal.value, "set", "platform values are not echoed");
    }
    for name in CI_VARIABLES.iter().take(4) {
        let info = detect(MapSource::new().var(name, "true"));
        assert_eq!(info.environment, Testing, "{name}");
        assert!(approx(info.confidence, 0.75), "{name}");
    }
    assert_eq!(
        detect(MapSource::new().var("CI", "false")).environment,
        Unknown
    );
    let on = detect(MapSource::new().var("DEBUG", "true"));
    assert_eq!((on.environment, on.confidence), (Development, 0.70));
    let off = detect(MapSource::new().var("DEBUG", "false"));
    assert_eq!((off.environment, off.confidence), (Production, 0.75));
}

#[test]
fn hostname_patterns() {
    for (host, env, conf) in [
        ("api-prod-3", Production, 0.70),
        ("web.staging.example", Staging, 0.65),
        ("alice-dev-laptop", Development, 0.60),
        ("ci-runner-7", Testing, 0.60),
    ] {
        let info = detect(MapSource::new().hostname(host));
        assert_eq!(info.environment, env, "{host}");
        assert!(approx(info.confidence, conf), "{host}");
        assert_eq!(info.detected_by, "hostname");
    }
    assert_eq!(
        detect(MapSource::new().hostname("b7c1e9")).environment,
        Unknown
    );
}

#[test]
fn file_indicators_only_without_explicit_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".env"), "X=1\n").unwrap();
    let info = detect(MapSource::new().dir(dir.path()));
    assert_eq!(info.environment, Development);
    assert!(
        approx(info.confidence, 0.60),
        "two agreeing files: {}",
        info.confidence
    );
    assert!(info.signals.iter().all(|s| s.source.starts_with("file:")));

    let info = detect(
        MapSource::new()
            .dir(dir.path())
            .var("ENVIRONMENT", "production"),
    );
    assert_eq!(info.environment, Production);
    assert!(info.signals.iter().all(|s| !s.source.starts_with("file:")));
    assert!(approx(info.confidence, 0.95));
}

#[test]
fn agreement_adds_and_strong_conflict_multiplies() {
    // 0.95 + 0.05 (platform agrees) = 0.98 cap reached with one more.
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("KUBERNETES_SERVICE_HOST", "10.0.0.1")
            .var("DEBUG", "false"),
    );
    assert_eq!(info.environment, Production);
    assert!(approx(info.confidence, 0.98), "{}", info.confidence);

    // CI (0.75 > 0.70) conflicts with ENVIRONMENT=production: 0.95 * 0.85.
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("CI", "true"),
    );
    assert_eq!(info.environment, Production);
    assert!(approx(info.confidence, 0.8075), "{}", info.confidence);
    assert!(info.reasoning.contains("conflicting"));

    // DEBUG=true (0.70, not above the threshold) does not lower it.
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("DEBUG", "true"),
    );
    assert!(approx(info.confidence, 0.95));
}

#[test]
fn no_signal_is_unknown_at_half_confidence_and_says_how_to_declare() {
    let info = detect(MapSource::new());
    assert_eq!(info.environment, Unknown);
    assert!(approx(info.confidence, 0.50));
    assert_eq!(info.detected_by, "none");
    assert!(info.reasoning.contains("ENVIRONMENT=development"));
    assert!(info.signals.is_empty());
    assert!(info.strict_policy());
    // Unrecognised values are not signals.
    assert_eq!(
        detect(MapSource::new().var("ENVIRONMENT", "banana")).environment,
        Unknown
    );
}

#[test]
fn production_like_and_the_development_override() {
    assert!(Production.is_production_like());
    assert!(Staging.is_production_like());
    assert!(Unknown.is_production_like());
    assert!(!Testing.is_production_like());
    assert!(!Development.is_production_like());

    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("REDIS_SECURITY_MODE", "development"),
    );
    assert_eq!(
        info.environment, Production,
        "the override never changes the environment"
    );
    assert!(info.development_override());
    assert!(!info.strict_policy());
    assert!(info.reasoning.contains("override"));
    assert_eq!(info.metadata["security_mode"], "development_override");
    let strict = detect(MapSource::new().var("REDIS_SECURITY_MODE", "production"));
    assert!(!strict.development_override());
    assert_eq!(strict.metadata["security_mode"], "strict");
}

#[test]
fn info_serializes_with_the_contract_fields() {
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "staging")
            .hostname("web-staging-1"),
    );
    let json = serde_json::to_value(&info).unwrap();
    for field in [
        "environment",
        "confidence",
        "reasoning",
        "detected_by",
        "signals",
        "feature_context",
        "metadata",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert_eq!(json["environment"], "staging");
    assert_eq!(json["feature_context"], "default");
    let signal = &json["signals"][0];
    for field in ["source", "value", "environment", "confidence", "reasoning"] {
        assert!(signal.get(field).is_some(), "{field}");
    }
    assert!(approx(info.confidence, 0.98));
}

#[test]
fn environment_and_context_parse_from_names() {
    for env in Environment::ALL {
        assert_eq!(env.as_str().parse::<Environment>().unwrap(), env);
    }
    assert!("prod".parse::<Environment>().is_err());
    assert_eq!(
        "security_enforcement".parse::<FeatureContext>().unwrap(),
        FeatureContext::SecurityEnforcement
    );
    assert_eq!(
        "security-enforcement".parse::<FeatureContext>().unwrap(),
        FeatureContext::SecurityEnforcement
    );
}
