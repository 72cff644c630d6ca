//! The ACL LOG poller against a real `redis-server` with the generated ACL file and its
//! `cache_monitor` user.
//!
//! * Three failed AUTH attempts from another client become exactly three `auth_failed`
//!   occurrences, a NOPERM command one `acl_denied`, and a second poll reports nothing new.
//! * The reconnecting run loop (`run_with_client`, 200 ms) keeps counting exactly after a Redis
//!   restart, after `ACL LOAD` (which closes the poller's connection) and after
//!   `ACL LOG RESET` followed by fewer failures than before.
//! * A burst of 20 000 failed logins counts 20 000 with a handful of log records.
//! * A `/3` in the poller's URL changes nothing (the monitor user may not `SELECT`).
//!
//! Each count is awaited with a deadline, then checked again a second (five polls) later.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealcache_config_gen::{DeploymentOptions, SecureConfigGenerator, layout, write_deployment};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};
use sealcache_monitor::{AclLogPoller, CacheObserver, SecurityAwareCacheMonitor};
use sealcache_testkit::{CliAuth, RedisOptions, RedisServer, output_text};
use tracing::instrument::WithSubscriber as _;

/// The run loop's interval in these tests.
const EVERY: Duration = Duration::from_millis(200);

/// A generated production deployment served by a real `redis-server` with its ACL file.
struct Deployment {
    server: RedisServer,
    dir: tempfile::TempDir,
}

impl Deployment {
    fn start() -> Self {
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
        Self { server, dir }
    }

    fn secret(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap()
    }

    /// A client for `cache_monitor` on `redis://127.0.0.1:PORT/db`.
    fn monitor_client(&self, db: u8) -> redis::Client {
        let info = redis::IntoConnectionInfo::into_connection_info(format!(
            "redis://127.0.0.1:{}/{db}",
            self.server.port()
        ))
        .unwrap();
        let settings = info
            .redis_settings()
            .clone()
            .set_username("cache_monitor")
            .set_password(self.secret(layout::MONITOR_PASSWORD))
            // CLIENT SETINFO is not in the monitor user's ACL: do not send it.
            .set_skip_set_lib_name();
        redis::Client::open(info.set_redis_settings(settings)).unwrap()
    }

    /// Runs a command as `cache_admin` and returns its output.
    fn admin(&self, args: &[&str]) -> String {
        let admin = CliAuth {
            user: Some("cache_admin".into()),
            password: Some(self.secret(layout::ADMIN_PASSWORD)),
            ..CliAuth::default()
        };
        output_text(&self.server.cli(&admin, args))
    }

    /// `n` failed `AUTH cache_app` attempts, pipelined on one raw connection in batches of 100
    /// (Redis closes an unauthenticated client whose unread replies exceed a few KiB); returns
    /// once Redis has answered every one with `WRONGPASS`.
    fn failed_logins(&self, n: usize) {
        const BATCH: usize = 100;
        let mut stream = TcpStream::connect(("127.0.0.1", self.server.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (mut sent, mut replies) = (0, 0);
        let (mut line, mut buf) = (Vec::new(), vec![0u8; 1 << 16]);
        while replies < n {
            let batch = BATCH.min(n - sent);
            stream
                .write_all(&b"AUTH cache_app wrong-password\r\n".repeat(batch))
                .unwrap();
            sent += batch;
            while replies < sent {
                let read = stream.read(&mut buf).unwrap();
                assert!(
                    read > 0,
                    "Redis closed the connection after {replies} replies"
                );
                for &b in &buf[..read] {
                    line.push(b);
                    if b == b'\n' {
                        let text = String::from_utf8_lossy(&line);
                        assert!(text.starts_with("-WRONGPASS"), "{text}");
                        replies += 1;
                        line.clear();
                    }
                }
            }
        }
    }
}

/// A poller whose baseline is taken now, on a connection of its own (dropped afterwards).
async fn baselined_poller(d: &Deployment, monitor: &SecurityAwareCacheMonitor) -> AclLogPoller {
    let mut poller = AclLogPoller::new();
    let mut conn = d
        .monitor_client(0)
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(poller.poll(&mut conn, monitor).await.unwrap(), 0);
    poller
}

fn total(monitor: &SecurityAwareCacheMonitor, kind: &str) -> u64 {
    monitor.security_summary().events_by_type[kind]
}

/// Waits (at most 30 s) until `kind` totals `expected`, never above it, then checks it still does
/// a second (five polls) later.
async fn settles_at(monitor: &SecurityAwareCacheMonitor, kind: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = total(monitor, kind);
        assert!(n <= expected, "{kind}: {n}, more than {expected}");
        if n == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{kind}: {n} after 30 s, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(total(monitor, kind), expected, "{kind} a second later");
}

/// Spawns the reconnecting run loop on `client`.
fn spawn_loop(
    poller: AclLogPoller,
    client: redis::Client,
    monitor: &Arc<SecurityAwareCacheMonitor>,
) -> tokio::task::JoinHandle<()> {
    let sink: Arc<dyn CacheObserver> = monitor.clone();
    tokio::spawn(poller.run_with_client(client, sink, EVERY))
}

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
    // Three folded failures: one event carrying the count.
    let failed: Vec<_> = summary
        .recent_events
        .iter()
        .filter(|e| e.kind.as_str() == "auth_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].count, 3);
    assert!(failed[0].detail.contains("x3 "), "{}", failed[0].detail);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_after_a_redis_restart_are_counted_exactly() {
    let mut d = Deployment::start();
    d.failed_logins(2); // before the baseline: not counted
    let monitor = Arc::new(SecurityAwareCacheMonitor::new());
    let poller = baselined_poller(&d, &monitor).await;
    let task = spawn_loop(poller, d.monitor_client(0), &monitor);

    d.failed_logins(3);
    settles_at(&monitor, "auth_failed", 3).await;
    // The restart empties the log; then more failures than the log held (5): all count, not
    // only what exceeds the old total.
    d.server.restart();
    d.failed_logins(7);
    settles_at(&monitor, "auth_failed", 10).await;
    d.failed_logins(1);
    settles_at(&monitor, "auth_failed", 11).await;
    assert_eq!(total(&monitor, "acl_denied"), 0);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_after_acl_load_are_counted_exactly() {
    let d = Deployment::start();
    d.failed_logins(2);
    let monitor = Arc::new(SecurityAwareCacheMonitor::new());
    let poller = baselined_poller(&d, &monitor).await;
    let task = spawn_loop(poller, d.monitor_client(0), &monitor);

    d.failed_logins(3);
    settles_at(&monitor, "auth_failed", 3).await;
    // ACL LOAD closes the connections of the users it reloads, the poller's among them; the log
    // stays, so nothing is counted twice.
    let out = d.admin(&["ACL", "LOAD"]);
    assert!(out.contains("OK"), "{out}");
    d.failed_logins(4);
    settles_at(&monitor, "auth_failed", 7).await;
    assert_eq!(total(&monitor, "acl_denied"), 0);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_after_acl_log_reset_are_counted_exactly() {
    let d = Deployment::start();
    d.failed_logins(2);
    let monitor = Arc::new(SecurityAwareCacheMonitor::new());
    let poller = baselined_poller(&d, &monitor).await;
    let task = spawn_loop(poller, d.monitor_client(0), &monitor);

    d.failed_logins(5);
    settles_at(&monitor, "auth_failed", 5).await;
    let out = d.admin(&["ACL", "LOG", "RESET"]);
    assert!(out.contains("OK"), "{out}");
    // Fewer failures than the entry held before the reset (7): they still count.
    d.failed_logins(2);
    settles_at(&monitor, "auth_failed", 7).await;
    d.failed_logins(1);
    settles_at(&monitor, "auth_failed", 8).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_20000_failed_logins_counts_20000_in_a_handful_of_records() {
    let d = Deployment::start();
    let monitor = Arc::new(SecurityAwareCacheMonitor::new());
    let poller = baselined_poller(&d, &monitor).await;
    // tracing-core caches a callsite's interest when a thread first hits it; while a single
    // dispatcher is registered it asks only that thread's default (none, in the other tests'
    // threads) and would cache "never". A second registered dispatcher makes it ask them all.
    let _second = tracing::Dispatch::new(Records::default());
    let records = Records::default();
    let sink: Arc<dyn CacheObserver> = monitor.clone();
    let task = tokio::spawn(
        poller
            .run_with_client(d.monitor_client(0), sink, EVERY)
            .with_subscriber(records.clone()),
    );

    d.failed_logins(20_000);
    settles_at(&monitor, "auth_failed", 20_000).await;
    task.abort();
    let summary = monitor.security_summary();
    assert_eq!(summary.total_security_events, 20_000);
    assert_eq!(summary.last_hour["auth_failed"], 20_000);

    let events: Vec<BTreeMap<String, String>> = records
        .take()
        .into_iter()
        .filter(|r| r.get("event").map(String::as_str) == Some("security_event"))
        .collect();
    assert!(
        !events.is_empty() && events.len() <= 5,
        "{} records: {events:?}",
        events.len()
    );
    let counted: u64 = events
        .iter()
        .map(|r| r["count"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, 20_000, "{events:?}");
    for r in &events {
        assert_eq!(r["type"], "auth_failed");
        assert!(r["detail"].contains("user=cache_app"), "{r:?}");
        assert!(r["detail"].contains(&format!("x{} ", r["count"])), "{r:?}");
        assert!(!format!("{r:?}").contains("wrong-password"), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_index_in_the_url_does_not_stop_the_poller() {
    let d = Deployment::start();
    // As given, the URL makes redis-rs SELECT 3, which the monitor user may not.
    let refused = d.monitor_client(3).get_multiplexed_async_connection().await;
    assert!(refused.is_err(), "SELECT 3 was allowed");
    let monitor = Arc::new(SecurityAwareCacheMonitor::new());
    let poller = baselined_poller(&d, &monitor).await;
    let task = spawn_loop(poller, d.monitor_client(3), &monitor);

    d.failed_logins(4);
    settles_at(&monitor, "auth_failed", 4).await;
    // The poller's own connections were never refused.
    assert_eq!(total(&monitor, "acl_denied"), 0);
    task.abort();
}

/// Captures every `tracing` event of the futures it is attached to, as field maps.
#[derive(Debug, Clone, Default)]
struct Records(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl Records {
    fn take(&self) -> Vec<BTreeMap<String, String>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for Records {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        fields.insert("target".to_owned(), event.metadata().target().to_owned());
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
