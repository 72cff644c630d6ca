//! Every `REDIS_*`, `SEALCACHE_*` and `CACHE_*` name the repository uses is one the settings loader
//! accepts. It reads the repository's files, so it lives here rather than in `sealcache-settings`,
//! whose package has only its own crate.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use sealcache_settings::{Error, SecuritySettings};

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<SecuritySettings, Error> {
    SecuritySettings::load_from(&vars(pairs), None)
}

/// Every `REDIS_*`, `SEALCACHE_*` and `CACHE_*` name the repository's compose files, xtask and
/// crates use is accepted: a new one must be added to `VARIABLES` or `OTHER_VARIABLES`.
#[test]
fn names_used_across_the_repository_are_not_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    let mut stack = vec![
        root.join("deploy"),
        root.join("xtask/src"),
        root.join("xtask/tests"),
    ];
    for krate in [
        "cache",
        "codec",
        "env-detect",
        "monitor",
        "server",
        "testkit",
        "config-gen",
        "integration-tests",
        "ops",
        "cli",
        "devstack",
    ] {
        for dir in ["src", "benches", "tests", "examples"] {
            stack.push(root.join("crates").join(krate).join(dir));
        }
    }
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                // The settings' own tables and tests list misspellings on purpose.
                if !path.ends_with("config-gen/src/settings") && !path.ends_with("generated") {
                    stack.push(path);
                }
            } else if !path.ends_with("config-gen/tests/settings.rs") {
                files.push(path);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for path in &files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let rust = path.extension().is_some_and(|e| e == "rs");
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            let end = bytes[i..]
                .iter()
                .position(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_'))
                .map_or(bytes.len(), |n| i + n);
            // Only ASCII bytes are in a word, so this cannot fail.
            let word = std::str::from_utf8(&bytes[i..end]).unwrap_or_default();
            let quoted = i > 0 && bytes[i - 1] == b'"' && bytes.get(end) == Some(&b'"');
            if at_word
                && (!rust || quoted)
                && ["REDIS_", "SEALCACHE_", "CACHE_"]
                    .iter()
                    .any(|p| word.starts_with(p))
                && !word.ends_with('_')
            {
                seen.insert(word.to_owned());
            }
            i = end.max(i + 1);
        }
    }
    assert!(
        seen.contains("SEALCACHE_DIR") && seen.contains("REDIS_URL"),
        "{seen:?}"
    );
    for name in &seen {
        if let Err(e @ (Error::MisspelledSetting { .. } | Error::UnknownSetting { .. })) =
            load(&[(name.as_str(), "1")])
        {
            panic!("{name} is used in the repository but refused: {e}");
        }
    }
}
