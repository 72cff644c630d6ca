//! The shipped deployment files meet docs/architecture.md §6 item by item (text checks, plus the
//! compose tool's own validation when one is installed).

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::deploy;

/// The lines of one top-level service block.
fn service<'a>(compose: &'a str, name: &str) -> &'a str {
    let start = compose
        .find(&format!("\n  {name}:\n"))
        .unwrap_or_else(|| panic!("no service {name}"));
    let rest = &compose[start + 1..];
    let end = rest[3..].find("\n  ").map_or(rest.len(), |i| {
        // The next line at two-space indentation starts the next service (or the end of services).
        let mut j = i + 3;
        while rest[j + 1..].starts_with("   ") || rest[j + 1..].starts_with("  #") {
            j = rest[j + 1..].find("\n  ").map_or(rest.len(), |k| j + 1 + k);
        }
        j
    });
    &rest[..end]
}

#[test]
fn the_secure_compose_file_is_hardened() {
    let c = deploy("docker-compose.secure.yml");
    let redis = service(&c, "redis");
    let backend = service(&c, "backend");
    assert!(!redis.contains("ports:"), "Redis publishes a port");
    assert!(
        redis.contains("networks: [redis_internal]"),
        "Redis must be on the internal network only"
    );
    assert!(backend.contains("networks: [redis_internal, frontend, observability]"));
    for svc in ["otel-collector", "prometheus", "grafana"] {
        let block = service(&c, svc);
        assert!(
            block.contains("profiles: [observability]"),
            "{svc} must be in the observability profile"
        );
        assert!(
            block.contains("networks: [observability]"),
            "{svc} must never join the Redis network"
        );
        assert!(!block.contains("redis_internal"));
        if block.contains("ports:") {
            assert!(
                block.contains("\"127.0.0.1:"),
                "{svc} publishes on every interface"
            );
        }
    }
    assert!(
        backend.contains("\"127.0.0.1:${SEALCACHE_PORT:-8080}:8080\""),
        "the API must be published on 127.0.0.1 only"
    );
    assert!(c.contains("internal: true"));
    assert!(c.contains("com.docker.network.bridge.inhibit_ipv4"));
    for item in [
        "read_only: true",
        "cap_drop: [ALL]",
        "no-new-privileges:true",
        "user: \"${SEALCACHE_UID:-999}",
        "restart: unless-stopped",
    ] {
        assert!(c.contains(item), "missing {item}");
    }
    for svc in [redis, backend] {
        for item in [
            "<<: *hardening",
            "mem_limit:",
            "cpus:",
            "pids_limit:",
            "healthcheck:",
            "tmpfs:",
        ] {
            assert!(svc.contains(item), "a service lacks {item}");
        }
    }
    assert!(
        c.contains("${SEALCACHE_DIR:?"),
        "required inputs must fail fast"
    );
    assert!(
        c.contains("${SEALCACHE_REDIS_IMAGE:-redis:7."),
        "the official Redis image is the default"
    );
    assert!(
        !c.contains("ca.key"),
        "the CA private key must never be mounted"
    );
    assert!(
        !c.contains("requirepass") && !c.contains("--pass "),
        "no password on a command line"
    );
    assert!(
        redis.contains("REDISCLI_AUTH=\\\"$$(cat /run/secrets/redis/redis_health_password)"),
        "the health check reads its password from a file"
    );
    assert!(redis.contains("--user cache_health"));
    for line in c
        .lines()
        .filter(|l| l.contains("PASSWORD") || l.contains("KEY="))
    {
        assert!(
            !line.contains(": \"") || line.contains("_FILE"),
            "a secret-like variable in the compose file: {line}"
        );
    }
    assert!(
        redis.contains("/run/secrets/tls/redis.crt")
            && backend.contains("/run/secrets/tls/client.crt")
    );
    assert!(
        !backend.contains("redis.key"),
        "the backend must not get the server key"
    );
}

#[test]
fn redis_conf_is_tls_only_with_acl_and_no_persistence() {
    let conf = deploy("redis/redis.conf");
    for line in [
        "port 0",
        "tls-port 6379",
        "tls-auth-clients yes",
        "protected-mode yes",
        "save \"\"",
        "appendonly no",
        "aclfile /run/secrets/redis/users.acl",
        "maxmemory 192mb",
        "maxmemory-policy volatile-lru",
        "tls-protocols \"TLSv1.2 TLSv1.3\"",
    ] {
        assert!(
            conf.lines().any(|l| l.trim() == line),
            "redis.conf lacks `{line}`"
        );
    }
    assert!(
        !conf
            .lines()
            .any(|l| l.trim_start().starts_with("bind 127.0.0.1")),
        "binding 127.0.0.1 in a container cuts the backend off"
    );
    assert!(!conf.contains("requirepass"));
    let ciphers = conf
        .lines()
        .find(|l| l.starts_with("tls-ciphers "))
        .unwrap();
    assert!(
        ciphers
            .split(' ')
            .nth(1)
            .unwrap()
            .split(':')
            .all(|c| c.contains("GCM") || c.contains("CHACHA20")),
        "AEAD suites only"
    );
}

#[test]
fn the_dev_compose_file_keeps_isolation_and_acl() {
    let c = deploy("docker-compose.dev.yml");
    assert!(!service(&c, "redis").contains("ports:"));
    assert!(c.contains("internal: true") && c.contains("REDIS_SECURITY_MODE: development"));
    assert!(deploy("redis/redis.dev.conf").contains("aclfile /run/secrets/redis/users.acl"));
}

/// What a rotation replaces (the ACL file, the passwords, the keyring) is mounted as a directory:
/// a rotation writes a new file and renames it over the old one, and a single-file bind mount would
/// keep showing the container the old inode (`ACL LOAD` and `SIGHUP` would reload the old copy).
#[test]
fn rotating_secrets_are_mounted_as_directories_never_as_single_files() {
    for file in ["docker-compose.secure.yml", "docker-compose.dev.yml"] {
        let c = deploy(file);
        let redis = service(&c, "redis");
        let backend = service(&c, "backend");
        assert!(
            redis.contains("/secrets/redis:/run/secrets/redis:ro"),
            "{file}: Redis must mount secrets/redis as a directory"
        );
        assert!(
            backend.contains("/secrets/backend:/run/secrets/backend:ro"),
            "{file}: the backend must mount secrets/backend as a directory"
        );
        for rotating in ["users.acl:", "encryption_keyring:", "_password:"] {
            assert!(
                !c.lines()
                    .any(|l| l.trim_start().starts_with("- ") && l.contains(rotating)),
                "{file}: `{rotating}` is bind-mounted as a single file"
            );
        }
        assert!(
            !redis.contains("/secrets/backend") && !backend.contains("/secrets/redis:"),
            "{file}: each container mounts only its own secrets"
        );
    }
    for conf in ["redis/redis.conf", "redis/redis.dev.conf"] {
        assert!(
            deploy(conf).contains("aclfile /run/secrets/redis/users.acl"),
            "{conf}"
        );
    }
}

#[test]
fn the_compose_tool_accepts_the_files() {
    common::assert_compose_accepts(&["docker-compose.secure.yml", "docker-compose.dev.yml"]);
}
