//! The declarations are the one source: the struct defaults, the reader, `VARIABLES` and the
//! settings table agree with each other.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use sealcache_settings::{SETTINGS, SecuritySettings, ServerLimits, VARIABLES, markdown_table};

#[test]
fn reading_nothing_gives_the_declared_defaults() {
    let read = SecuritySettings::load_from(&BTreeMap::new(), None).unwrap();
    let declared = SecuritySettings::default();
    assert_eq!(read.limits, ServerLimits::default());
    assert_eq!(read.redis_url, declared.redis_url);
    assert_eq!(read.redis_tls_enabled, declared.redis_tls_enabled);
    assert_eq!(read.redis_username, declared.redis_username);
    assert_eq!(read.cache_namespace, declared.cache_namespace);
    assert_eq!(read.listen, declared.listen);
    assert_eq!(read.otel_service_name, declared.otel_service_name);
    assert_eq!(read.status_interval, declared.status_interval);
    assert_eq!(
        (read.redis_network_isolation, read.redis_protected_mode),
        (
            declared.redis_network_isolation,
            declared.redis_protected_mode
        )
    );
    assert_eq!(read.metrics_public, declared.metrics_public);
    assert_eq!(read.development_override, declared.development_override);
    assert!(read.keyring.is_none() && declared.keyring.is_none());
}

#[test]
fn every_variable_is_declared_once_and_listed() {
    let declared: Vec<&str> = SETTINGS.iter().flat_map(|s| s.variables).copied().collect();
    assert_eq!(
        declared, VARIABLES,
        "VARIABLES is the declarations' variables, in order"
    );
    let unique: BTreeSet<&str> = VARIABLES.iter().copied().collect();
    assert_eq!(
        unique.len(),
        VARIABLES.len(),
        "a variable is declared twice"
    );
    let fields: BTreeSet<&str> = SETTINGS.iter().map(|s| s.field).collect();
    assert_eq!(fields.len(), SETTINGS.len(), "a field is declared twice");
}

#[test]
fn every_setting_is_documented_with_a_kind_and_a_default() {
    for setting in SETTINGS {
        let meaning = setting.meaning();
        assert!(meaning.ends_with('.'), "{}: {meaning}", setting.field);
        assert!(
            !meaning.contains('|'),
            "{}: a | breaks the table",
            setting.field
        );
        assert!(!setting.kind().is_empty() && !setting.shown_default().is_empty());
    }
    let table = markdown_table();
    assert_eq!(table.lines().count(), SETTINGS.len() + 2);
    assert!(table.contains("| `REDIS_PASSWORD` / `REDIS_PASSWORD_FILE` | "));
    assert!(table.contains("Deprecated names: `REDIS_AUTH`, `REDIS_ACL_PASSWORD`"));
    assert!(table.contains("| `SEALCACHE_BODY_LIMIT` | "));
    assert!(
        table.contains("| bytes, at least 1 KiB | 1 MiB |"),
        "{table}"
    );
}

#[test]
fn a_default_that_is_set_explicitly_reads_the_same() {
    // The shown default of every whole-number or seconds setting, written back as a variable,
    // is accepted and gives the default: a declared minimum never refuses its own default.
    let defaults = ServerLimits::default();
    let as_vars: BTreeMap<String, String> = [
        ("SEALCACHE_BODY_LIMIT", defaults.body_limit.to_string()),
        (
            "SEALCACHE_MAX_HEADER_BYTES",
            defaults.max_header_bytes.to_string(),
        ),
        (
            "SEALCACHE_MAX_IN_FLIGHT_BYTES",
            defaults.max_in_flight_bytes.to_string(),
        ),
        (
            "SEALCACHE_HEADER_READ_TIMEOUT_SECS",
            defaults.header_read_timeout.as_secs().to_string(),
        ),
        (
            "SEALCACHE_AUTH_FAILURE_LIMIT",
            defaults.auth_failure_limit.to_string(),
        ),
        ("SEALCACHE_L1_CAPACITY", defaults.l1_capacity.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let read = SecuritySettings::load_from(&as_vars, None).unwrap();
    assert_eq!(read.limits, defaults);
    assert_eq!(read.sources["SEALCACHE_BODY_LIMIT"], "environment variable");
}
