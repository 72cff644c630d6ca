//! The shipped cluster deployment files (deploy/docker-compose.cluster.yml,
//! deploy/redis/redis.cluster.conf) keep every hardening item of the single-node stack (text
//! checks, plus the compose tool's own validation). The running stack is checked by
//! `cargo xtask secure-up --cluster` (and `cargo xtask test`).

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::deploy;

/// The lines of the block `name:` (at indentation 0 or 2), up to the next line indented as much
/// or less that is not a comment.
fn block(text: &str, name: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = lines
        .iter()
        .position(|l| {
            indent(l) <= 2
                && (l.trim_start() == format!("{name}:")
                    || l.trim_start().starts_with(&format!("{name}: ")))
        })
        .unwrap_or_else(|| panic!("no block {name}"));
    let own = indent(lines[start]);
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent(l) <= own && !l.trim_start().starts_with('#'))
        .map_or(lines.len(), |i| start + 1 + i);
    lines[start..end].join("\n")
}

#[test]
fn the_cluster_compose_file_is_hardened() {
    let c = deploy("docker-compose.cluster.yml");
    let hardening = block(&c, "x-hardening");
    for item in [
        "read_only: true",
        "cap_drop: [ALL]",
        "no-new-privileges:true",
        "user: \"${SEALCACHE_UID:-999}:${SEALCACHE_GID:-999}\"",
        "restart: unless-stopped",
    ] {
        assert!(hardening.contains(item), "x-hardening lacks {item}");
    }
    let node = block(&c, "x-redis-node");
    assert!(node.contains("<<: *hardening") && node.contains("networks: [redis_internal]"));
    assert!(node.contains("${SEALCACHE_REDIS_IMAGE:-redis:7.2.5-bookworm}"));
    for i in 1..=6 {
        let svc = block(&c, &format!("redis-node-{i}"));
        assert!(svc.contains("<<: *redis-node"), "redis-node-{i}");
        assert!(!svc.contains("ports:"), "redis-node-{i} publishes a port");
        assert!(
            !svc.contains("networks:"),
            "redis-node-{i} overrides its networks"
        );
        assert!(
            svc.contains(&format!(
                "\"--cluster-announce-hostname\", \"redis-node-{i}\""
            )),
            "redis-node-{i} does not announce its host name"
        );
        assert!(svc.contains("/secrets/redis:/run/secrets/redis:ro"));
        assert!(svc.contains("/redis/redis.cluster.conf:/etc/sealcache/redis.conf:ro"));
        // The only writable mount: the node's own nodes.conf directory.
        for line in svc.lines().filter(|l| l.trim_start().starts_with("- ")) {
            if line.contains(":/") && !line.contains("size=") {
                assert!(
                    line.trim_end().ends_with(":ro")
                        || line.trim_end().ends_with(&format!("redis-node-{i}:/data")),
                    "redis-node-{i}: writable mount {line}"
                );
            }
        }
        assert!(!svc.contains("/ca/") && !svc.contains("ca.key"));
    }
    let backend = block(&c, "x-backend");
    assert!(backend.contains("<<: *hardening"));
    assert!(backend.contains("networks: [redis_internal, frontend]"));
    assert!(backend.contains("/secrets/backend:/run/secrets/backend:ro"));
    assert!(!backend.contains("/secrets/redis"));
    for (svc, var) in [
        ("backend-1", "SEALCACHE_PORT:-8080"),
        ("backend-2", "SEALCACHE_PORT_2:-8081"),
    ] {
        let b = block(&c, svc);
        assert!(
            b.contains(&format!("\"127.0.0.1:${{{var}}}:8080\"")),
            "{svc} must publish on 127.0.0.1 only"
        );
    }
    let internal = block(&c, "redis_internal");
    assert!(internal.contains("internal: true"));
    assert!(internal.contains("com.docker.network.bridge.inhibit_ipv4: \"true\""));
    for rotating in [
        "users.acl:",
        "encryption_keyring:",
        "_password:",
        "secrets/redis/cluster.conf:",
    ] {
        assert!(
            !c.lines()
                .any(|l| l.trim_start().starts_with("- ") && l.contains(rotating)),
            "`{rotating}` is bind-mounted as a single file"
        );
    }
    for line in c.lines() {
        let upper = line.to_ascii_uppercase();
        assert!(
            !(upper.contains("PASSWORD=") || upper.contains("PASSWORD:") && !upper.contains('/')),
            "a secret-like variable in the compose file: {line}"
        );
    }
}

#[test]
fn the_cluster_node_conf_is_tls_only_and_includes_the_generated_directives() {
    let conf = deploy("redis/redis.cluster.conf");
    for line in [
        "port 0",
        "tls-port 6379",
        "tls-auth-clients yes",
        "protected-mode yes",
        "aclfile /run/secrets/redis/users.acl",
        "cluster-preferred-endpoint-type hostname",
        "save \"\"",
        "appendonly no",
        "include /run/secrets/redis/cluster.conf",
    ] {
        assert!(
            conf.lines().any(|l| l.trim() == line),
            "redis.cluster.conf lacks `{line}`"
        );
    }
    // The generated cluster directives come last, after everything they could be mistaken for.
    let last = conf
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap();
    assert_eq!(last, "include /run/secrets/redis/cluster.conf");
    // Nothing secret in the shipped file.
    assert!(
        !conf
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("masterauth") || l.contains("requirepass"))
    );
}

#[test]
fn the_compose_tool_accepts_the_cluster_file() {
    common::assert_compose_accepts(&["docker-compose.cluster.yml"]);
}
