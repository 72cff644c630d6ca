//! The feature matrix of `cargo xtask test`: every feature of every workspace member compiled
//! alone, derived from `cargo metadata` so that a new feature is checked without editing a list.
//!
//! The rule, per workspace member that declares features (one without features has a single
//! configuration, which clippy and the tests already build):
//!
//! 1. `--no-default-features` alone;
//! 2. each feature `F` but `default`: `--no-default-features --features F`.
//!
//! Warnings are denied (`RUSTFLAGS=-D warnings`), as in clippy.
//!
//! A crate may refuse to compile without one of some features, with a `compile_error!` under
//! `#[cfg(not(any(feature = "a", feature = "b")))]` (the codec needs a cipher: `ring` or
//! `rustcrypto`). For such a crate, a configuration that turns none of them on (directly or
//! through the features it enables) is the documented error, not a bug: the bare check (1) is
//! skipped, and a feature that does not satisfy the requirement by itself (the codec's
//! `dictionary-training`) is checked together with the crate's default features
//! (`dictionary-training,ring`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::progress::{cargo, step};

/// One `cargo check -p PACKAGE --no-default-features --features FEATURES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCheck {
    /// The package.
    pub package: String,
    /// The features enabled (alone or with the ones they need).
    pub features: Vec<String>,
}

/// For each package, the groups of features of which one must be on (from `compile_error!`).
type Requirements = BTreeMap<String, Vec<BTreeSet<String>>>;

/// A workspace member as the matrix reads it.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    /// Its feature table: each feature and what it enables.
    features: BTreeMap<String, Vec<String>>,
    /// The directories of its library target's sources.
    lib_dirs: Vec<PathBuf>,
}

/// The workspace members of `metadata`.
fn members(metadata: &cargo_metadata::Metadata) -> Vec<Member> {
    metadata
        .workspace_packages()
        .into_iter()
        .map(|package| Member {
            name: package.name.to_string(),
            features: package.features.clone(),
            lib_dirs: package
                .targets
                .iter()
                .filter(|t| t.is_lib())
                .filter_map(|t| {
                    t.src_path
                        .parent()
                        .map(|d| d.to_path_buf().into_std_path_buf())
                })
                .collect(),
        })
        .collect()
}

/// Runs every check of the matrix as a step.
pub fn check_each() -> anyhow::Result<()> {
    let members = members(&crate::progress::workspace_metadata(true)?);
    let requirements = requirements(&members)?;
    for check in feature_checks(&members, &requirements) {
        let features = check.features.join(",");
        let mut cmd = cargo();
        cmd.args([
            "check",
            "--quiet",
            "--locked",
            "-p",
            &check.package,
            "--no-default-features",
        ]);
        if !features.is_empty() {
            cmd.args(["--features", &features]);
        }
        // Warnings denied, as in clippy: an import or item unused under one feature set only
        // (which clippy's `--all-features` cannot see) fails here. These check builds are the
        // step's own, so the flag costs no other step a rebuild.
        cmd.env("RUSTFLAGS", "-D warnings");
        step(
            &format!(
                "cargo check -p {} --no-default-features --features [{features}]",
                check.package
            ),
            &mut cmd,
        )?;
    }
    Ok(())
}

/// The feature matrix of `members`, given each package's [`Requirements`]; see the module docs.
fn feature_checks(members: &[Member], requirements: &Requirements) -> Vec<FeatureCheck> {
    let mut checks = Vec::new();
    for member in members {
        let name = member.name.as_str();
        let table: BTreeMap<&str, Vec<&str>> = member
            .features
            .iter()
            .map(|(f, enables)| (f.as_str(), enables.iter().map(String::as_str).collect()))
            .collect();
        if table.keys().all(|f| *f == "default") {
            continue;
        }
        let groups = requirements.get(name).map_or(&[][..], Vec::as_slice);
        let satisfied = |features: &[&str]| {
            let on = enabled(&table, features);
            groups
                .iter()
                .all(|g| g.iter().any(|f| on.contains(f.as_str())))
        };
        let check = |features: &[&str]| FeatureCheck {
            package: name.to_owned(),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        };
        if satisfied(&[]) {
            checks.push(check(&[]));
        }
        let defaults = table.get("default").cloned().unwrap_or_default();
        for &feature in table.keys().filter(|f| **f != "default") {
            if satisfied(&[feature]) {
                checks.push(check(&[feature]));
            } else {
                let mut with_defaults = vec![feature];
                with_defaults.extend(defaults.iter().filter(|d| **d != feature));
                checks.push(check(&with_defaults));
            }
        }
    }
    checks
}

/// The features `features` turn on, themselves included, following the package's feature table
/// (`dep:` entries and dependency features `dep/feature` are not features of the package).
fn enabled<'a>(table: &BTreeMap<&'a str, Vec<&'a str>>, features: &[&'a str]) -> BTreeSet<&'a str> {
    let mut on = BTreeSet::new();
    let mut todo = features.to_vec();
    while let Some(f) = todo.pop() {
        if on.insert(f) {
            todo.extend(
                table
                    .get(f)
                    .into_iter()
                    .flatten()
                    .filter(|e| table.contains_key(*e)),
            );
        }
    }
    on
}

/// Each member's feature requirements, read from the `.rs` files under its library's directory.
fn requirements(members: &[Member]) -> anyhow::Result<Requirements> {
    let mut out = Requirements::new();
    for member in members {
        for dir in &member.lib_dirs {
            for file in rust_files(dir)? {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let groups = required_features(&text);
                if !groups.is_empty() {
                    out.entry(member.name.clone()).or_default().extend(groups);
                }
            }
        }
    }
    Ok(out)
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot read {}", dir.display()))?
                .path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// The requirements one source file states: a `compile_error!` right under
/// `#[cfg(not(any(feature = "a", ...)))]` (one of them needed) or `#[cfg(not(feature = "a"))]`
/// / `#[cfg(not(all(...)))]` (each needed).
fn required_features(source: &str) -> Vec<BTreeSet<String>> {
    let mut groups = Vec::new();
    let mut previous: Option<&str> = None;
    for line in source.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(cfg) = previous.and_then(|p| p.strip_prefix("#[cfg(not("))
            && line.starts_with("compile_error!")
        {
            let features: BTreeSet<String> = cfg
                .split("feature")
                .skip(1)
                .filter_map(|s| s.trim_start().strip_prefix('=')?.split('"').nth(1))
                .map(str::to_owned)
                .collect();
            if cfg.starts_with("any(") {
                groups.push(features);
            } else {
                groups.extend(features.into_iter().map(|f| BTreeSet::from([f])));
            }
        }
        previous = Some(line);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workspace members as `cargo metadata` reports them, cut down to what is read.
    fn fixture() -> Vec<Member> {
        let member = |name: &str, features: &[(&str, &[&str])]| Member {
            name: name.to_owned(),
            features: features
                .iter()
                .map(|(f, e)| ((*f).to_owned(), e.iter().map(|e| (*e).to_owned()).collect()))
                .collect(),
            lib_dirs: Vec::new(),
        };
        vec![
            member(
                "sealcache-codec",
                &[
                    ("default", &["ring"]),
                    ("ring", &["dep:ring"]),
                    ("rustcrypto", &["dep:aes-gcm"]),
                    ("dictionary-training", &["zstd/zdict_builder"]),
                ],
            ),
            member(
                "sealcache-monitor",
                &[
                    ("default", &[]),
                    ("otel", &["dep:opentelemetry"]),
                    ("prometheus", &["otel", "dep:prometheus"]),
                ],
            ),
            member(
                "sealcache",
                &[
                    ("default", &["settings"]),
                    ("settings", &["dep:sealcache-settings"]),
                ],
            ),
            member("sealcache-env-detect", &[]),
        ]
    }

    fn checks(requirements: &Requirements) -> Vec<(String, String)> {
        feature_checks(&fixture(), requirements)
            .into_iter()
            .map(|c| (c.package, c.features.join(",")))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, f)| ((*p).to_owned(), (*f).to_owned()))
            .collect()
    }

    #[test]
    fn each_feature_alone_and_none_for_every_member_with_features() {
        let cipher = BTreeSet::from(["ring".to_owned(), "rustcrypto".to_owned()]);
        let requirements = Requirements::from([("sealcache-codec".to_owned(), vec![cipher])]);
        assert_eq!(
            checks(&requirements),
            pairs(&[
                // No cipher is the codec's documented compile error: no bare check, and the
                // trainer is checked with the default cipher.
                ("sealcache-codec", "dictionary-training,ring"),
                ("sealcache-codec", "ring"),
                ("sealcache-codec", "rustcrypto"),
                ("sealcache-monitor", ""),
                ("sealcache-monitor", "otel"),
                ("sealcache-monitor", "prometheus"),
                ("sealcache", ""),
                ("sealcache", "settings"),
            ])
        );
        // Without a stated requirement every feature is checked alone.
        let plain = checks(&Requirements::new());
        assert!(plain.contains(&pairs(&[("sealcache-codec", "")])[0]));
        assert!(plain.contains(&pairs(&[("sealcache-codec", "dictionary-training")])[0]));
    }

    #[test]
    fn a_feature_that_enables_a_required_one_satisfies_it() {
        let otel = BTreeSet::from(["otel".to_owned()]);
        let requirements = Requirements::from([("sealcache-monitor".to_owned(), vec![otel])]);
        let monitor: Vec<_> = checks(&requirements)
            .into_iter()
            .filter(|(p, _)| p == "sealcache-monitor")
            .collect();
        assert_eq!(
            monitor,
            pairs(&[
                ("sealcache-monitor", "otel"),
                ("sealcache-monitor", "prometheus"),
            ])
        );
    }

    #[test]
    fn requirements_are_read_from_compile_error() {
        let source = r#"
            use std::sync::atomic::AtomicU64;

            #[cfg(not(any(feature = "ring", feature = "rustcrypto")))]
            compile_error!(
                "sealcache-codec needs an AES-256-GCM implementation"
            );

            #[cfg(not(feature = "std"))]
            compile_error!("needs std");

            #[cfg(not(feature = "other"))]
            mod fallback;
        "#;
        assert_eq!(
            required_features(source),
            vec![
                BTreeSet::from(["ring".to_owned(), "rustcrypto".to_owned()]),
                BTreeSet::from(["std".to_owned()]),
            ]
        );
        assert!(required_features("compile_error!(\"always\");").is_empty());
    }

    #[test]
    fn the_codec_states_its_cipher_requirement() {
        let members = members(&crate::progress::workspace_metadata(false).unwrap());
        let requirements = requirements(&members).unwrap();
        let cipher = BTreeSet::from(["ring".to_owned(), "rustcrypto".to_owned()]);
        assert_eq!(requirements.get("sealcache-codec"), Some(&vec![cipher]));
        let codec: Vec<_> = feature_checks(&members, &requirements)
            .into_iter()
            .filter(|c| c.package == "sealcache-codec")
            .map(|c| c.features.join(","))
            .collect();
        assert!(codec.contains(&"dictionary-training,ring".to_owned()));
        assert!(!codec.contains(&String::new()));
    }
}
