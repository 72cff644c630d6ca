//! The Redis Cluster of the test kit, configured as config-gen generates a cluster: 3 primaries
//! and 3 replicas over TLS (clients, cluster bus and replication), the cluster ACL file, and the
//! L1 coherence channel. One cluster serves every check (starting one takes a few seconds).

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

use sealcache_testkit::{ClusterOptions, NodeRole, RedisCluster, output_text};

fn text(
    cluster: &RedisCluster,
    node: usize,
    auth: &sealcache_testkit::CliAuth,
    args: &[&str],
) -> String {
    output_text(&cluster.cli(node, auth, args))
}

#[test]
fn a_tls_cluster_with_least_privilege_acl_users() {
    let mut cluster = RedisCluster::start(ClusterOptions::default());
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 6);
    let admin = cluster.admin_auth();
    let app = cluster.app_auth();

    // Every node: cluster_state:ok, readable by the health and monitor users.
    for node in &nodes {
        for auth in [cluster.health_auth(), cluster.monitor_auth()] {
            let info = text(&cluster, node.index, &auth, &["CLUSTER", "INFO"]);
            assert!(
                info.contains("cluster_state:ok"),
                "node {}: {info}",
                node.index
            );
        }
        assert!(node.pid.is_some());
    }

    // 3 primaries, 3 replicas, every replica linked to its primary; no plaintext anywhere.
    let primaries: Vec<_> = nodes
        .iter()
        .filter(|n| n.role == NodeRole::Primary)
        .collect();
    let replicas: Vec<_> = nodes
        .iter()
        .filter(|n| n.role == NodeRole::Replica)
        .collect();
    assert_eq!((primaries.len(), replicas.len()), (3, 3), "{nodes:?}");
    for replica in &replicas {
        let info = text(
            &cluster,
            replica.index,
            &cluster.monitor_auth(),
            &["INFO", "replication"],
        );
        assert!(info.contains("role:slave"), "{info}");
        assert!(info.contains("master_link_status:up"), "{info}");
    }
    for node in &nodes {
        for (directive, value) in [
            ("port", "0"),
            ("tls-cluster", "yes"),
            ("tls-replication", "yes"),
            ("tls-auth-clients", "yes"),
            ("masteruser", "cache_replication"),
        ] {
            let out = text(&cluster, node.index, &admin, &["CONFIG", "GET", directive]);
            assert_eq!(
                out.lines().nth(1).map(str::trim),
                Some(value),
                "node {} {directive}: {out}",
                node.index
            );
        }
        // The replication user can do nothing but replicate.
        let repl = cluster.auth("cache_replication", cluster.replication_password());
        let refused = text(&cluster, node.index, &repl, &["GET", "ai_cache:x"]);
        assert!(refused.contains("NOPERM"), "{refused}");
        assert_eq!(text(&cluster, node.index, &repl, &["PING"]).trim(), "PONG");
        // The default user is off.
        let default = cluster.auth("default", "");
        let out = text(&cluster, node.index, &default, &["PING"]);
        assert!(!out.contains("PONG"), "{out}");
    }

    // cache_app: SET/GET through redirects, inside its namespace only.
    let key = format!("{}:v2:qa:cluster-infra", cluster.namespace());
    let from = nodes[0].index;
    assert_eq!(
        text(&cluster, from, &app, &["-c", "SET", &key, "v1"]).trim(),
        "OK"
    );
    for node in &nodes {
        assert_eq!(
            text(&cluster, node.index, &app, &["-c", "GET", &key]).trim(),
            "v1",
            "node {}",
            node.index
        );
    }
    let outside = text(&cluster, from, &app, &["-c", "SET", "other:k", "v"]);
    assert!(outside.contains("NOPERM"), "{outside}");

    // cache_app may not run administrative commands anywhere.
    for node in &nodes {
        for args in [
            &["FLUSHALL"][..],
            &["CONFIG", "GET", "maxmemory"],
            &["KEYS", "*"],
            &["CLUSTER", "RESET"],
            &["CLUSTER", "NODES"],
        ] {
            let out = text(&cluster, node.index, &app, args);
            assert!(
                out.contains("NOPERM"),
                "node {} {args:?}: {out}",
                node.index
            );
        }
        // What the cluster client needs is granted.
        let slots = text(&cluster, node.index, &app, &["CLUSTER", "SLOTS"]);
        assert!(
            !slots.contains("NOPERM") && slots.contains("localhost"),
            "{slots}"
        );
        assert_eq!(text(&cluster, node.index, &app, &["READONLY"]).trim(), "OK");
    }

    // The L1 coherence channel, and no other.
    let channel = cluster.invalidation_channel();
    assert_eq!(channel, format!("sealcache:l1:{}", cluster.namespace()));
    for node in &nodes {
        let out = text(&cluster, node.index, &app, &["PUBLISH", &channel, "k"]);
        assert!(
            out.trim().parse::<u64>().is_ok(),
            "node {}: {out}",
            node.index
        );
        let out = text(
            &cluster,
            node.index,
            &app,
            &["PUBLISH", "sealcache:l1:other", "k"],
        );
        assert!(out.contains("NOPERM"), "{out}");
    }
    let mut conn = cluster.app_client(0).get_connection().unwrap();
    let ok: redis::Value = redis::cmd("SUBSCRIBE")
        .arg(&channel)
        .query(&mut conn)
        .unwrap();
    assert!(format!("{ok:?}").contains("subscribe"), "{ok:?}");
    let mut conn = cluster.app_client(1).get_connection().unwrap();
    let refused = redis::cmd("SUBSCRIBE")
        .arg("sealcache:l1:other")
        .query::<redis::Value>(&mut conn);
    assert!(
        format!("{refused:?}")
            .to_ascii_uppercase()
            .contains("NOPERM"),
        "{refused:?}"
    );

    // Without TLS, or without a client certificate, nothing answers.
    for node in &nodes {
        let plain = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &node.port.to_string(), "PING"])
            .env_remove("REDISCLI_AUTH")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = output_text(&plain);
        assert!(!out.contains("PONG") && !out.contains("NOAUTH"), "{out}");
        assert!(cluster.node(node.index).raw_command("PING").is_empty());
        let mut no_cert = cluster.health_auth();
        no_cert.client_cert = None;
        let out = text(&cluster, node.index, &no_cert, &["PING"]);
        assert!(!out.contains("PONG"), "{out}");
    }

    // Seeds name `localhost`, which the server certificate covers.
    assert!(
        cluster
            .seed_urls()
            .iter()
            .all(|u| u.starts_with("rediss://localhost:"))
    );

    // redis-rs's cluster client (CLUSTER SLOTS, redirects to `localhost`, mutual TLS) as cache_app.
    let mut conn = cluster.app_cluster_client().get_connection().unwrap();
    for i in 0..30 {
        let k = format!("{}:v2:qa:rs-{i}", cluster.namespace());
        let () = redis::cmd("SET").arg(&k).arg(i).query(&mut conn).unwrap();
        let v: i64 = redis::cmd("GET").arg(&k).query(&mut conn).unwrap();
        assert_eq!(v, i);
    }
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("k")
        .query(&mut conn)
        .unwrap();
    assert!(receivers >= 0);
    drop(conn);

    // A primary dies: its replica takes over and the data stays readable.
    let slot_owner = cluster.primary_of_slot(0);
    let killed = cluster.kill_primary_of_slot(0);
    assert_eq!(killed, slot_owner);
    cluster.wait_for_failover();
    let promoted = cluster.primary_of_slot(0);
    assert_ne!(promoted, killed);
    assert_eq!(cluster.nodes()[killed].role, NodeRole::Down);
    let reader = (0..6).find(|&i| i != killed).unwrap();
    assert_eq!(
        text(&cluster, reader, &app, &["-c", "GET", &key]).trim(),
        "v1"
    );

    // It comes back as a replica of the node that took over.
    cluster.restart(killed);
    cluster.wait_until_healthy(std::time::Duration::from_secs(30));
    assert_eq!(cluster.nodes()[killed].role, NodeRole::Replica);
    assert_eq!(cluster.primary_of_slot(0), promoted);
}
