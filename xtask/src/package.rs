//! `cargo xtask package-test`, also a step of `cargo xtask test`: each published crate is tested
//! from its `.crate` file alone, as crates.io would serve it.
//!
//! 1. `cargo package` for every workspace member that may be published. Members with
//!    `publish = false` (xtask, the test kit, the integration tests) are excluded by name, read from
//!    `cargo metadata`: `cargo package --workspace` would package them too.
//! 2. Each `<target>/package/<name>-<version>.crate` is unpacked with `tar` into one directory
//!    outside the workspace (under the system temporary directory, one fixed name per target
//!    directory), where no workspace manifest above the crate applies. The files get the time of
//!    unpacking, so cargo rebuilds the packaged crates every run and never reuses stale artefacts.
//! 3. In each unpacked crate: `cargo test --offline --all-features` (and its benchmarks compiled,
//!    when it has any), with `CARGO_TARGET_DIR=<target>/package-test` shared by all of them so they
//!    reuse each other's artefacts from run to run. A packaged manifest asks for its sibling crates
//!    by version (`sealcache-codec = "0.1.0"`), which crates.io does not have yet:
//!    `--config patch.crates-io.<sibling>.path=...` points each sibling the crate needs (directly,
//!    or through another sibling) at that sibling's unpacked package, so every line compiled is
//!    packaged source. The package's own `Cargo.lock` (written by `cargo package` from the
//!    workspace's) keeps every other dependency at the version the workspace is tested with.
//!
//! A test that needs a file outside its crate (the shared corpus, `deploy/`) or the unpublished test
//! kit fails here: it belongs in `crates/integration-tests`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::progress::{cargo, step};

/// Options of `cargo xtask package-test`.
#[derive(Debug, clap::Args)]
pub(crate) struct PackageTestArgs {}

impl PackageTestArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        test_packages()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// A workspace member, as `cargo metadata` describes it.
#[derive(Debug)]
struct Member {
    name: String,
    version: String,
    publish: bool,
    has_benches: bool,
    /// The names of its dependencies, and whether each is a dev-dependency.
    dependencies: Vec<(String, bool)>,
}

/// Packages the published crates, then tests each from its unpacked `.crate` (see the module docs).
pub(crate) fn test_packages() -> anyhow::Result<()> {
    let started = Instant::now();
    let members = members()?;
    let published: BTreeMap<&str, &Member> = members
        .iter()
        .filter(|m| m.publish)
        .map(|m| (m.name.as_str(), m))
        .collect();
    let mut package = cargo();
    package.args([
        "package",
        "--workspace",
        "--locked",
        "--allow-dirty",
        "--no-verify",
    ]);
    for member in members.iter().filter(|m| !m.publish) {
        package.args(["--exclude", &member.name]);
    }
    step("cargo package (the published crates)", &mut package)?;

    let target = crate::progress::target_dir();
    let scratch = scratch_dir(&target);
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let mut unpacked = BTreeMap::new();
    for member in published.values() {
        let stem = format!("{}-{}", member.name, member.version);
        let file = target.join("package").join(format!("{stem}.crate"));
        // `-m`: the files get the time of unpacking. cargo stamps every file of a package with one
        // fixed date, and cargo decides a path crate is fresh by file times: kept, the stale
        // artefacts of the previous run would pass for this one's.
        let status = Command::new("tar")
            .arg("-xmzf")
            .arg(&file)
            .arg("-C")
            .arg(&scratch)
            .status()
            .context("cannot run tar (needed to unpack the .crate files)")?;
        if !status.success() {
            bail!("tar could not unpack {} ({status})", file.display());
        }
        unpacked.insert(member.name.as_str(), scratch.join(stem));
    }

    let shared_target = target.join("package-test");
    let mut failed = Vec::new();
    for member in published.values() {
        let dir = &unpacked[member.name.as_str()];
        let patches = patches(member, &published, &unpacked)?;
        let run = |args: &[&str]| {
            let mut cmd = cargo();
            // No incremental state and line tables only: every run rebuilds the packaged crates
            // anyway, and backtraces still name file and line (a third of the disk, less time).
            cmd.current_dir(dir)
                .env("CARGO_TARGET_DIR", &shared_target)
                .env("CARGO_INCREMENTAL", "0")
                .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
                .args(args)
                .args(["--offline", "--all-features"]);
            for patch in &patches {
                cmd.args(["--config", patch]);
            }
            cmd
        };
        let name = format!("{} {} from its .crate", member.name, member.version);
        let mut outcome = step(&format!("{name}: cargo test"), &mut run(&["test"]));
        if outcome.is_ok() && member.has_benches {
            outcome = step(
                &format!("{name}: benchmarks compile"),
                &mut run(&["test", "--benches", "--no-run"]),
            );
        }
        if outcome.is_err() {
            failed.push(member.name.as_str());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if !failed.is_empty() {
        bail!(
            "packaged crates failed from their .crate files: {} (unpacked sources kept in {})",
            failed.join(", "),
            scratch.display()
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "✅ {} published crates tested from their .crate files ({secs:.1}s)",
        published.len()
    );
    Ok(())
}

/// The workspace members, from `cargo metadata --no-deps`.
fn members() -> anyhow::Result<Vec<Member>> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .output()
        .context("cannot run cargo metadata")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let metadata: Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let ids = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata lists no workspace members")?;
    let mut members = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        if !ids.contains(&package["id"]) {
            continue;
        }
        let text = |v: &Value| v.as_str().map(str::to_owned);
        members.push(Member {
            name: text(&package["name"]).context("a package without a name")?,
            version: text(&package["version"]).context("a package without a version")?,
            // `publish = false` is an empty list of registries; absent (null) is crates.io.
            publish: package["publish"]
                .as_array()
                .is_none_or(|registries| !registries.is_empty()),
            has_benches: package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bench"))
                }),
            dependencies: package["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| Some((text(&d["name"])?, d["kind"] == "dev")))
                .collect(),
        });
    }
    Ok(members)
}

/// `--config` values patching crates.io, for `member`, with the unpacked published siblings it
/// needs: its own sibling dependencies of any kind, then their normal and build dependencies on
/// siblings, transitively (a patch nothing uses would only print a warning).
fn patches(
    member: &Member,
    published: &BTreeMap<&str, &Member>,
    unpacked: &BTreeMap<&str, PathBuf>,
) -> anyhow::Result<Vec<String>> {
    let mut needed = BTreeSet::new();
    let mut todo: Vec<&str> = member
        .dependencies
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    while let Some(name) = todo.pop() {
        let Some(sibling) = published.get(name) else {
            continue;
        };
        if needed.insert(name) {
            todo.extend(
                sibling
                    .dependencies
                    .iter()
                    .filter(|(_, dev)| !dev)
                    .map(|(name, _)| name.as_str()),
            );
        }
    }
    needed
        .into_iter()
        .map(|name| {
            let dir = &unpacked[name];
            let dir = dir
                .to_str()
                .with_context(|| format!("{} is not UTF-8", dir.display()))?;
            // A JSON string is a TOML basic string (same escapes), quoting the path safely.
            Ok(format!(
                "patch.crates-io.{name}.path={}",
                serde_json::to_string(dir)?
            ))
        })
        .collect()
}

/// Where the packages are unpacked: outside any workspace, one fixed directory per target
/// directory (so the shared target's artefacts of the sibling crates stay valid between runs).
fn scratch_dir(target: &Path) -> PathBuf {
    use std::hash::{DefaultHasher, Hash as _, Hasher as _};
    let mut hasher = DefaultHasher::new();
    target.hash(&mut hasher);
    std::env::temp_dir().join(format!("sealcache-package-test-{:016x}", hasher.finish()))
}
