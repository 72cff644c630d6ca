//! The security posture tells the truth (on a real TLS + mTLS + ACL `redis-server`): refused
//! credentials and failed handshakes are named for what they are and counted, IPv6 URLs are
//! observed, every certificate is read, and weak environment signals never relax the policy.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use common::{Stack, env};
use sealcache::{
    AiRequest, CacheBuilder, CheckName, Error, Impact, RedisConfig, Requirement, SecurityLevel,
    SecurityStatus, TlsFailure,
};
use sealcache_config_gen::{layout, tls};
use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};

fn check(status: &SecurityStatus, name: CheckName) -> &sealcache::Check {
    status
        .check(name)
        .unwrap_or_else(|| panic!("no {name} check in {:#?}", status.checks))
}

/// A production cache over `stack`'s keyring with `config`.
fn production_cache(stack: &Stack, config: RedisConfig) -> sealcache::AiResponseCache {
    CacheBuilder::new(env("production"))
        .keyring(stack.keyring())
        .redis(config)
        .build()
        .unwrap()
}

fn events(cache: &sealcache::AiResponseCache, kind: &str) -> u64 {
    cache.monitor().security_summary().events_by_type[kind]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_authentication_error_counted_and_reported() {
    let stack = Stack::start();
    let config = RedisConfig::new(format!("rediss://localhost:{}/0", stack.server.port()))
        .acl_user("cache_app", "not-the-password-at-all")
        .tls_files(
            stack.path(layout::CA_CERT),
            stack.path(layout::CLIENT_CERT),
            stack.path(layout::CLIENT_KEY),
        );
    let cache = production_cache(&stack, config);
    let err = cache
        .set(
            &AiRequest::new("qa", "q"),
            &serde_json::json!({"a": 1}),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AuthenticationRefused { .. }),
        "a wrong password is not 'unavailable': {err:?}"
    );
    assert!(events(&cache, "auth_failed") >= 1);
    assert_eq!(events(&cache, "tls_error"), 0);

    let status = cache.security_status().await;
    let acl = check(&status, CheckName::AclUser);
    assert!(!acl.passed && acl.observed, "{acl:?}");
    assert!(acl.detail.contains("authentication refused"), "{acl:?}");
    assert!(
        check(&status, CheckName::RedisAvailable)
            .detail
            .contains("authentication refused")
    );
    // TLS was negotiated and anonymous access is refused: secure, but not working.
    assert!(check(&status, CheckName::TlsNegotiated).passed);
    assert_eq!(
        status.security_level,
        SecurityLevel::Degraded,
        "{status:#?}"
    );
    let shown = format!("{status:?} {err}");
    assert!(!shown.contains("not-the-password-at-all"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_certificate_is_a_tls_error_counted_and_reported() {
    let stack = Stack::start();
    let mut config = stack.redis_config("cache_app", layout::APP_PASSWORD);
    config.client_cert_path = None;
    config.client_key_path = None;
    let cache = production_cache(&stack, config);
    let err = cache
        .set(
            &AiRequest::new("qa", "q"),
            &serde_json::json!({"a": 1}),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls {
                failure: TlsFailure::ClientCertificateRequired
                    | TlsFailure::ClientCertificateRejected
            }
        ),
        "{err:?}"
    );
    assert!(events(&cache, "tls_error") >= 1);
    assert_eq!(events(&cache, "auth_failed"), 0);

    let status = cache.security_status().await;
    let tls = check(&status, CheckName::TlsNegotiated);
    assert!(!tls.passed && tls.observed, "{tls:?}");
    assert!(tls.detail.contains("client certificate"), "{tls:?}");
    assert_eq!(tls.impact, Impact::Degraded);
    assert_eq!(
        status.security_level,
        SecurityLevel::Degraded,
        "{status:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_url_with_and_without_port_is_observed() {
    let stack = Stack::start_with(vec!["bind 127.0.0.1 ::1".into()]);
    let mut config = stack.redis_config("cache_app", layout::APP_PASSWORD);
    config.url = format!("rediss://[::1]:{}/0", stack.server.port());
    let cache = production_cache(&stack, config.clone());
    let req = AiRequest::new("qa", "over ipv6");
    cache
        .set(&req, &serde_json::json!({"a": 6}), None)
        .await
        .unwrap();
    assert!(cache.get(&req).await.unwrap().is_some());
    let status = cache.security_status().await;
    assert_eq!(
        status.security_level,
        SecurityLevel::ProductionReady,
        "{status:#?}"
    );
    assert!(status.tls_enabled);

    // Without a port the URL means 6379: the host is still parsed (nothing listens there, so
    // the checks are unobserved, never "insecure").
    config.url = "rediss://[::1]/0".into();
    let cache = production_cache(&stack, config);
    let status = cache.security_status().await;
    let tls = check(&status, CheckName::TlsNegotiated);
    assert!(!tls.detail.contains("no host"), "{tls:?}");
    assert_ne!(
        status.security_level,
        SecurityLevel::Insecure,
        "{status:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_expiring_in_five_days_degrades_the_status() {
    let stack = Stack::start();
    let ca_key = stack.secret(layout::CA_KEY);
    let (cert, key) = tls::issue_client_certificate(&ca_key, "cache_app", 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("client.crt"), cert).unwrap();
    std::fs::write(dir.path().join("client.key"), key.expose_secret()).unwrap();
    let mut config = stack.redis_config("cache_app", layout::APP_PASSWORD);
    config.client_cert_path = Some(dir.path().join("client.crt"));
    config.client_key_path = Some(dir.path().join("client.key"));
    let cache = production_cache(&stack, config);
    // The certificate works: Redis accepts it.
    let req = AiRequest::new("qa", "short-lived cert");
    cache
        .set(&req, &serde_json::json!({"a": 5}), None)
        .await
        .unwrap();
    let status = cache.security_status().await;
    let client = check(&status, CheckName::ClientCertificate);
    assert!(!client.passed && client.observed, "{client:?}");
    assert!(check(&status, CheckName::ServerCertificate).passed);
    assert!(check(&status, CheckName::CaCertificate).passed);
    assert!(!check(&status, CheckName::CertificateValidity).passed);
    let days = status.certificate_expires_in_days.unwrap();
    assert!((4..=5).contains(&days), "{days}");
    assert_eq!(
        status.security_level,
        SecurityLevel::Degraded,
        "{status:#?}"
    );
}

#[test]
fn a_development_looking_host_name_alone_refuses_plaintext_redis() {
    for host in [
        "devon-web-01",
        "localhost.localdomain",
        "device-gateway-3",
        "alice-dev-laptop",
    ] {
        let info = EnvironmentDetector::new(MapSource::new().hostname(host))
            .detect(FeatureContext::SecurityEnforcement);
        let err = CacheBuilder::new(info)
            .no_keyring()
            .redis(RedisConfig::new("redis://127.0.0.1:6379/0"))
            .build()
            .unwrap_err();
        let Error::Policy(violation) = &err else {
            panic!("{host}: {err:?}")
        };
        assert_eq!(violation.environment, "unknown", "{host}");
        assert!(violation.unmet.contains(&Requirement::Tls), "{host}");
    }
    // A file indicator alone does not relax either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let info = EnvironmentDetector::new(MapSource::new().dir(dir.path()))
        .detect(FeatureContext::SecurityEnforcement);
    assert!(
        CacheBuilder::new(info)
            .no_keyring()
            .redis(RedisConfig::new("redis://127.0.0.1:6379/0"))
            .build()
            .is_err()
    );
}

#[test]
fn testing_keeps_the_redis_transport_requirements() {
    let info = EnvironmentDetector::new(MapSource::new().var("CI", "true"))
        .detect(FeatureContext::SecurityEnforcement);
    let err = CacheBuilder::new(info)
        .no_keyring()
        .redis(RedisConfig::new("redis://127.0.0.1:6379/0"))
        .build()
        .unwrap_err();
    let Error::Policy(violation) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(violation.environment, "testing");
    for r in [
        Requirement::Tls,
        Requirement::AclUser,
        Requirement::Password,
        Requirement::EncryptionKey,
    ] {
        assert!(violation.unmet.contains(&r), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_a_tls_error() {
    let stack = Stack::start();
    let other = tls::generate(&[], "cache_app").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("other-ca.crt"), &other.ca_cert).unwrap();
    let mut config = stack.redis_config("cache_app", layout::APP_PASSWORD);
    config.ca_path = Some(dir.path().join("other-ca.crt"));
    let cache = production_cache(&stack, config);
    let err = cache
        .set(
            &AiRequest::new("qa", "q"),
            &serde_json::json!({"a": 1}),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls {
                failure: TlsFailure::UnknownIssuer
            }
        ),
        "{err:?}"
    );
    assert!(events(&cache, "tls_error") >= 1);
    let status = cache.security_status().await;
    let tls = check(&status, CheckName::TlsNegotiated);
    assert!(!tls.passed && tls.observed, "{tls:?}");
    assert!(tls.detail.contains("pinned CA"), "{tls:?}");
    assert_eq!(
        status.security_level,
        SecurityLevel::Degraded,
        "{status:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_refused_password_an_outage_is_reported_as_an_outage() {
    let mut stack = Stack::start();
    let config = stack
        .redis_config("cache_app", layout::APP_PASSWORD)
        .acl_user("cache_app", "not-the-password-at-all");
    let cache = production_cache(&stack, config);
    let req = AiRequest::new("qa", "q");
    let err = cache
        .set(&req, &serde_json::json!({"a": 1}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AuthenticationRefused { .. }),
        "{err:?}"
    );
    // Redis goes away; once the breaker lets an attempt through, the cause is the outage.
    stack.server.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let _ = cache.set(&req, &serde_json::json!({"a": 1}), None).await;
        let status = cache.security_status().await;
        let available = check(&status, CheckName::RedisAvailable);
        if available.detail.contains("unavailable") {
            assert!(
                !available.detail.contains("authentication"),
                "{available:?}"
            );
            assert!(!check(&status, CheckName::AclUser).observed);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still reported as {available:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[test]
fn tls_without_certificate_verification_is_not_tls_to_the_policy() {
    let config = RedisConfig::new("rediss://redis:6379/0#insecure").acl_user("cache_app", "x");
    assert!(!config.uses_tls());
    let err = CacheBuilder::new(env("production"))
        .keyring(sealcache_codec::Keyring::generate().unwrap())
        .redis(config)
        .build()
        .unwrap_err();
    let Error::Policy(violation) = &err else {
        panic!("{err:?}")
    };
    assert!(violation.unmet.contains(&Requirement::Tls));
}

#[test]
fn cluster_nodes_switch_to_cluster_mode_and_refuse_a_second_url() {
    let load = |pairs: &[(&str, &str)]| {
        let vars: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        sealcache_config_gen::SecuritySettings::load_from(&vars, None)
    };
    let seeds = "rediss://10.0.0.1:6379,rediss://10.0.0.2:6379";
    let settings = load(&[
        ("ENVIRONMENT", "development"),
        ("REDIS_CLUSTER_NODES", seeds),
    ])
    .unwrap();
    let info =
        settings.detect_environment_with(MapSource::new(), FeatureContext::SecurityEnforcement);
    let cache = sealcache::from_settings(&settings, info, None).unwrap();
    let debug = format!("{:?}", cache.sealed());
    assert!(
        debug.contains("10.0.0.1:6379") && debug.contains("10.0.0.2:6379"),
        "cluster mode, every seed kept: {debug}"
    );
    // Never both: a deployment that names a cluster must not run against REDIS_URL instead.
    let err = load(&[
        ("ENVIRONMENT", "development"),
        ("REDIS_CLUSTER_NODES", seeds),
        ("REDIS_URL", "rediss://10.0.0.9:6379"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("REDIS_CLUSTER_NODES") && err.contains("REDIS_URL"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_material_from_memory_works_and_is_observed() {
    let stack = Stack::start();
    let read = |rel: &str| std::fs::read(stack.path(rel)).unwrap();
    let config = RedisConfig::new(format!("rediss://localhost:{}/0", stack.server.port()))
        .acl_user("cache_app", stack.secret(layout::APP_PASSWORD))
        .tls_pem(
            read(layout::CA_CERT),
            read(layout::CLIENT_CERT),
            read(layout::CLIENT_KEY),
        );
    assert!(config.ca_path.is_none() && config.client_key_path.is_none());
    let shown = format!("{config:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let cache = production_cache(&stack, config);
    let req = AiRequest::new("qa", "pem in memory");
    cache
        .set(&req, &serde_json::json!({"a": 1}), None)
        .await
        .unwrap();
    assert!(cache.get(&req).await.unwrap().is_some());
    let status = cache.security_status().await;
    assert_eq!(
        status.security_level,
        SecurityLevel::ProductionReady,
        "{status:#?}"
    );
    assert!(check(&status, CheckName::ClientCertificate).passed);
    assert!(check(&status, CheckName::CaCertificate).passed);
}

/// The posture observes Redis itself, not a stand-in: with a database index in the URL the
/// unauthenticated probe still observes the refusal (it used to `SELECT` first and observe
/// nothing), and client certificates turned off live (`tls-auth-clients no`) are seen by a
/// handshake without one and degrade the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_index_and_client_certificates_turned_off_are_observed() {
    let stack = Stack::start();
    let config = |db: u8| {
        let mut config = stack.redis_config("cache_app", layout::APP_PASSWORD);
        config.url = format!("rediss://localhost:{}/{db}", stack.server.port());
        config
    };
    let cache = production_cache(&stack, config(3));
    let req = AiRequest::new("qa", "database three");
    cache
        .set(&req, &serde_json::json!({"a": 1}), None)
        .await
        .unwrap();
    let status = cache.security_status().await;
    assert_eq!(status.default_user_disabled, Some(true), "{status:#?}");
    assert_eq!(status.client_certificate_required, Some(true));
    assert!(check(&status, CheckName::ClientCertificateRequired).passed);
    assert_eq!(
        status.security_level,
        SecurityLevel::ProductionReady,
        "{status:#?}"
    );

    let mut admin = stack.admin().await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "tls-auth-clients", "no"])
        .query_async(&mut admin)
        .await
        .unwrap();
    // A new cache probes afresh (one cache reuses its probes for a few seconds).
    let status = production_cache(&stack, config(0)).security_status().await;
    assert_eq!(status.client_certificate_required, Some(false));
    let failed = check(&status, CheckName::ClientCertificateRequired);
    assert!(
        !failed.passed && failed.impact == Impact::Degraded,
        "{failed:?}"
    );
    assert_ne!(status.security_level, SecurityLevel::ProductionReady);
}
