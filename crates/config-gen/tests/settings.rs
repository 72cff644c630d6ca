//! `SecuritySettings::load_from`: precedence, `*_FILE` secrets, cross-field checks, and errors
//! that name the key and its source but never the value. The process environment is never touched.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use sealcache_codec::SecretKey;
use sealcache_config_gen::{Error, SecuritySettings};

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_are_the_secure_ones() {
    let s = SecuritySettings::load_from(&BTreeMap::new(), None).unwrap();
    assert_eq!(s.redis_url, "rediss://redis:6379/0");
    assert!(s.redis_tls_enabled);
    assert_eq!(s.redis_username, "cache_app");
    assert_eq!(s.cache_namespace, "ai_cache");
    assert_eq!(s.listen, "127.0.0.1:8080");
    assert!(s.redis_network_isolation && s.redis_protected_mode);
    assert!(!s.metrics_public && !s.development_override);
    assert!(s.keyring.is_none() && s.redis_password.is_none() && s.api_keys.is_empty());
}

#[test]
fn variables_override_toml_which_overrides_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("sealcache.toml");
    std::fs::write(&toml, "cache_namespace = \"from_toml\"\nsealcache_listen = \"0.0.0.0:9000\"\nredis_protected_mode = false\n").unwrap();
    let s = SecuritySettings::load_from(&vars(&[("CACHE_NAMESPACE", "from_env")]), Some(&toml))
        .unwrap();
    assert_eq!(s.cache_namespace, "from_env");
    assert_eq!(s.listen, "0.0.0.0:9000");
    assert!(!s.redis_protected_mode, "TOML booleans are read");
    assert_eq!(s.sources["CACHE_NAMESPACE"], "environment variable");
    assert!(
        s.sources["SEALCACHE_LISTEN"].contains("sealcache.toml"),
        "{:?}",
        s.sources
    );
    assert!(
        SecuritySettings::load_from(&BTreeMap::new(), Some(&tmp.path().join("missing.toml")))
            .is_err()
    );
}

#[test]
fn secrets_come_from_files_and_both_forms_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "s3cret-from-file\n").unwrap();
    let keyring = tmp.path().join("keyring");
    let key = SecretKey::generate().unwrap();
    std::fs::write(&keyring, key.expose_text().as_bytes()).unwrap();
    let api = tmp.path().join("api");
    std::fs::write(&api, "k".repeat(40)).unwrap();
    let s = SecuritySettings::load_from(
        &vars(&[
            ("REDIS_PASSWORD_FILE", pw.to_str().unwrap()),
            ("REDIS_ENCRYPTION_KEYS_FILE", keyring.to_str().unwrap()),
            ("API_KEY_FILE", api.to_str().unwrap()),
            ("ADDITIONAL_API_KEYS", "second-key, third-key"),
            ("REDIS_ACL_USERNAME", "cache_app2"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(
        s.redis_password.as_ref().unwrap().expose_secret(),
        "s3cret-from-file"
    );
    assert_eq!(s.keyring.as_ref().unwrap().primary_id(), 1);
    assert_eq!(s.api_keys.len(), 3);
    assert_eq!(s.redis_username, "cache_app2");
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("s3cret-from-file") && !debug.contains("second-key"),
        "{debug}"
    );

    let err = SecuritySettings::load_from(
        &vars(&[
            ("REDIS_PASSWORD", "x"),
            ("REDIS_PASSWORD_FILE", pw.to_str().unwrap()),
        ]),
        None,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::BothPlainAndFileSet {
            var: "REDIS_PASSWORD",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "both REDIS_PASSWORD and REDIS_PASSWORD_FILE are set; set only one"
    );
    let err = SecuritySettings::load_from(
        &vars(&[
            ("REDIS_ENCRYPTION_KEY", "x"),
            ("REDIS_ENCRYPTION_KEYS_FILE", "y"),
        ]),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("REDIS_ENCRYPTION_KEYS_FILE"));
}

#[test]
fn errors_name_key_and_source_never_the_value() {
    let err = SecuritySettings::load_from(&vars(&[("REDIS_TLS_ENABLED", "maybe-hunter2")]), None)
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("REDIS_TLS_ENABLED") && shown.contains("environment variable"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");

    let err =
        SecuritySettings::load_from(&vars(&[("REDIS_ENCRYPTION_KEY", "hunter2hunter2")]), None)
            .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("bad.toml");
    std::fs::write(&toml, "redis_password = \"hunter2\nbroken").unwrap();
    let err = SecuritySettings::load_from(&BTreeMap::new(), Some(&toml)).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn tls_flag_must_agree_with_the_url_scheme() {
    let plain =
        SecuritySettings::load_from(&vars(&[("REDIS_URL", "redis://localhost:6379/0")]), None)
            .unwrap();
    assert!(
        !plain.redis_tls_enabled,
        "derived from the scheme when not set"
    );
    let err = SecuritySettings::load_from(
        &vars(&[
            ("REDIS_URL", "redis://localhost:6379/0"),
            ("REDIS_TLS_ENABLED", "true"),
        ]),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("REDIS_TLS_ENABLED"));
    let err = SecuritySettings::load_from(&vars(&[("REDIS_URL", "http://x")]), None).unwrap_err();
    assert!(err.to_string().contains("REDIS_URL"));
    let dev = SecuritySettings::load_from(&vars(&[("REDIS_SECURITY_MODE", "development")]), None)
        .unwrap();
    assert!(dev.development_override);
}
