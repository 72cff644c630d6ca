//! Every signal, every environment, agreement and conflict arithmetic, and the fail-secure default.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use Environment::*;
use sealcache_env_detect::{
    CI_VARIABLES, Enforcement, Environment, EnvironmentDetector, EnvironmentInfo, FeatureContext,
    MapSource, Overlay, PLATFORM_VARIABLES, Policy, Requirement, SecurityMode,
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
        assert_eq!(info.environment(), env, "{value}");
        assert!(
            approx(info.confidence(), 0.95),
            "{value}: {}",
            info.confidence()
        );
        assert_eq!(info.detected_by(), "ENVIRONMENT");
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
        assert_eq!(info.environment(), Production, "{name}");
        assert!(approx(info.confidence(), 0.85), "{name}");
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
            assert_eq!(info.environment(), env, "{name}={value}");
            assert!(
                approx(info.confidence(), 0.80),
                "{name}={value}: {}",
                info.confidence()
            );
        }
    }
}

#[test]
fn enforce_auth_means_production_only_under_security_enforcement() {
    let source = MapSource::new().var("ENFORCE_AUTH", "true");
    let info = EnvironmentDetector::new(source.clone()).detect(FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment(), Production);
    assert!(approx(info.confidence(), 0.98));
    assert_eq!(info.feature_context(), FeatureContext::SecurityEnforcement);
    let info = EnvironmentDetector::new(source).detect(FeatureContext::Default);
    assert_eq!(info.environment(), Unknown);
    // It outranks even ENVIRONMENT=development when security is being decided.
    let dev = MapSource::new()
        .var("ENFORCE_AUTH", "1")
        .var("ENVIRONMENT", "development");
    let info = EnvironmentDetector::new(dev).detect(FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment(), Production);
    assert!(
        approx(info.confidence(), 0.98 * 0.85),
        "{}",
        info.confidence()
    );
}

#[test]
fn platform_ci_and_debug_signals() {
    for (name, _) in PLATFORM_VARIABLES {
        let info = detect(MapSource::new().var(name, "x"));
        assert_eq!(info.environment(), Production, "{name}");
        assert!(approx(info.confidence(), 0.70), "{name}");
        let signal = &info.signals()[0];
        assert_eq!(signal.value, "set", "platform values are not echoed");
    }
    for name in CI_VARIABLES.iter().take(4) {
        let info = detect(MapSource::new().var(name, "true"));
        assert_eq!(info.environment(), Testing, "{name}");
        assert!(approx(info.confidence(), 0.75), "{name}");
    }
    assert_eq!(
        detect(MapSource::new().var("CI", "false")).environment(),
        Unknown
    );
    // DEBUG=true is a hint: it may not relax the policy on its own.
    let on = detect(MapSource::new().var("DEBUG", "true"));
    assert_eq!(on.environment(), Unknown);
    assert!(on.strict_policy());
    assert_eq!(on.hints()[0].source, "DEBUG");
    let off = detect(MapSource::new().var("DEBUG", "false"));
    assert_eq!((off.environment(), off.confidence()), (Production, 0.75));
}

#[test]
fn hostname_patterns_only_tighten() {
    for (host, env, conf) in [
        ("api-prod-3", Production, 0.70),
        ("web.staging.example", Staging, 0.65),
    ] {
        let info = detect(MapSource::new().hostname(host));
        assert_eq!(info.environment(), env, "{host}");
        assert!(approx(info.confidence(), conf), "{host}");
        assert_eq!(info.detected_by(), "hostname");
    }
    // Host names that would relax the policy are hints: the verdict stays unknown (strict).
    // Words that merely start like an environment name nothing, not even a hint.
    for host in ["devon-web-01", "device-gateway-3", "devops-runner"] {
        let info = detect(MapSource::new().hostname(host));
        assert_eq!(info.environment(), Unknown, "{host}");
        assert!(info.strict_policy() && info.hints().is_empty(), "{host}");
    }
    for (host, hinted) in [
        ("alice-dev-laptop", Development),
        ("localhost.localdomain", Development),
        ("localhost", Development),
        ("ci-runner-7", Testing),
    ] {
        let info = detect(MapSource::new().hostname(host));
        assert_eq!(info.environment(), Unknown, "{host}");
        assert!(info.strict_policy(), "{host}");
        assert!(info.signals().is_empty(), "{host}");
        assert_eq!(info.hints().len(), 1, "{host}");
        assert_eq!(info.hints()[0].environment, hinted, "{host}");
        assert!(info.reasoning().contains("hint"), "{host}");
        assert!(
            info.reasoning().contains("ENVIRONMENT=development"),
            "{host}"
        );
    }
    assert_eq!(
        detect(MapSource::new().hostname("b7c1e9")).environment(),
        Unknown
    );
    // An explicit variable still relaxes, whatever the host name.
    let info = detect(
        MapSource::new()
            .hostname("api-prod-3")
            .var("ENVIRONMENT", "development"),
    );
    assert_eq!(info.environment(), Development);
}

#[test]
fn file_indicators_are_hints_only_without_explicit_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join(".env"), "X=1\n").unwrap();
    let info = detect(MapSource::new().dir(dir.path()));
    assert_eq!(info.environment(), Unknown, "files alone never relax");
    assert!(info.strict_policy());
    assert!(info.signals().is_empty());
    assert_eq!(info.hints().len(), 2);
    assert!(info.hints().iter().all(|s| s.source.starts_with("file:")));

    let info = detect(
        MapSource::new()
            .dir(dir.path())
            .var("ENVIRONMENT", "production"),
    );
    assert_eq!(info.environment(), Production);
    assert!(
        info.signals()
            .iter()
            .all(|s| !s.source.starts_with("file:"))
    );
    assert!(info.hints().is_empty());
    assert!(approx(info.confidence(), 0.95));
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
    assert_eq!(info.environment(), Production);
    assert!(approx(info.confidence(), 0.98), "{}", info.confidence());

    // CI (0.75 > 0.70) conflicts with ENVIRONMENT=production: 0.95 * 0.85.
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("CI", "true"),
    );
    assert_eq!(info.environment(), Production);
    assert!(approx(info.confidence(), 0.8075), "{}", info.confidence());
    assert!(info.reasoning().contains("conflicting"));

    // DEBUG=true (0.70, not above the threshold) does not lower it.
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("DEBUG", "true"),
    );
    assert!(approx(info.confidence(), 0.95));
}

#[test]
fn no_signal_is_unknown_at_half_confidence_and_says_how_to_declare() {
    let info = detect(MapSource::new());
    assert_eq!(info.environment(), Unknown);
    assert!(approx(info.confidence(), 0.50));
    assert_eq!(info.detected_by(), "none");
    assert!(info.reasoning().contains("ENVIRONMENT=development"));
    assert!(info.signals().is_empty());
    assert!(info.strict_policy());
    // Unrecognised values are not signals.
    assert_eq!(
        detect(MapSource::new().var("ENVIRONMENT", "banana")).environment(),
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
        info.environment(),
        Production,
        "the override never changes the environment"
    );
    assert!(info.development_override());
    assert!(!info.strict_policy());
    assert!(info.reasoning().contains("override"));
    assert_eq!(info.security_mode(), SecurityMode::DevelopmentOverride);
    assert_eq!(info.metadata()["security_mode"], "development_override");
    let strict = detect(MapSource::new().var("REDIS_SECURITY_MODE", "production"));
    assert!(!strict.development_override());
    assert_eq!(strict.metadata()["security_mode"], "strict");
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
        "hints",
        "security_mode",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert_eq!(json["environment"], "staging");
    assert_eq!(json["feature_context"], "default");
    assert_eq!(json["security_mode"], "strict");
    let signal = &json["signals"][0];
    for field in ["source", "value", "environment", "confidence", "reasoning"] {
        assert!(signal.get(field).is_some(), "{field}");
    }
    assert!(approx(info.confidence(), 0.98));
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

#[test]
fn one_policy_answers_every_question() {
    let policy = |source: MapSource| Policy::for_env(&detect(source));
    let production = policy(MapSource::new().var("ENVIRONMENT", "production"));
    let unknown = policy(MapSource::new());
    let staging = policy(MapSource::new().var("APP_ENV", "stg2"));
    let testing = policy(MapSource::new().var("CI", "true"));
    let development = policy(MapSource::new().var("ENVIRONMENT", "development"));
    let overridden = policy(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("REDIS_SECURITY_MODE", "development"),
    );
    for strict in [production, unknown, staging] {
        assert!(strict.is_strict());
        for r in Requirement::ALL {
            assert_eq!(strict.enforcement(r), Enforcement::Error, "{r}");
        }
    }
    // Testing keeps everything production requires of the Redis transport and of sealing.
    assert!(!testing.is_strict());
    for r in [
        Requirement::Tls,
        Requirement::AclUser,
        Requirement::Password,
        Requirement::EncryptionKey,
    ] {
        assert!(testing.refuses_without(r), "{r}");
    }
    assert!(!testing.refuses_without(Requirement::ApiKey));
    for relaxed in [development, overridden] {
        assert!(!relaxed.is_strict());
        assert!(
            Requirement::ALL
                .iter()
                .all(|r| !relaxed.refuses_without(*r))
        );
    }
    assert!(overridden.development_override());
    assert_eq!(
        [production, staging, testing, development].map(|p| p.password_bits()),
        [192, 144, 96, 64]
    );
    assert_eq!(unknown.password_bits(), 192);
    assert_eq!(
        testing.refused(&[Requirement::Tls, Requirement::ApiKey]),
        vec![Requirement::Tls]
    );
}

#[test]
fn settings_overlay_declares_the_environment() {
    // A host name that would once have said "development", with `environment = "production"`
    // from a settings file laid over the process.
    let process = MapSource::new().hostname("devon-web-01");
    let info =
        EnvironmentDetector::new(Overlay::new(process.clone()).var("ENVIRONMENT", "production"))
            .detect(FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment(), Production);
    assert!(info.strict_policy());
    let info =
        EnvironmentDetector::new(Overlay::new(process).var("REDIS_SECURITY_MODE", "development"))
            .detect(FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment(), Unknown);
    assert!(info.development_override());
}

#[test]
fn relaxing_needs_the_explicit_declarations_to_agree() {
    for vars in [
        // Equal-strength declarations that disagree.
        &[("RAILS_ENV", "production"), ("NODE_ENV", "development")][..],
        &[("APP_ENV", "development"), ("RAILS_ENV", "production")],
        &[("NODE_ENV", "development"), ("DJANGO_ENV", "prod")],
        &[("APP_ENV", "dev-x"), ("ENV", "prod-x")],
        // A misspelt or look-alike ENVIRONMENT value beside a relaxing one.
        &[("ENVIRONMENT", "prduction"), ("NODE_ENV", "development")],
        &[("ENVIRONMENT", "ρrod"), ("NODE_ENV", "development")],
        // CI beside a declaration of production.
        &[("CI", "true"), ("APP_ENV", "staging")],
    ] {
        let info = detect(MapSource::new().vars(vars.iter().copied()));
        assert!(
            info.strict_policy(),
            "{vars:?} relaxed the policy: {}",
            info.reasoning()
        );
        if info.environment() == Unknown {
            assert_eq!(info.detected_by(), "conflict", "{vars:?}");
            assert!(info.reasoning().contains("disagree"), "{vars:?}");
        }
    }
    // Agreement relaxes as before.
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "development")
            .var("NODE_ENV", "dev"),
    );
    assert_eq!(info.environment(), Development);
    // A stronger production declaration still simply wins.
    let info = detect(
        MapSource::new()
            .var("ENVIRONMENT", "production")
            .var("NODE_ENV", "development"),
    );
    assert_eq!(info.environment(), Production);
}

#[test]
fn paths_and_prefix_words_in_explicit_variables_declare_nothing() {
    for (name, value) in [
        ("ENV", "/usr/local/etc/shrc"),
        ("ENV", "/home/devon/.shrc"),
        ("STAGE", "/home/devon/.shrc"),
        ("ENVIRONMENT", "devon"),
        ("ENVIRONMENT", "device-fleet-eu"),
        ("ENVIRONMENT", "devops"),
        ("APP_ENV", "developmnt"),
    ] {
        let info = detect(MapSource::new().var(name, value));
        assert_eq!(info.environment(), Unknown, "{name}={value}");
        assert!(info.strict_policy(), "{name}={value}");
        assert!(
            info.reasoning().contains("names no known environment"),
            "{name}={value}: {}",
            info.reasoning()
        );
    }
}
