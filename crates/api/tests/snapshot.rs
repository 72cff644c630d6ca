//! The JSON of the security status, pinned: dashboards, scripts and older readers depend on
//! these names and shapes. A change here is a change of the HTTP API.

use std::collections::BTreeMap;

use sealcache_api::{
    Check, CheckName, ClusterStatus, Impact, KeysPosture, L1CoherenceStatus, LookupAnswer,
    NodeRole, NodeStatus, SecurityLevel, SecurityStatus, SecurityStatusResponse,
};
use serde_json::json;

fn full_status() -> SecurityStatus {
    let mut status = SecurityStatus::new(
        true,
        vec![
            Check::pass(CheckName::TlsNegotiated, "TLSv1.3"),
            Check::unobserved(CheckName::AclUsers, "no monitor user"),
        ],
    );
    status.encryption_enabled = true;
    status.tls_enabled = true;
    status.tls_version = Some("TLSv1.3".to_owned());
    status.authenticated_user = Some("cache_app".to_owned());
    status.default_user_disabled = Some(true);
    status.auth_configured = true;
    status.primary_key_id = 2;
    status.decrypt_only_key_ids = vec![1];
    status.keyring_reloads.applied = 1;
    status.redis_password_generation = Some("0123456789ab".to_owned());
    status.certificate_expires_in_days = Some(364);
    status.environment = "production".to_owned();
    status.confidence = 0.9;
    status.redis_available = true;
    status.security_events_by_type = BTreeMap::from([("auth_failed".to_owned(), 3)]);
    status.l1_coherence = Some(L1CoherenceStatus::new(true, 0));
    let mut node = NodeStatus::new("10.0.0.2:6379", NodeRole::Primary);
    node.tls_version = Some("TLSv1.3".to_owned());
    node.default_user_disabled = Some(true);
    node.cluster_state = Some("ok".to_owned());
    status.cluster = Some(ClusterStatus::new(Some("ok".to_owned()), vec![node]));
    status.pending_erasures = Some(0);
    status.record_network_isolation(true, true, "no route from the host");
    status
}

#[test]
fn the_security_status_json_is_pinned() -> Result<(), serde_json::Error> {
    let mut keys = KeysPosture::default();
    keys.keys_file = true;
    keys.scoped_keys = 2;
    keys.tenants = 1;
    keys.keys_per_scope = BTreeMap::from([("lookup".to_owned(), 2), ("admin".to_owned(), 1)]);
    let response = SecurityStatusResponse::new(full_status(), Some(keys));
    let written = serde_json::to_value(&response)?;
    assert_eq!(
        written,
        json!({
            "encryption_enabled": true,
            "tls_enabled": true,
            "tls_version": "TLSv1.3",
            "authenticated_user": "cache_app",
            "default_user_disabled": true,
            "auth_configured": true,
            "primary_key_id": 2,
            "decrypt_only_key_ids": [1],
            "keyring_reloads": {"applied": 1, "refused": 0, "last_refusal": null},
            "redis_password_generation": "0123456789ab",
            "certificate_expires_in_days": 364,
            "environment": "production",
            "confidence": 0.9,
            "development_override": false,
            "redis_available": true,
            "network_isolated": true,
            "network_isolation_claimed": true,
            "recent_security_events": 0,
            "security_events_by_type": {"auth_failed": 3},
            "write_failures": {},
            "l1_coherence": {"subscribed": true, "losses": 0},
            "cluster": {
                "cluster_state": "ok",
                "nodes": [{
                    "address": "10.0.0.2:6379",
                    "role": "primary",
                    "tls_version": "TLSv1.3",
                    "default_user_disabled": true,
                    "cluster_state": "ok"
                }]
            },
            "pending_erasures": 0,
            "security_level": "degraded",
            "checks": [
                {"name": "tls_negotiated", "passed": true, "observed": true,
                 "impact": "insecure", "detail": "TLSv1.3"},
                {"name": "acl_users", "passed": false, "observed": false,
                 "impact": "insecure", "detail": "no monitor user"},
                {"name": "network_isolated", "passed": true, "observed": true,
                 "impact": "degraded",
                 "detail": "no route from the host (REDIS_NETWORK_ISOLATION=true claimed)"}
            ],
            "api_keys": {
                "keys_file": true,
                "scoped_keys": 2,
                "legacy_keys": 0,
                "tenants": 1,
                "keys_per_scope": {"admin": 1, "lookup": 2},
                "reloads_refused": 0
            }
        })
    );
    // A reader gets back exactly what was written.
    let read: SecurityStatusResponse = serde_json::from_value(written)?;
    assert_eq!(read, response);
    Ok(())
}

#[test]
fn a_reader_keeps_working_when_a_newer_server_adds_fields_and_checks()
-> Result<(), serde_json::Error> {
    let mut written = serde_json::to_value(full_status())?;
    written["a_field_from_a_newer_server"] = json!({"x": 1});
    written["checks"][0]["name"] = json!("a_check_from_a_newer_server");
    let read: SecurityStatus = serde_json::from_value(written)?;
    assert_eq!(read.checks[0].name, CheckName::Other);
    assert_eq!(read.security_level, SecurityLevel::Degraded);
    Ok(())
}

#[test]
fn the_level_follows_the_checks_after_a_round_trip() -> Result<(), serde_json::Error> {
    // Strict: a failure with insecure impact makes the status insecure, also when the check is
    // added to a status read back from JSON.
    let status = SecurityStatus::new(true, vec![Check::pass(CheckName::Encryption, "sealed")]);
    assert_eq!(status.security_level, SecurityLevel::ProductionReady);
    let mut read: SecurityStatus = serde_json::from_str(&serde_json::to_string(&status)?)?;
    read.add_check(Check::fail(
        CheckName::TlsNegotiated,
        Impact::Insecure,
        "plaintext",
    ));
    assert_eq!(read.security_level, SecurityLevel::Insecure);
    // Not strict: development whatever the checks say.
    let mut development = SecurityStatus::new(false, Vec::new());
    development.add_check(Check::fail(
        CheckName::TlsNegotiated,
        Impact::Insecure,
        "plaintext",
    ));
    assert_eq!(development.security_level, SecurityLevel::Development);
    Ok(())
}

#[test]
fn a_status_from_an_older_server_is_read_and_one_without_keyring_reloads_is_refused()
-> Result<(), serde_json::Error> {
    // Round 2's shape: checks without `observed` and `impact`, no TLS or coherence fields.
    let older = json!({
        "encryption_enabled": true,
        "primary_key_id": 1,
        "keyring_reloads": {"applied": 0, "refused": 0, "last_refusal": null},
        "security_level": "production_ready",
        "checks": [{"name": "tls_negotiated", "passed": true, "detail": "TLSv1_3"}]
    });
    let read: SecurityStatus = serde_json::from_value(older.clone())?;
    assert!(read.checks[0].observed);
    assert_eq!(read.checks[0].impact, Impact::Degraded);
    assert!(!read.redis_available);
    // A backend that does not report its keyring reloads cannot confirm a rotation: refused.
    let mut without = older;
    if let Some(map) = without.as_object_mut() {
        map.remove("keyring_reloads");
    }
    assert!(serde_json::from_value::<SecurityStatus>(without).is_err());
    Ok(())
}

#[test]
fn a_hit_of_null_is_told_from_a_miss() -> Result<(), serde_json::Error> {
    let hit: LookupAnswer =
        serde_json::from_str(r#"{"hit":true,"response":null,"ttl_remaining_seconds":5}"#)?;
    assert_eq!(hit.response, Some(serde_json::Value::Null));
    assert_eq!(
        serde_json::to_value(&hit)?,
        json!({"hit": true, "response": null, "ttl_remaining_seconds": 5})
    );
    let miss: LookupAnswer = serde_json::from_str(r#"{"hit":false}"#)?;
    assert_eq!(miss.response, None);
    assert_eq!(serde_json::to_value(&miss)?, json!({"hit": false}));
    Ok(())
}

#[test]
fn members_a_newer_server_adds_pass_through_a_reader_unchanged() -> Result<(), serde_json::Error> {
    let mut written = serde_json::to_value(SecurityStatusResponse::new(full_status(), None))?;
    written["a_field_from_a_newer_server"] = json!({"x": [1, 2]});
    let read: SecurityStatusResponse = serde_json::from_value(written.clone())?;
    assert_eq!(read.unknown.len(), 1);
    assert_eq!(read.status, full_status());
    // Written on (as `sealcache status --json` does), the status is what the server sent.
    assert_eq!(serde_json::to_value(&read)?, written);
    Ok(())
}

#[test]
fn a_passing_or_unobserved_check_reports_what_its_failure_would_mean() {
    // What a failure of each check means at worst, the same whether it failed or not.
    let insecure = [
        CheckName::TlsNegotiated,
        CheckName::AclUser,
        CheckName::AclUsers,
        CheckName::AclRights,
        CheckName::DefaultUserDisabled,
        CheckName::Encryption,
        CheckName::ClusterNodes,
    ];
    for name in insecure {
        assert_eq!(Check::pass(name, "ok").impact, Impact::Insecure, "{name}");
        assert_eq!(
            Check::unobserved(name, "?").impact,
            Impact::Insecure,
            "{name}"
        );
    }
    for name in [
        CheckName::CertificateValidity,
        CheckName::NetworkIsolated,
        CheckName::KeyringReload,
        CheckName::Other,
    ] {
        assert_eq!(Check::pass(name, "ok").impact, Impact::Degraded, "{name}");
    }
    // The impact of a pass does not touch the level; an unobserved insecure check is degraded.
    let passing: Vec<Check> = insecure.iter().map(|n| Check::pass(*n, "ok")).collect();
    let status = SecurityStatus::new(true, passing.clone());
    assert_eq!(status.security_level, SecurityLevel::ProductionReady);
    let mut unobserved = passing;
    unobserved[0] = Check::unobserved(CheckName::TlsNegotiated, "no session");
    let status = SecurityStatus::new(true, unobserved);
    assert_eq!(status.security_level, SecurityLevel::Degraded);
}
