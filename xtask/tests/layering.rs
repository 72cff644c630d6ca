//! The crate layering of docs/architecture.md §2: a user who wants only the codec (or the
//! detector, or the monitor without features) compiles no Redis, HTTP, async runtime or
//! OpenTelemetry crate.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

mod common;

const HEAVY: &[&str] = &[
    "redis",
    "axum",
    "hyper",
    "tokio",
    "tower",
    "opentelemetry",
    "reqwest",
    "rustls",
    "openssl",
];

/// The normal (non-dev, non-build) dependency tree of `package` built alone with its default
/// features (`cargo tree -p` resolves the package by itself, not the workspace's union).
fn normal_deps(package: &str) -> Vec<String> {
    normal_deps_with(package, &[])
}

fn assert_light(package: &str, expect: &str) {
    let deps = normal_deps(package);
    assert!(
        deps.iter().any(|d| d == expect),
        "tree of {package} not read: {deps:?}"
    );
    for dep in &deps {
        for heavy in HEAVY {
            let pulls = dep == heavy
                || dep.starts_with(&format!("{heavy}-"))
                || dep.starts_with(&format!("{heavy}_"));
            assert!(!pulls, "{package} pulls in {dep}");
        }
    }
}

#[test]
fn codec_depends_on_nothing_heavy() {
    // ring (the default AES-GCM) is the same crate rustls brings; no TLS, Redis or runtime.
    assert_light("sealcache-codec", "ring");
}

#[test]
fn leaf_crates_depend_on_nothing_heavy_without_features() {
    assert_light("sealcache-env-detect", "serde");
    assert_light("sealcache-monitor", "tracing");
    // The API's JSON types: every reader (the operator command, scripts) gets them with serde
    // alone.
    assert_light("sealcache-api", "serde");
}

/// The normal dependency tree of `package` with `args` (features).
fn normal_deps_with(package: &str, args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "-p", package,
        ])
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    common::assert_success(&out);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The cache never carries provisioning (certificate generation, the generator): rcgen is not in
/// its tree; figment (the settings loader) and x509-parser (certificate expiry in the status)
/// come only with the features that ask for them (`settings`, `certificate-expiry`).
#[test]
fn the_cache_carries_no_provisioning_and_settings_only_by_feature() {
    let default = normal_deps_with("sealcache", &[]);
    assert!(
        default.iter().any(|d| d == "redis"),
        "tree not read: {default:?}"
    );
    assert!(
        !default.iter().any(|d| d == "rcgen"),
        "sealcache pulls in rcgen"
    );
    assert!(
        !default.iter().any(|d| d == "sealcache-config-gen"),
        "sealcache pulls in the provisioning crate"
    );
    let bare = normal_deps_with("sealcache", &["--no-default-features"]);
    for heavy in ["rcgen", "x509-parser", "figment", "sealcache-settings"] {
        assert!(
            !bare.iter().any(|d| d == heavy),
            "sealcache without features pulls in {heavy}"
        );
    }
    let settings_only = normal_deps_with(
        "sealcache",
        &["--no-default-features", "--features", "settings"],
    );
    assert!(settings_only.iter().any(|d| d == "figment"));
    assert!(
        !settings_only
            .iter()
            .any(|d| d == "x509-parser" || d == "rcgen")
    );
    // The settings crate itself is light: no certificates, no Redis.
    let settings = normal_deps_with("sealcache-settings", &[]);
    for heavy in ["rcgen", "x509-parser", "redis", "rustls"] {
        assert!(
            !settings.iter().any(|d| d == heavy),
            "sealcache-settings pulls in {heavy}"
        );
    }
}

/// redis's `tls-rustls-webpki-roots` changes the default roots of every redis-rs client in a
/// build, so the library leaves it to the application (`redis-webpki-roots`, off by default); the
/// shipped server and Python package turn it on, or redis-rs reads the whole system CA store on
/// every new TLS connection, on an async worker (it stalled every request in flight).
#[test]
fn webpki_roots_only_where_sealcache_ships_a_process() {
    let library = normal_deps_with("sealcache", &[]);
    assert!(
        library.iter().any(|d| d == "redis"),
        "tree not read: {library:?}"
    );
    assert!(
        !library.iter().any(|d| d == "webpki-roots"),
        "the sealcache library turns on redis's webpki roots by default"
    );
    for shipped in ["sealcache-server", "sealcache-python"] {
        let tree = normal_deps_with(shipped, &[]);
        assert!(
            tree.iter().any(|d| d == "webpki-roots"),
            "{shipped} is built without sealcache's redis-webpki-roots"
        );
    }
}
