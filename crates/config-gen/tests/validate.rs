//! Every validator rule, triggered by breaking exactly one thing in a generated configuration.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use sealcache_config_gen::{
    DeploymentOptions, OutputFormat, Recommendation, SecureConfigGenerator, Severity,
    ValidationInput, ValidationReport, layout, validate, validate_dir, write_deployment,
};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};

fn generated(env: Environment) -> tempfile::TempDir {
    let info = EnvironmentDetector::new(MapSource::new()).detect(FeatureContext::Default);
    let config = SecureConfigGenerator::generate_for_environment(&info, Some(env)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_deployment(&config, tmp.path(), &DeploymentOptions::default()).unwrap();
    tmp
}

fn edit_env(dir: &Path, f: impl Fn(&str) -> String) {
    let path = dir.join(layout::ENV_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, f(&text)).unwrap();
}

fn set_var(dir: &Path, key: &str, value: &str) {
    edit_env(dir, |text| {
        let mut out: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str(&format!("{key}={value}\n"));
        out
    });
}

fn has(report: &ValidationReport, code: &str, severity: Severity) -> bool {
    report
        .issues
        .iter()
        .any(|i| i.code == code && i.severity == severity)
}

fn assert_issue(report: &ValidationReport, code: &str, severity: Severity) {
    assert!(
        has(report, code, severity),
        "expected {code} ({severity:?}) in {:#?}",
        report.issues
    );
    let json = serde_json::to_string(report).unwrap();
    for field in [
        "\"environment\"",
        "\"confidence\"",
        "\"security_score\"",
        "\"issues\"",
        "\"recommendation\"",
        "\"code\"",
        "\"severity\"",
        "\"message\"",
        "\"remedy\"",
    ] {
        assert!(json.contains(field), "{field}");
    }
    if severity == Severity::Error {
        assert_eq!(report.recommendation, Recommendation::Regenerate);
        assert!(report.security_score <= 75);
    }
}

fn write_secret(dir: &Path, rel: &str, value: &str) {
    std::fs::write(dir.join(rel), value).unwrap();
}

#[test]
fn weak_passwords() {
    let d = generated(Environment::Production);
    write_secret(d.path(), layout::APP_PASSWORD, "short1A");
    let r = validate_dir(d.path(), None).unwrap();
    assert_issue(&r, "PASSWORD_TOO_SHORT", Severity::Error);
    assert_issue(&r, "PASSWORD_LOW_ENTROPY", Severity::Error);
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains("short1A"),
        "a password value appears in the report"
    );

    write_secret(d.path(), layout::APP_PASSWORD, "foobared");
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "PASSWORD_DENYLISTED",
        Severity::Error,
    );

    let same = std::fs::read_to_string(d.path().join(layout::ADMIN_PASSWORD)).unwrap();
    write_secret(d.path(), layout::APP_PASSWORD, &same);
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "PASSWORD_REUSED",
        Severity::Error,
    );

    // In development a short password is only a warning.
    let dev = generated(Environment::Development);
    write_secret(dev.path(), layout::APP_PASSWORD, "Ab1");
    let r = validate_dir(dev.path(), None).unwrap();
    assert_issue(&r, "PASSWORD_TOO_SHORT", Severity::Warning);
    assert_eq!(r.recommendation, Recommendation::Acceptable);
}

#[test]
fn encryption_key_missing_or_wrong_size() {
    let d = generated(Environment::Production);
    std::fs::remove_file(d.path().join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "ENCRYPTION_KEY_MISSING",
        Severity::Error,
    );

    let d = generated(Environment::Production);
    write_secret(d.path(), layout::ENCRYPTION_KEYRING, "c2hvcnQga2V5");
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "ENCRYPTION_KEY_INVALID",
        Severity::Error,
    );

    let d = generated(Environment::Production);
    edit_env(d.path(), |t| {
        t.lines()
            .filter(|l| !l.starts_with("REDIS_ENCRYPTION_KEYS_FILE"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "ENCRYPTION_KEY_MISSING",
        Severity::Error,
    );
}

#[test]
fn tls_off_in_every_strict_environment() {
    for env in [
        Environment::Production,
        Environment::Staging,
        Environment::Unknown,
    ] {
        let d = generated(env);
        set_var(d.path(), "REDIS_TLS_ENABLED", "false");
        set_var(d.path(), "REDIS_URL", "redis://redis:6379/0");
        assert_issue(
            &validate_dir(d.path(), Some(env)).unwrap(),
            "TLS_DISABLED",
            Severity::Error,
        );
    }
    let dev = generated(Environment::Development);
    let r = validate_dir(dev.path(), None).unwrap();
    assert!(!has(&r, "TLS_DISABLED", Severity::Error));
    let d = generated(Environment::Production);
    set_var(d.path(), "REDIS_URL", "redis://redis:6379/0");
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "TLS_SCHEME_MISMATCH",
        Severity::Error,
    );
}

#[test]
fn urls_with_insecure_flags_or_credentials() {
    let d = generated(Environment::Production);
    set_var(d.path(), "REDIS_URL", "rediss://redis:6379/0#insecure");
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "TLS_INSECURE_FLAG",
        Severity::Error,
    );

    let d = generated(Environment::Development);
    set_var(
        d.path(),
        "REDIS_URL",
        "redis://cache_app:hunter2hunter2@redis:6379/0",
    );
    let r = validate_dir(d.path(), None).unwrap();
    assert_issue(&r, "PLAINTEXT_CREDENTIALS", Severity::Error);
    assert!(!serde_json::to_string(&r).unwrap().contains("hunter2"));

    let d = generated(Environment::Production);
    set_var(d.path(), "REDIS_URL", "rediss://cache_app:pw@redis:6379/0");
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "URL_CREDENTIALS",
        Severity::Warning,
    );
}

#[test]
fn certificates_expired_or_expiring() {
    let d = generated(Environment::Production);
    let expired = rcgen_cert(-2);
    std::fs::write(d.path().join(layout::SERVER_CERT), expired).unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "CERT_EXPIRED",
        Severity::Error,
    );
    let d = generated(Environment::Production);
    std::fs::write(d.path().join(layout::CLIENT_CERT), rcgen_cert(10)).unwrap();
    let r = validate_dir(d.path(), None).unwrap();
    assert_issue(&r, "CERT_EXPIRING", Severity::Warning);
    assert_eq!(r.security_score, 90, "{:#?}", r.issues);
    assert_eq!(r.recommendation, Recommendation::Acceptable);
    let d = generated(Environment::Production);
    let server = std::fs::read(d.path().join(layout::SERVER_CERT)).unwrap();
    std::fs::write(d.path().join(layout::CLIENT_CERT), server).unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "CERT_REUSED",
        Severity::Error,
    );
}

/// A self-signed certificate whose notAfter is `days` from now.
fn rcgen_cert(days: i64) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["redis".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now + time::Duration::days(days) + time::Duration::hours(1);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn loose_permissions_and_exposed_ca_key() {
    let d = generated(Environment::Production);
    std::fs::set_permissions(
        d.path().join(layout::API_KEY),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "SECRET_FILE_PERMISSIONS",
        Severity::Error,
    );
    let d = generated(Environment::Production);
    std::fs::set_permissions(
        d.path().join(layout::SECRETS_DIR),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "SECRET_FILE_PERMISSIONS",
        Severity::Error,
    );
    // `up`'s layout for the compose stack: `secrets/` and `secrets/tls/` root's, their group
    // (the containers') may list and enter them, 0750: accepted when root owns them; the same
    // modes on directories another user owns stay loose.
    let d = generated(Environment::Production);
    for rel in [layout::SECRETS_DIR, layout::TLS_DIR] {
        std::fs::set_permissions(d.path().join(rel), std::fs::Permissions::from_mode(0o750))
            .unwrap();
    }
    let as_root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(d.path()).unwrap()) == 0;
    assert_eq!(
        has(
            &validate_dir(d.path(), None).unwrap(),
            "SECRET_FILE_PERMISSIONS",
            Severity::Error
        ),
        !as_root
    );
    let d = generated(Environment::Production);
    std::fs::copy(
        d.path().join(layout::CA_KEY),
        d.path().join("secrets/tls/ca.key"),
    )
    .unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "CA_KEY_EXPOSED",
        Severity::Error,
    );
}

#[test]
fn acl_default_user_and_plaintext_passwords() {
    let d = generated(Environment::Production);
    let acl = std::fs::read_to_string(d.path().join(layout::USERS_ACL)).unwrap();
    std::fs::write(
        d.path().join(layout::USERS_ACL),
        acl.replace("user default off", "user default on nopass ~* +@all"),
    )
    .unwrap();
    let r = validate_dir(d.path(), None).unwrap();
    assert_issue(&r, "ACL_DEFAULT_USER_ENABLED", Severity::Error);
    assert_issue(&r, "ACL_PLAINTEXT_PASSWORD", Severity::Error);
    let d = generated(Environment::Production);
    std::fs::remove_file(d.path().join(layout::USERS_ACL)).unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "ACL_FILE_MISSING",
        Severity::Error,
    );
}

#[test]
fn acl_replication_user_beyond_replication_is_an_error() {
    let d = generated(Environment::Production);
    let path = d.path().join(layout::USERS_ACL);
    let acl = std::fs::read_to_string(&path).unwrap();
    let hash = "#".to_owned() + &"ab".repeat(32);
    std::fs::write(
        &path,
        format!("{acl}user cache_replication on {hash} ~* -@all +psync +replconf +ping\n"),
    )
    .unwrap();
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "ACL_REPLICATION_OVERPRIVILEGED",
        Severity::Error,
    );
}

#[test]
fn development_override_in_production() {
    let d = generated(Environment::Production);
    set_var(d.path(), "REDIS_SECURITY_MODE", "development");
    let r = validate_dir(d.path(), None).unwrap();
    assert_eq!(r.environment, Environment::Production);
    assert_issue(&r, "DEV_OVERRIDE_IN_PRODUCTION", Severity::Error);
    let d = generated(Environment::Staging);
    set_var(d.path(), "REDIS_SECURITY_MODE", "development");
    assert_issue(
        &validate_dir(d.path(), None).unwrap(),
        "DEV_OVERRIDE_IN_PRODUCTION",
        Severity::Warning,
    );
}

#[test]
fn score_is_deterministic_and_weighted() {
    let d = generated(Environment::Production);
    set_var(d.path(), "REDIS_URL", "rediss://u:p@redis:6379/0"); // one warning
    let a = validate_dir(d.path(), None).unwrap();
    let b = validate_dir(d.path(), None).unwrap();
    assert_eq!(a.security_score, 90);
    assert_eq!(a.security_score, b.security_score);
    set_var(d.path(), "REDIS_TLS_ENABLED", "false"); // + TLS_DISABLED, TLS_SCHEME_MISMATCH
    let c = validate_dir(d.path(), None).unwrap();
    assert_eq!(c.security_score, 100 - 10 - 25 - 25, "{:?}", c.issues);
    assert_eq!(c.issues[0].severity, Severity::Error, "errors come first");
}

#[test]
fn env_file_input_and_unusable_input() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("template.env");
    std::fs::write(
        &file,
        "ENVIRONMENT=production\nREDIS_URL=redis://:changeme@localhost:6379/0\nREDIS_PASSWORD=changeme\nREDIS_TLS_ENABLED=false\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = validate(&ValidationInput::EnvFile(file.clone()), None).unwrap();
    for code in [
        "PASSWORD_DENYLISTED",
        "ENCRYPTION_KEY_MISSING",
        "TLS_DISABLED",
        "PLAINTEXT_CREDENTIALS",
    ] {
        assert_issue(&r, code, Severity::Error);
    }
    assert_eq!(r.security_score, 0);
    assert!(!serde_json::to_string(&r).unwrap().contains("changeme"));

    assert!(
        validate(
            &ValidationInput::EnvFile(tmp.path().join("missing.env")),
            None
        )
        .is_err()
    );
    assert!(validate_dir(&tmp.path().join("nope"), None).is_err());
    std::fs::write(tmp.path().join("bad.env"), "THIS LINE HAS NO EQUALS\n").unwrap();
    assert!(validate(&ValidationInput::EnvFile(tmp.path().join("bad.env")), None).is_err());
    let _ = OutputFormat::Dir;
}

/// The validator asks the same policy as the cache: testing keeps the Redis transport rules, so
/// TLS off is an error there too, and only development makes it a warning.
#[test]
fn testing_keeps_tls_like_the_cache_does() {
    let d = generated(Environment::Testing);
    set_var(d.path(), "REDIS_TLS_ENABLED", "false");
    set_var(d.path(), "REDIS_URL", "redis://redis:6379/0");
    assert_issue(
        &validate_dir(d.path(), Some(Environment::Testing)).unwrap(),
        "TLS_DISABLED",
        Severity::Error,
    );
    let r = validate_dir(d.path(), Some(Environment::Development)).unwrap();
    assert!(!has(&r, "TLS_DISABLED", Severity::Error));
}

/// A broken dictionary line in the keyring is reported as a dictionary problem (the keys are
/// fine), never as an encryption-key problem that would send an operator to regenerate keys.
#[test]
fn a_broken_dictionary_line_is_its_own_issue() {
    let d = generated(Environment::Production);
    let keyring = d.path().join(layout::ENCRYPTION_KEYRING);
    let mut text = std::fs::read_to_string(&keyring).unwrap();
    text.push_str("dictionary 7 aGVsbG8gd29ybGQ=\n");
    std::fs::write(&keyring, text).unwrap();
    let r = validate_dir(d.path(), Some(Environment::Production)).unwrap();
    assert_issue(&r, "DICTIONARY_INVALID", Severity::Error);
    assert!(!has(&r, "ENCRYPTION_KEY_INVALID", Severity::Error));
}

/// `up` validates as root a directory whose secrets the backend container may write: a link
/// there is never read through, a FIFO never waited on, and a link to `/` never walked.
#[test]
fn links_and_fifos_in_the_secrets_are_never_followed_or_waited_on() {
    let d = generated(Environment::Production);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("file"), "OUTSIDE").unwrap();
    let app = d.path().join(layout::APP_PASSWORD);
    std::fs::remove_file(&app).unwrap();
    std::os::unix::fs::symlink(outside.path().join("file"), &app).unwrap();
    std::os::unix::fs::symlink("/", d.path().join("secrets/backend/root")).unwrap();
    match validate_dir(d.path(), None) {
        Err(e) => assert!(e.to_string().contains("cannot read"), "{e}"),
        Ok(r) => panic!("a linked password was read: {r:#?}"),
    }
    std::fs::remove_file(&app).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&app)
            .status()
            .unwrap()
            .success()
    );
    // Returns (an error), never waits for a writer.
    assert!(validate_dir(d.path(), None).is_err());
}
