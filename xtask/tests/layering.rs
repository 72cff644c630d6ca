//! The crate layering of DESIGN.md §2: a user who wants only the codec compiles no Redis, HTTP,
//! async runtime or OpenTelemetry crate.

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

#[test]
fn codec_depends_on_nothing_heavy() {
    let deps = normal_deps("sealcache-codec");
    assert!(
        deps.iter().any(|d| d == "aes-gcm"),
        "tree not read: {deps:?}"
    );
    for dep in &deps {
        for heavy in HEAVY {
            assert!(
                !(dep == heavy || dep.starts_with(&format!("{heavy}-"))),
                "sealcache-codec pulls in {dep}"
            );
        }
    }
}
