//! The crate layering of docs/architecture.md §2: a user who wants only the codec (or the
//! detector, or the monitor without features) compiles no Redis, HTTP, async runtime or
//! OpenTelemetry crate.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "-p", package,
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
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
}
