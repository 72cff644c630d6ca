//! `SecuritySettings::load_from`: precedence, `*_FILE` secrets, cross-field checks, deprecated
//! aliases, misspelled names, byte order marks, and errors that name the key and its source but
//! never the value. The process environment is never touched.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use std::path::PathBuf;
use std::time::Duration;

use sealcache_codec::{Keyring, SecretKey};
use sealcache_settings::{ALIASES, Error, NEAR_MISSES, OTHER_VARIABLES, SecuritySettings};

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

fn load(pairs: &[(&str, &str)]) -> Result<SecuritySettings, Error> {
    SecuritySettings::load_from(&vars(pairs), None)
}

/// A value that is valid for `canonical`, and what the loaded setting then shows.
fn sample(canonical: &str) -> &'static str {
    match canonical {
        "REDIS_URL" => "rediss://cache.internal:6380/2",
        "REDIS_TLS_ENABLED" => "true",
        "REDIS_TLS_CA_PATH" | "REDIS_TLS_CERT_PATH" | "REDIS_TLS_KEY_PATH" => "/etc/tls/file.pem",
        _ => "value-from-alias",
    }
}

/// The loaded value of `canonical`, as text.
fn shown(s: &SecuritySettings, canonical: &str) -> String {
    let path = |p: &Option<PathBuf>| p.as_ref().unwrap().display().to_string();
    match canonical {
        "REDIS_PASSWORD" => s
            .redis_password
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned(),
        "REDIS_MONITOR_PASSWORD" => s
            .redis_monitor_password
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned(),
        "REDIS_USERNAME" => s.redis_username.clone(),
        "REDIS_URL" => s.redis_url.clone(),
        "REDIS_TLS_ENABLED" => s.redis_tls_enabled.to_string(),
        "REDIS_TLS_CA_PATH" => path(&s.redis_tls_ca_path),
        "REDIS_TLS_CERT_PATH" => path(&s.redis_tls_cert_path),
        "REDIS_TLS_KEY_PATH" => path(&s.redis_tls_key_path),
        "CACHE_NAMESPACE" => s.cache_namespace.clone(),
        other => panic!("no test value for {other}"),
    }
}

#[test]
fn every_alias_is_read_as_its_canonical_name_with_one_warning() {
    for &(alias, canonical) in ALIASES {
        let value = sample(canonical);
        let s = load(&[(alias, value)]).unwrap_or_else(|e| panic!("{alias}: {e}"));
        assert_eq!(shown(&s, canonical), value, "{alias}");
        assert_eq!(s.deprecated_aliases, [(alias, canonical)], "{alias}");
        assert_eq!(
            s.sources[canonical],
            format!("environment variable {alias} (deprecated name)")
        );

        // The same value under both names is fine, and still warned about once.
        let s = load(&[(alias, value), (canonical, value)]).unwrap();
        assert_eq!(shown(&s, canonical), value, "{alias}");
        assert_eq!(s.deprecated_aliases, [(alias, canonical)], "{alias}");
        assert_eq!(s.sources[canonical], "environment variable");

        // In the TOML file too, as a lower-case key.
        let tmp = tempfile::tempdir().unwrap();
        let toml = tmp.path().join("sealcache.toml");
        std::fs::write(
            &toml,
            format!("{} = \"{value}\"\n", alias.to_ascii_lowercase()),
        )
        .unwrap();
        let s = SecuritySettings::load_from(&BTreeMap::new(), Some(&toml)).unwrap();
        assert_eq!(shown(&s, canonical), value, "{alias} in TOML");
        assert_eq!(
            s.deprecated_aliases,
            [(alias, canonical)],
            "{alias} in TOML"
        );
        assert!(s.sources[canonical].contains("sealcache.toml"));
    }
    assert!(load(&[]).unwrap().deprecated_aliases.is_empty());
}

#[test]
fn an_alias_in_both_layers_is_warned_about_once_and_variables_still_win() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("sealcache.toml");
    std::fs::write(
        &toml,
        "redis_acl_username = \"from_toml\"\nredis_auth = \"pw-toml\"\n",
    )
    .unwrap();
    let s = SecuritySettings::load_from(
        &vars(&[
            ("REDIS_ACL_USERNAME", "from_env"),
            ("REDIS_PASSWORD", "pw-env"),
        ]),
        Some(&toml),
    )
    .unwrap();
    assert_eq!(s.redis_username, "from_env");
    // Across layers the usual precedence applies: no conflict.
    assert_eq!(s.redis_password.as_ref().unwrap().expose_secret(), "pw-env");
    assert_eq!(
        s.deprecated_aliases,
        [
            ("REDIS_ACL_USERNAME", "REDIS_USERNAME"),
            ("REDIS_AUTH", "REDIS_PASSWORD")
        ]
    );
}

#[test]
fn an_alias_and_its_canonical_name_with_different_values_is_an_error_naming_both() {
    let err = load(&[
        ("REDIS_AUTH", "hunter2-old"),
        ("REDIS_PASSWORD", "hunter2-new"),
    ])
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AliasConflict {
                alias: "REDIS_AUTH",
                other: "REDIS_PASSWORD",
                canonical: "REDIS_PASSWORD"
            }
        ),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert_eq!(
        err.to_string(),
        "both REDIS_AUTH and REDIS_PASSWORD are set, to different values; set only REDIS_PASSWORD"
    );
    assert!(!text.contains("hunter2"), "{text}");

    // Two aliases of one setting.
    let err = load(&[("REDIS_AUTH", "a-one"), ("REDIS_ACL_PASSWORD", "a-two")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("REDIS_AUTH") && text.contains("REDIS_ACL_PASSWORD"),
        "{text}"
    );
    assert!(text.contains("set only REDIS_PASSWORD"), "{text}");

    // The username alias that used to lose silently.
    let err = load(&[("REDIS_ACL_USERNAME", "a"), ("REDIS_USERNAME", "b")]).unwrap_err();
    assert!(matches!(
        err,
        Error::AliasConflict {
            alias: "REDIS_ACL_USERNAME",
            canonical: "REDIS_USERNAME",
            ..
        }
    ));

    // Within the TOML file as well.
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("sealcache.toml");
    std::fs::write(
        &toml,
        "redis_ssl = \"false\"\nredis_tls_enabled = \"true\"\n",
    )
    .unwrap();
    let err = SecuritySettings::load_from(&BTreeMap::new(), Some(&toml)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::AliasConflict {
                alias: "REDIS_SSL",
                canonical: "REDIS_TLS_ENABLED",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_near_miss_is_an_error_naming_the_right_variable() {
    let err = load(&[("REDIS_ENCRYPTION_KEY_FILE", "/run/secrets/hunter2")]).unwrap_err();
    match &err {
        Error::MisspelledSetting {
            found,
            expected,
            source_name,
        } => {
            assert_eq!(found, "REDIS_ENCRYPTION_KEY_FILE");
            assert_eq!(*expected, "REDIS_ENCRYPTION_KEYS_FILE");
            assert_eq!(source_name, "environment variable");
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("did you mean REDIS_ENCRYPTION_KEYS_FILE"),
        "{text}"
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    for (found, expected) in [
        ("REDIS_PASSWORD_PATH", "REDIS_PASSWORD_FILE"),
        ("REDIS_TLS_CA_FILE", "REDIS_TLS_CA_PATH"),
        ("REDIS_TLS_CERT_FILE", "REDIS_TLS_CERT_PATH"),
        ("REDIS_TLS_KEY_FILE", "REDIS_TLS_KEY_PATH"),
        ("REDIS_USER", "REDIS_USERNAME"),
        ("API_KEY_PATH", "API_KEY_FILE"),
        // Not in the table: within two edits of a setting.
        ("REDIS_URI", "REDIS_URL"),
        ("REDIS_PASWORD", "REDIS_PASSWORD"),
        ("CACHE_NAMESPASE", "CACHE_NAMESPACE"),
        ("SEALCACHE_LISTN", "SEALCACHE_LISTEN"),
        ("SEALCACHE_MAX_INFLIGHT", "SEALCACHE_MAX_IN_FLIGHT"),
        ("REDIS_TLS_ENABLE", "REDIS_TLS_ENABLED"),
    ] {
        match load(&[(found, "x")]) {
            Err(Error::MisspelledSetting { expected: e, .. }) => assert_eq!(e, expected, "{found}"),
            other => panic!("{found}: {other:?}"),
        }
    }
    for found in ["API_KEYS", "REDIS_ENCRYPTION_KEYS"] {
        let err = load(&[(found, "x")]).unwrap_err();
        let expected = NEAR_MISSES.iter().find(|(f, _)| *f == found).unwrap().1;
        assert!(err.to_string().contains(expected), "{err}");
    }

    // An unknown SEALCACHE_* variable is refused, whatever it resembles.
    let err = load(&[("SEALCACHE_COLOUR", "blue")]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownSetting { found, .. } if found == "SEALCACHE_COLOUR"),
        "{err:?}"
    );

    // In the TOML file: misspelled and unknown keys are refused, naming the file.
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("sealcache.toml");
    std::fs::write(&toml, "redis_encryption_key_file = \"/x\"\n").unwrap();
    let err = SecuritySettings::load_from(&BTreeMap::new(), Some(&toml)).unwrap_err();
    assert!(
        matches!(&err, Error::MisspelledSetting { expected: "REDIS_ENCRYPTION_KEYS_FILE", source_name, .. } if source_name.contains("sealcache.toml")),
        "{err:?}"
    );
    std::fs::write(&toml, "favourite_colour = \"blue\"\n").unwrap();
    let err = SecuritySettings::load_from(&BTreeMap::new(), Some(&toml)).unwrap_err();
    assert!(matches!(err, Error::UnknownSetting { .. }), "{err:?}");
}

#[test]
fn variables_other_parts_read_and_foreign_ones_are_left_alone() {
    let mut pairs: Vec<(&str, &str)> = OTHER_VARIABLES.iter().map(|v| (*v, "1")).collect();
    pairs.extend([
        ("SEALCACHE_BENCH_SECS", "5"),
        ("SEALCACHE_BENCH_ANYTHING_NEW", "1"),
        ("REDIS_HOST", "redis"),
        ("REDIS_PORT", "6379"),
        ("REDIS_DB", "0"),
        ("REDIS_VERSION", "7.2.5"),
        ("CACHE_TTL", "3600"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("PATH", "/usr/bin"),
        // Set but empty counts as unset, misspelled or not.
        ("REDIS_USER", ""),
    ]);
    let s = load(&pairs).unwrap();
    assert!(s.deprecated_aliases.is_empty());
}

#[test]
fn byte_order_marks_and_crlf_are_stripped_from_secret_files_and_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "\u{feff}s3cret\r\n").unwrap();
    let api = tmp.path().join("api");
    std::fs::write(&api, format!("\u{feff}{}\r\n", "k".repeat(40))).unwrap();
    let ring = Keyring::generate()
        .unwrap()
        .rotate(SecretKey::generate().unwrap());
    let keyring = tmp.path().join("keyring");
    let windows = format!("\u{feff}{}", ring.to_text().replace('\n', "\r\n"));
    std::fs::write(&keyring, windows).unwrap();
    let s = load(&[
        ("REDIS_PASSWORD_FILE", pw.to_str().unwrap()),
        ("API_KEY_FILE", api.to_str().unwrap()),
        ("REDIS_ENCRYPTION_KEYS_FILE", keyring.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(s.redis_password.as_ref().unwrap().expose_secret(), "s3cret");
    assert_eq!(s.api_keys[0].expose_secret(), "k".repeat(40));
    let loaded = s.keyring.as_ref().unwrap();
    assert_eq!(loaded.primary_id(), ring.primary_id());
    assert_eq!(loaded.decrypt_only_ids(), ring.decrypt_only_ids());
    for ((id_a, a), (id_b, b)) in loaded.keys().zip(ring.keys()) {
        assert_eq!((id_a, a.expose_secret()), (id_b, b.expose_secret()));
    }

    // Plain variables: a leading mark (and a stray CR) go; inner text stays.
    let key = SecretKey::generate().unwrap();
    let s = load(&[
        ("REDIS_PASSWORD", "\u{feff}s3 cret\r"),
        (
            "REDIS_ENCRYPTION_KEY",
            &format!("\u{feff}{}", key.expose_text().as_str()),
        ),
        ("\u{feff}CACHE_NAMESPACE", "marked"),
    ])
    .unwrap();
    assert_eq!(
        s.redis_password.as_ref().unwrap().expose_secret(),
        "s3 cret"
    );
    assert_eq!(
        s.keyring.as_ref().unwrap().key(1).unwrap().expose_secret(),
        key.expose_secret()
    );
    assert_eq!(s.cache_namespace, "marked");

    // A TOML file saved with a mark and CRLF line ends.
    let toml = tmp.path().join("sealcache.toml");
    std::fs::write(
        &toml,
        "\u{feff}cache_namespace = \"ns\"\r\nsealcache_listen = \"0.0.0.0:1\"\r\n",
    )
    .unwrap();
    let s = SecuritySettings::load_from(&BTreeMap::new(), Some(&toml)).unwrap();
    assert_eq!(
        (s.cache_namespace.as_str(), s.listen.as_str()),
        ("ns", "0.0.0.0:1")
    );
}

#[test]
fn otel_service_name_and_status_interval_follow_the_precedence() {
    let s = load(&[]).unwrap();
    assert_eq!(s.otel_service_name, "sealcache-server");
    assert_eq!(s.status_interval, Duration::from_secs(15));

    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("sealcache.toml");
    std::fs::write(
        &toml,
        "otel_service_name = \"from-toml\"\nsealcache_status_interval_secs = 30\n",
    )
    .unwrap();
    let s = SecuritySettings::load_from(&BTreeMap::new(), Some(&toml)).unwrap();
    assert_eq!(s.otel_service_name, "from-toml");
    assert_eq!(s.status_interval, Duration::from_secs(30));
    assert!(s.sources["OTEL_SERVICE_NAME"].contains("sealcache.toml"));

    let s = SecuritySettings::load_from(
        &vars(&[
            ("OTEL_SERVICE_NAME", "from-env"),
            ("SEALCACHE_STATUS_INTERVAL_SECS", "5"),
        ]),
        Some(&toml),
    )
    .unwrap();
    assert_eq!(s.otel_service_name, "from-env");
    assert_eq!(s.status_interval, Duration::from_secs(5));
    assert_eq!(s.sources["OTEL_SERVICE_NAME"], "environment variable");

    let err = load(&[("SEALCACHE_STATUS_INTERVAL_SECS", "0")]).unwrap_err();
    assert!(
        err.to_string().contains("SEALCACHE_STATUS_INTERVAL_SECS"),
        "{err}"
    );
}

#[test]
fn cluster_nodes_exclude_a_custom_url_and_share_one_scheme() {
    let s = load(&[("REDIS_CLUSTER_NODES", "rediss://a:7000, rediss://b:7000,,")]).unwrap();
    assert_eq!(
        s.redis_cluster_nodes,
        ["rediss://a:7000", "rediss://b:7000"]
    );
    assert!(s.redis_tls_enabled);
    assert!(load(&[]).unwrap().redis_cluster_nodes.is_empty());

    let plain = load(&[("REDIS_CLUSTER_NODES", "redis://a:7000,redis://b:7000")]).unwrap();
    assert!(!plain.redis_tls_enabled, "derived from the nodes' scheme");

    for (pairs, key) in [
        (
            vec![
                ("REDIS_CLUSTER_NODES", "rediss://a:7000"),
                ("REDIS_URL", "rediss://user:hunter2@other:6379/0"),
            ],
            "REDIS_CLUSTER_NODES",
        ),
        (
            vec![(
                "REDIS_CLUSTER_NODES",
                "rediss://a:7000,redis://b:hunter2@x:7000",
            )],
            "REDIS_CLUSTER_NODES",
        ),
        (
            vec![("REDIS_CLUSTER_NODES", "http://hunter2@a:7000")],
            "REDIS_CLUSTER_NODES",
        ),
        (
            vec![
                ("REDIS_CLUSTER_NODES", "redis://a:7000"),
                ("REDIS_TLS_ENABLED", "true"),
            ],
            "REDIS_TLS_ENABLED",
        ),
    ] {
        let err = load(&pairs).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains(key), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    // The default REDIS_URL, spelled out, is no conflict.
    assert!(
        load(&[
            ("REDIS_CLUSTER_NODES", "rediss://a:7000"),
            ("REDIS_URL", "rediss://redis:6379/0"),
        ])
        .is_ok()
    );
}
