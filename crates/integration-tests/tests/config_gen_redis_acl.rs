//! The generated ACL file and TLS material, loaded by a real `redis-server` with
//! `tls-auth-clients yes`: every permission the issue promises, checked over TLS.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use sealcache_config_gen::{DeploymentOptions, SecureConfigGenerator, layout, write_deployment};
use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};
use sealcache_testkit::{CliAuth, RedisOptions, RedisServer, TlsFiles, output_text};

struct Deployment {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Deployment {
    fn new() -> Self {
        let info = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
            .detect(FeatureContext::SecurityEnforcement);
        let config = SecureConfigGenerator::generate_for_environment(&info, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("deploy");
        write_deployment(&config, &root, &DeploymentOptions::default()).unwrap();
        Self { _dir: dir, root }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.root.join(rel)
    }

    fn secret(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn auth(&self, user: &str, password_file: &str, with_client_cert: bool) -> CliAuth {
        CliAuth {
            user: Some(user.to_owned()),
            password: Some(self.secret(password_file)),
            ca: Some(self.path(layout::CA_CERT)),
            client_cert: with_client_cert.then(|| {
                (
                    self.path(layout::CLIENT_CERT),
                    self.path(layout::CLIENT_KEY),
                )
            }),
        }
    }
}

fn start(d: &Deployment) -> RedisServer {
    RedisServer::start(RedisOptions {
        acl_file: Some(d.path(layout::USERS_ACL)),
        tls: Some(TlsFiles {
            ca: d.path(layout::CA_CERT),
            cert: d.path(layout::SERVER_CERT),
            key: d.path(layout::SERVER_KEY),
            require_client_certs: true,
        }),
        // DEBUG is off globally by default; turn it on so that only the ACL can refuse it.
        extra: vec!["enable-debug-command yes".to_owned()],
        ..RedisOptions::default()
    })
}

fn run(server: &RedisServer, auth: &CliAuth, args: &[&str]) -> String {
    output_text(&server.cli(auth, args))
}

#[test]
fn generated_acl_and_tls_enforce_least_privilege_on_a_real_server() {
    let d = Deployment::new();
    let server = start(&d);
    let app = d.auth("cache_app", layout::APP_PASSWORD, true);

    // cache_app over TLS with the client certificate: SET/GET/DEL inside its namespace.
    assert_eq!(
        run(&server, &app, &["SET", "ai_cache:v2:qa:k1", "v1"]).trim(),
        "OK"
    );
    assert_eq!(
        run(&server, &app, &["GET", "ai_cache:v2:qa:k1"]).trim(),
        "v1"
    );
    assert_eq!(
        run(&server, &app, &["PTTL", "ai_cache:v2:qa:k1"]).trim(),
        "-1"
    );
    assert_eq!(
        run(&server, &app, &["UNLINK", "ai_cache:v2:qa:k1"]).trim(),
        "1"
    );
    assert_eq!(run(&server, &app, &["ACL", "WHOAMI"]).trim(), "cache_app");
    let scan = run(
        &server,
        &app,
        &["SCAN", "0", "MATCH", "ai_cache:*", "COUNT", "100"],
    );
    assert!(!scan.contains("NOPERM"), "{scan}");

    // ...and nothing else.
    for args in [
        &["FLUSHALL"][..],
        &["FLUSHDB"],
        &["CONFIG", "GET", "maxmemory"],
        &["KEYS", "*"],
        &["DEBUG", "SLEEP", "0"],
        &["SHUTDOWN"],
        &["ACL", "LIST"],
        &["SET", "other:key", "x"],
        &["GET", "other:key"],
    ] {
        let out = run(&server, &app, args);
        assert!(out.contains("NOPERM"), "cache_app ran {args:?}: {out}");
    }

    // default cannot authenticate (disabled), with any password.
    let default = CliAuth {
        user: Some("default".into()),
        password: Some("anything".into()),
        ..app.clone()
    };
    let out = run(&server, &default, &["PING"]);
    assert!(
        out.contains("WRONGPASS") || out.contains("NOAUTH") || out.contains("disabled"),
        "{out}"
    );
    let anonymous = CliAuth {
        user: None,
        password: None,
        ..app.clone()
    };
    let out = run(&server, &anonymous, &["PING"]);
    assert!(
        out.contains("NOAUTH"),
        "unauthenticated PING answered: {out}"
    );

    // A wrong password for cache_app fails.
    let wrong = CliAuth {
        password: Some("not-the-password".into()),
        ..app.clone()
    };
    assert!(run(&server, &wrong, &["PING"]).contains("WRONGPASS"));

    // cache_health may only PING.
    let health = d.auth("cache_health", layout::HEALTH_PASSWORD, true);
    assert_eq!(run(&server, &health, &["PING"]).trim(), "PONG");
    for args in [
        &["GET", "ai_cache:x"][..],
        &["INFO"],
        &["SET", "ai_cache:x", "1"],
    ] {
        assert!(
            run(&server, &health, args).contains("NOPERM"),
            "cache_health ran {args:?}"
        );
    }

    // cache_monitor reads INFO and ACL LOG, and no data.
    let monitor = d.auth("cache_monitor", layout::MONITOR_PASSWORD, true);
    assert!(run(&server, &monitor, &["INFO", "server"]).contains("redis_version"));
    assert!(!run(&server, &monitor, &["ACL", "LOG", "1"]).contains("NOPERM"));
    assert!(run(&server, &monitor, &["GET", "ai_cache:x"]).contains("NOPERM"));

    // cache_admin has everything (and is never used by the app).
    let admin = d.auth("cache_admin", layout::ADMIN_PASSWORD, true);
    assert_eq!(
        run(&server, &admin, &["CONFIG", "GET", "tls-auth-clients"])
            .lines()
            .nth(1),
        Some("yes")
    );
    assert_eq!(
        run(&server, &admin, &["DEBUG", "SLEEP", "0"]).trim(),
        "OK",
        "DEBUG is enabled: the ACL alone refused cache_app"
    );
}

#[test]
fn a_client_without_the_client_certificate_cannot_connect() {
    let d = Deployment::new();
    let server = start(&d);
    let no_cert = d.auth("cache_app", layout::APP_PASSWORD, false);
    let out = server.cli(&no_cert, &["PING"]);
    let text = output_text(&out);
    assert!(
        !text.contains("PONG"),
        "connected without a client certificate: {text}"
    );

    // The server certificate cannot stand in for the client's (serverAuth only).
    let wrong_identity = CliAuth {
        client_cert: Some((d.path(layout::SERVER_CERT), d.path(layout::SERVER_KEY))),
        ..d.auth("cache_app", layout::APP_PASSWORD, true)
    };
    let text = output_text(&server.cli(&wrong_identity, &["PING"]));
    assert!(
        !text.contains("PONG"),
        "the server certificate worked as a client identity: {text}"
    );

    // A plaintext connection to the TLS port gets nothing.
    let plain = server.raw_command("PING");
    assert!(!plain.contains("PONG"), "plaintext answered: {plain}");
    assert!(Path::new(&d.path(layout::CA_KEY)).exists());
}
