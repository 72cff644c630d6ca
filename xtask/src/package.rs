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
//! 3. The unpacked packages become the members of one scratch workspace (`Cargo.toml` written
//!    beside them: the workspace's `[profile...]` tables verbatim, and `[patch.crates-io]` pointing
//!    each sibling at its unpacked package, because a packaged manifest asks for its siblings by
//!    version (`sealcache-codec = "0.1.0"`), which crates.io does not have yet), so every line
//!    compiled is packaged source. The workspace's `Cargo.lock` keeps every other dependency at the
//!    version the workspace is tested with.
//! 4. `cargo test --workspace --offline --all-features` there (and the benchmarks compiled), with
//!    `CARGO_TARGET_DIR` the workspace's own: the registry crates the workspace tests built are
//!    reused instead of being built again per package (the packaged crates themselves have other
//!    paths, so they are always built from the unpacked source). What a crate compiles with only
//!    its own features is the feature matrix's job (`features.rs`), not this step's.
//!
//! A test that needs a file outside its crate (`deploy/`) or the unpublished test kit fails here:
//! it belongs in `crates/integration-tests`. The one exception is the benchmark corpus, which the
//! codec's agreement test (it needs the codec's private paths) reads from `SEALCACHE_CORPUS`,
//! set here to `../shared/bench/corpus.jsonl`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};

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
    // The packaged crates are tested `--offline` against the workspace's lock file: every crate
    // it names must be in cargo's cache, also on a machine that has not built the workspace yet.
    step(
        "cargo fetch (the locked dependencies, for the offline package tests)",
        cargo().args(["fetch", "--locked"]),
    )?;
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

    // One workspace over the unpacked packages, each sibling patched in by path: one build of
    // the dependencies for all of them, in the workspace's own target directory with the
    // workspace's profile, so the registry crates the workspace tests already built are reused
    // (a separate target rebuilt them three times, once per feature set, for ~5 minutes).
    write_scratch_workspace(&scratch, &published, &unpacked)?;
    let lock = crate::progress::workspace_root().join("Cargo.lock");
    std::fs::copy(&lock, scratch.join("Cargo.lock"))
        .with_context(|| format!("cannot copy {} into {}", lock.display(), scratch.display()))?;
    // The codec's agreement test reads the benchmark corpus, which no package carries: it is
    // named by path, as the test documents (`SEALCACHE_CORPUS`).
    let corpus = crate::progress::workspace_root().join("../shared/bench/corpus.jsonl");
    let run = |args: &[&str]| {
        let mut cmd = cargo();
        cmd.current_dir(&scratch)
            .env("CARGO_TARGET_DIR", &target)
            .env("SEALCACHE_CORPUS", &corpus)
            .args(args)
            .args(["--workspace", "--offline", "--all-features"]);
        cmd
    };
    let mut failed = Vec::new();
    let names = published.keys().copied().collect::<Vec<_>>().join(", ");
    if step(
        &format!("{names} from their .crate files: cargo test"),
        &mut run(&["test"]),
    )
    .is_err()
    {
        failed.push("cargo test");
    }
    if published.values().any(|m| m.has_benches)
        && step(
            "benchmarks of the packaged crates compile",
            &mut run(&["test", "--benches", "--no-run"]),
        )
        .is_err()
    {
        failed.push("benchmarks");
    }
    let secs = started.elapsed().as_secs_f64();
    if !failed.is_empty() {
        bail!(
            "the packaged crates failed from their .crate files ({}; unpacked sources kept in {})",
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
    let metadata = crate::progress::workspace_metadata(true)?;
    Ok(metadata
        .workspace_packages()
        .into_iter()
        .map(|package| Member {
            name: package.name.to_string(),
            version: package.version.to_string(),
            // `publish = false` is an empty list of registries; absent is crates.io.
            publish: package
                .publish
                .as_ref()
                .is_none_or(|registries| !registries.is_empty()),
            has_benches: package.targets.iter().any(cargo_metadata::Target::is_bench),
        })
        .collect())
}

/// Writes `scratch/Cargo.toml`: a workspace whose members are the unpacked packages, with the
/// workspace's dependency profile and crates.io patched to each unpacked sibling (a packaged
/// manifest asks for its siblings by version, which crates.io does not have yet), so every line
/// compiled is packaged source.
fn write_scratch_workspace(
    scratch: &Path,
    published: &BTreeMap<&str, &Member>,
    unpacked: &BTreeMap<&str, PathBuf>,
) -> anyhow::Result<()> {
    let dir_name = |name: &str| -> anyhow::Result<String> {
        let dir = &unpacked[name];
        let file_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no UTF-8 file name", dir.display()))?;
        // A JSON string is a TOML basic string (same escapes), quoting the path safely.
        Ok(serde_json::to_string(file_name)?)
    };
    let mut manifest = String::from(
        "# Written by `cargo xtask package-test`: the unpacked .crate files as one workspace.\n\
         [workspace]\nresolver = \"3\"\nmembers = [\n",
    );
    for name in published.keys() {
        manifest.push_str(&format!("    {},\n", dir_name(name)?));
    }
    manifest.push_str("]\n\n");
    // The workspace's profiles, verbatim: the registry crates then have the workspace's build
    // settings and their artefacts are shared with its tests.
    let root = crate::progress::workspace_root().join("Cargo.toml");
    let root = std::fs::read_to_string(&root)
        .with_context(|| format!("cannot read {}", root.display()))?;
    manifest.push_str(&profile_tables(&root));
    manifest.push_str("\n[patch.crates-io]\n");
    for name in published.keys() {
        manifest.push_str(&format!("{name} = {{ path = {} }}\n", dir_name(name)?));
    }
    let path = scratch.join("Cargo.toml");
    std::fs::write(&path, manifest).with_context(|| format!("cannot write {}", path.display()))
}

/// The `[profile...]` tables of a manifest, verbatim (header lines and their contents).
fn profile_tables(manifest: &str) -> String {
    let mut tables = String::new();
    let mut inside = false;
    for line in manifest.lines() {
        let header = line.trim_start();
        if header.starts_with('[') {
            inside = header.starts_with("[profile.");
        }
        if inside {
            tables.push_str(line);
            tables.push('\n');
        }
    }
    tables
}

/// Where the packages are unpacked: outside any workspace, one fixed directory per target
/// directory (so the shared target's artefacts of the sibling crates stay valid between runs).
fn scratch_dir(target: &Path) -> PathBuf {
    use std::hash::{DefaultHasher, Hash as _, Hasher as _};
    let mut hasher = DefaultHasher::new();
    target.hash(&mut hasher);
    std::env::temp_dir().join(format!("sealcache-package-test-{:016x}", hasher.finish()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn profile_tables_are_copied_whole_and_nothing_else() {
        let manifest = "[workspace]\nmembers = []\n\n[profile.release]\ndebug = 1\n\n\
                        [workspace.dependencies]\nfoo = \"1\"\n[profile.dev.package.\"*\"]\n\
                        # why\nopt-level = 2\n";
        assert_eq!(
            super::profile_tables(manifest),
            "[profile.release]\ndebug = 1\n\n[profile.dev.package.\"*\"]\n# why\nopt-level = 2\n"
        );
    }
}
