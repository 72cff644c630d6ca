//! The ACL LOG poller against a real `redis-server` with the generated ACL file: three failed AUTH
//! attempts from another client become exactly three `auth_failed` events, a NOPERM command one
//! `acl_denied`, and a second poll reports nothing new.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealcache_config_gen::{DeploymentOptions, SecureConfigGenerator, layout, write_deployment};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};
use sealcache_monitor::{AclLogPoller, SecurityAwareCacheMonitor};
use sealcache_testkit::{CliAuth, RedisOptions, RedisServer, output_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_log_entries_become_events_exactly_once() {
    let info = EnvironmentDetector::new(MapSource::new()).detect(FeatureContext::Default);
    let config =
        SecureConfigGenerator::generate_for_environment(&info, Some(Environment::Production))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_deployment(&config, dir.path(), &DeploymentOptions::default()).unwrap();
    let server = RedisServer::start(RedisOptions {
        acl_file: Some(dir.path().join(layout::USERS_ACL)),
        ..RedisOptions::default()
    });
    let monitor_password =
        std::fs::read_to_string(dir.path().join(layout::MONITOR_PASSWORD)).unwrap();
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        "127.0.0.1".into(),
        server.port(),
    ))
    .unwrap()
    .set_redis_settings(
        redis::RedisConnectionInfo::default()
            .set_username("cache_monitor")
            .set_password(monitor_password)
            // CLIENT SETINFO is not in the monitor user's ACL: do not send it.
            .set_skip_set_lib_name(),
    );
    let client = redis::Client::open(info).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let monitor = SecurityAwareCacheMonitor::new();
    let mut poller = AclLogPoller::new();

    // An old failure, before the poller's baseline: not replayed.
    let bad = CliAuth {
        user: Some("cache_app".into()),
        password: Some("wrong-before".into()),
        ..CliAuth::default()
    };
    let _ = server.cli(&bad, &["PING"]);
    assert_eq!(
        poller.poll(&mut conn, &monitor).await.unwrap(),
        0,
        "the first poll is the baseline"
    );

    for i in 0..3 {
        let attempt = CliAuth {
            password: Some(format!("wrong-{i}")),
            ..bad.clone()
        };
        let out = server.cli(&attempt, &["PING"]);
        assert!(
            output_text(&out).contains("WRONGPASS"),
            "{}",
            output_text(&out)
        );
    }
    let app_password = std::fs::read_to_string(dir.path().join(layout::APP_PASSWORD)).unwrap();
    let app = CliAuth {
        password: Some(app_password),
        ..bad.clone()
    };
    let out = server.cli(&app, &["FLUSHALL"]);
    assert!(
        output_text(&out).contains("NOPERM"),
        "{}",
        output_text(&out)
    );

    let reported = poller.poll(&mut conn, &monitor).await.unwrap();
    assert_eq!(reported, 4);
    let summary = monitor.security_summary();
    assert_eq!(summary.events_by_type["auth_failed"], 3);
    assert_eq!(summary.events_by_type["acl_denied"], 1);
    assert_eq!(summary.total_security_events, 4);
    let denied = summary
        .recent_events
        .iter()
        .find(|e| e.kind.as_str() == "acl_denied")
        .unwrap();
    assert!(denied.detail.contains("flushall"), "{}", denied.detail);

    // Nothing new: nothing reported; one more failure: exactly one more.
    assert_eq!(poller.poll(&mut conn, &monitor).await.unwrap(), 0);
    let _ = server.cli(
        &CliAuth {
            password: Some("wrong-4".into()),
            ..bad
        },
        &["PING"],
    );
    assert_eq!(poller.poll(&mut conn, &monitor).await.unwrap(), 1);
    assert_eq!(monitor.security_summary().events_by_type["auth_failed"], 4);
    // No password ever reaches an event.
    let json = serde_json::to_string(&monitor.security_summary()).unwrap();
    assert!(!json.contains("wrong-"), "{json}");
}
