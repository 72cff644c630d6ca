//! The security status reads the live ACL (issue 22, "a status that cannot be fooled"): the server
//! binary, a real TLS + mTLS + ACL redis-server loaded with the generated ACL, and live weakenings
//! made as `cache_admin` (`ACL SETUSER`), each of which an anonymous `PING` cannot see.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sealcache_config_gen::{acl, layout};
use sealcache_testkit::cluster::{ClusterOptions, RedisCluster};
use sealcache_testkit::free_port;
use serde_json::Value;

#[path = "common/server.rs"]
mod common;
use common::{Server, Stack, start_server};

/// The server's variables for `stack` at `redis_url`, with the monitor's credentials or without.
fn vars(stack: &Stack, redis_url: &str, monitor: bool) -> Vec<(String, String)> {
    let mut vars = stack.server_env(redis_url, &format!("127.0.0.1:{}", free_port()));
    if monitor {
        vars.extend([
            (
                "REDIS_MONITOR_USERNAME".to_owned(),
                acl::MONITOR_USER.to_owned(),
            ),
            (
                "REDIS_MONITOR_PASSWORD_FILE".to_owned(),
                stack.file(layout::MONITOR_PASSWORD),
            ),
        ]);
    }
    vars
}

fn status(server: &Server, key: &str) -> Value {
    Client::new()
        .get(format!("{}/internal/cache/security-status", server.base))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn check<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {status:#}"))
}

/// Polls the status until `want` holds (the probe result lives 5 s), for at most 20 s.
fn status_until(server: &Server, key: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(server, key);
        if want(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}: {s:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn level_is(level: &'static str) -> impl Fn(&Value) -> bool {
    move |s| s["security_level"] == level
}

fn admin(stack: &Stack, args: &[&str]) {
    let mut conn = stack.admin();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<()>(&mut conn).unwrap();
}

fn assert_insecure_by(status: &Value, name: &str, mentions: &[&str]) {
    assert_eq!(status["security_level"], "insecure", "{status:#}");
    let c = check(status, name);
    assert_eq!(c["passed"], false, "{c}");
    assert_eq!(c["observed"], true, "{c}");
    assert_eq!(c["impact"], "insecure", "{c}");
    for m in mentions {
        assert!(c["detail"].as_str().unwrap().contains(m), "{m} in {c}");
    }
}

#[test]
fn live_acl_weakenings_make_the_status_insecure_with_the_named_check() {
    let stack = Stack::start();
    let key = stack.secret(layout::API_KEY);
    let server = start_server(&vars(&stack, &stack.redis_url(), true), None);

    // The generated ACL, untouched: the new checks pass, and the default user is read from it.
    let s = status(&server, &key);
    assert_eq!(s["security_level"], "production_ready", "{s:#}");
    for name in ["acl_users", "acl_rights"] {
        assert_eq!(check(&s, name)["passed"], true, "{s:#}");
    }
    assert_eq!(s["default_user_disabled"], true);
    assert!(
        check(&s, "default_user_disabled")["detail"]
            .as_str()
            .unwrap()
            .contains("ACL LIST: user default off"),
        "{s:#}"
    );

    // An extra user that anyone can log in as.
    admin(
        &stack,
        &["ACL", "SETUSER", "intruder", "on", "nopass", "+@all", "~*"],
    );
    let s = status_until(&server, &key, "insecure", level_is("insecure"));
    assert_insecure_by(&s, "acl_users", &["intruder", "nopass"]);
    assert_eq!(check(&s, "acl_rights")["passed"], true, "{s:#}");
    admin(&stack, &["ACL", "DELUSER", "intruder"]);
    status_until(
        &server,
        &key,
        "production_ready",
        level_is("production_ready"),
    );

    // The application user with every command.
    admin(&stack, &["ACL", "SETUSER", "cache_app", "+@all"]);
    let s = status_until(&server, &key, "insecure", level_is("insecure"));
    assert_insecure_by(&s, "acl_rights", &["cache_app", "+@all"]);
    let mut restore = vec!["ACL", "SETUSER", "cache_app", "-@all"];
    let grants: Vec<String> = acl::APP_COMMANDS.iter().map(|c| format!("+{c}")).collect();
    restore.extend(grants.iter().map(String::as_str));
    admin(&stack, &restore);
    status_until(
        &server,
        &key,
        "production_ready",
        level_is("production_ready"),
    );

    // The default user on with a password: an anonymous PING is still refused, the ACL says
    // otherwise.
    admin(
        &stack,
        &["ACL", "SETUSER", "default", "on", ">somepassword"],
    );
    let s = status_until(&server, &key, "insecure", level_is("insecure"));
    assert_insecure_by(&s, "acl_users", &["default user is on"]);
    assert_eq!(s["default_user_disabled"], false, "{s:#}");
    assert_eq!(s["auth_configured"], false, "{s:#}");
    assert_insecure_by(&s, "default_user_disabled", &["user default on"]);
    admin(&stack, &["ACL", "SETUSER", "default", "off", "resetpass"]);
    let s = status_until(
        &server,
        &key,
        "production_ready",
        level_is("production_ready"),
    );
    assert_eq!(s["default_user_disabled"], true, "{s:#}");
}

#[test]
fn status_calls_within_the_interval_share_one_acl_probe() {
    let stack = Stack::start();
    let key = stack.secret(layout::API_KEY);
    let server = start_server(&vars(&stack, &stack.redis_url(), true), None);
    // The level gauge probes once at start: let that probe's 5 s lifetime pass, so the calls below
    // must probe anew (at least once) and share it.
    std::thread::sleep(std::time::Duration::from_millis(5_500));
    admin(&stack, &["CONFIG", "RESETSTAT"]);
    // 50 status calls, 10 at a time.
    std::thread::scope(|scope| {
        for _ in 0..10 {
            scope.spawn(|| {
                for _ in 0..5 {
                    let s = status(&server, &key);
                    assert_eq!(check(&s, "acl_users")["passed"], true, "{s:#}");
                }
            });
        }
    });
    let mut conn = stack.admin();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    let calls: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_acl|list:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap());
    assert!(
        (1..=3).contains(&calls),
        "50 status calls ran ACL LIST {calls} times:\n{stats}"
    );
}

#[test]
fn a_database_index_in_redis_url_still_reads_the_default_user() {
    let stack = Stack::start();
    let key = stack.secret(layout::API_KEY);
    let url = format!("rediss://localhost:{}/3", stack.redis.port());
    let server = start_server(&vars(&stack, &url, true), None);
    let s = status(&server, &key);
    assert_eq!(s["default_user_disabled"], true, "{s:#}");
    assert_eq!(check(&s, "default_user_disabled")["passed"], true, "{s:#}");
    for name in ["acl_users", "acl_rights"] {
        assert_eq!(check(&s, name)["passed"], true, "{s:#}");
    }
    assert_eq!(s["security_level"], "production_ready", "{s:#}");
}

#[test]
fn without_monitor_credentials_the_acl_checks_are_unobserved() {
    let stack = Stack::start();
    let key = stack.secret(layout::API_KEY);
    let server = start_server(&vars(&stack, &stack.redis_url(), false), None);
    let s = status(&server, &key);
    for name in ["acl_users", "acl_rights"] {
        let c = check(&s, name);
        assert_eq!(
            (&c["passed"], &c["observed"]),
            (&false.into(), &false.into())
        );
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .contains("REDIS_MONITOR_USERNAME"),
            "{c}"
        );
    }
    assert_eq!(s["security_level"], "degraded", "{s:#}");
}

#[test]
fn every_cluster_seed_acl_is_read() {
    // The keyring and API key come from a generated deployment; Redis is the cluster.
    let stack = Stack::start();
    let key = stack.secret(layout::API_KEY);
    let cluster = RedisCluster::start(ClusterOptions::default());
    let secret = |name: &str, value: &str| {
        let path = stack.path().join(name);
        std::fs::write(&path, value).unwrap();
        path.to_string_lossy().into_owned()
    };
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let mut vars: Vec<(String, String)> = vars(&stack, &stack.redis_url(), false)
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "REDIS_URL"
                    | "REDIS_PASSWORD_FILE"
                    | "REDIS_TLS_CA_PATH"
                    | "REDIS_TLS_CERT_PATH"
                    | "REDIS_TLS_KEY_PATH"
            )
        })
        .collect();
    vars.extend([
        (
            "REDIS_CLUSTER_NODES".to_owned(),
            cluster.seed_urls().join(","),
        ),
        (
            "REDIS_PASSWORD_FILE".to_owned(),
            secret("cluster_app", cluster.app_password()),
        ),
        (
            "REDIS_MONITOR_USERNAME".to_owned(),
            acl::MONITOR_USER.to_owned(),
        ),
        (
            "REDIS_MONITOR_PASSWORD_FILE".to_owned(),
            secret("cluster_monitor", cluster.monitor_password()),
        ),
        ("CACHE_NAMESPACE".to_owned(), cluster.namespace().to_owned()),
        ("REDIS_TLS_CA_PATH".to_owned(), path(cluster.ca_cert())),
        (
            "REDIS_TLS_CERT_PATH".to_owned(),
            path(cluster.client_cert()),
        ),
        ("REDIS_TLS_KEY_PATH".to_owned(), path(cluster.client_key())),
    ]);
    let server = start_server(&vars, None);
    let nodes = cluster.seed_urls().len();
    let s = status(&server, &key);
    for name in ["acl_users", "acl_rights"] {
        let c = check(&s, name);
        assert_eq!(c["passed"], true, "{s:#}");
        let read = format!("{nodes} of {nodes} nodes");
        assert!(c["detail"].as_str().unwrap().contains(&read), "{c}");
    }
    assert_eq!(s["default_user_disabled"], true, "{s:#}");

    // One node's ACL weakened: each node has its own ACL, and that one is named.
    let out = cluster.cli(
        2,
        &cluster.admin_auth(),
        &["ACL", "SETUSER", "intruder", "on", "nopass", "+@all", "~*"],
    );
    assert!(out.status.success());
    let port = cluster.node(2).port();
    let s = status_until(&server, &key, "insecure", level_is("insecure"));
    assert_insecure_by(
        &s,
        "acl_users",
        &[&format!("localhost:{port}: user intruder has nopass")],
    );
}

#[test]
fn the_monitor_user_reads_the_acl_but_never_the_configuration() {
    let stack = Stack::start();
    let monitor = sealcache_testkit::CliAuth {
        user: Some(acl::MONITOR_USER.to_owned()),
        password: Some(stack.secret(layout::MONITOR_PASSWORD)),
        ca: Some(stack.path().join(layout::CA_CERT)),
        client_cert: Some((
            stack.path().join(layout::CLIENT_CERT),
            stack.path().join(layout::CLIENT_KEY),
        )),
    };
    let run = |args: &[&str]| sealcache_testkit::output_text(&stack.redis.cli(&monitor, args));
    let list = run(&["ACL", "LIST"]);
    assert!(list.contains("user cache_app on #"), "{list}");
    // CONFIG GET masterauth would be the replication password in clear: refused.
    for args in [
        &["CONFIG", "GET", "masterauth"][..],
        &["CONFIG", "GET", "requirepass"],
        &["ACL", "SETUSER", "x"],
        &["ACL", "GETUSER", "cache_app"],
    ] {
        assert!(run(args).contains("NOPERM"), "cache_monitor ran {args:?}");
    }
}

/// The `sealcache.security.level` gauge is assessed exactly as the status endpoint: a live ACL
/// weakening shows on `/metrics` as `insecure`, not only in the JSON status.
#[test]
fn the_level_gauge_sees_what_the_status_endpoint_sees() {
    let stack = Stack::start();
    let key = stack.secret(layout::API_KEY);
    let mut env = vars(&stack, &stack.redis_url(), true);
    // The level gauge is refreshed every 20 status intervals: 20 s here.
    env.push(("SEALCACHE_STATUS_INTERVAL_SECS".to_owned(), "1".to_owned()));
    let server = start_server(&env, None);
    let metrics = || -> String {
        Client::new()
            .get(format!("{}/metrics", server.base))
            .header("Authorization", format!("Bearer {key}"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let level_line = |text: &str, level: &str| -> Option<String> {
        text.lines()
            .find(|l| {
                l.starts_with("sealcache_security_level")
                    && l.contains(&format!("level=\"{level}\""))
            })
            .map(str::to_owned)
    };
    admin(
        &stack,
        &["ACL", "SETUSER", "intruder", "on", "nopass", "+@all", "~*"],
    );
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let text = metrics();
        if level_line(&text, "insecure").is_some_and(|l| l.trim_end().ends_with(" 1")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gauge never read insecure: {:?}",
            level_line(&text, "insecure")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(status(&server, &key)["security_level"], "insecure");
}
