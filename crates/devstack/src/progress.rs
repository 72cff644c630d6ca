//! Step output: a line per step, ✅ or ❌, and process helpers that check every exit status.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

/// The workspace root, as `cargo metadata` reports it from the current directory.
pub fn workspace_root() -> PathBuf {
    layout().0.clone()
}

/// The default deployment directory, `deploy/generated` (git-ignored).
pub fn default_dir() -> PathBuf {
    workspace_root().join("deploy/generated")
}

/// `dev-up`'s own directory, `deploy/generated-dev` (git-ignored): never the production one.
pub fn default_dev_dir() -> PathBuf {
    workspace_root().join("deploy/generated-dev")
}

/// The default directory of a cluster deployment, `deploy/generated-cluster` (git-ignored):
/// never the single-node one.
pub fn default_cluster_dir() -> PathBuf {
    workspace_root().join("deploy/generated-cluster")
}

/// The build output directory (`CARGO_TARGET_DIR`, `build.target-dir`, or `target/`), as cargo
/// reports it for this workspace now.
pub fn target_dir() -> PathBuf {
    layout().1.clone()
}

/// The workspace root and target directory from `cargo metadata`, asked at run time from the
/// current directory: never a path baked in at compile time (a shared `CARGO_TARGET_DIR` would
/// otherwise run whichever checkout built xtask last). Falls back to this source's checkout.
fn layout() -> &'static (PathBuf, PathBuf) {
    static LAYOUT: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| {
        // crates/devstack → the workspace root.
        let fallback_root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let metadata = workspace_metadata(false).ok();
        let root = metadata.as_ref().map_or(fallback_root, |m| {
            m.workspace_root.clone().into_std_path_buf()
        });
        let target = metadata.map_or_else(
            || {
                std::env::var_os("CARGO_TARGET_DIR")
                    .map_or_else(|| root.join("target"), PathBuf::from)
            },
            |m| m.target_directory.into_std_path_buf(),
        );
        (root, target)
    })
}

/// `cargo metadata --no-deps` of the workspace around the current directory (`--locked` when
/// `locked`: the lock file must not change).
pub fn workspace_metadata(locked: bool) -> anyhow::Result<cargo_metadata::Metadata> {
    let mut command = cargo_metadata::MetadataCommand::new();
    command.no_deps();
    if let Some(cargo) = std::env::var_os("CARGO") {
        command.cargo_path(cargo);
    }
    if locked {
        command.other_options(vec!["--locked".to_owned()]);
    }
    command.exec().context("cargo metadata failed")
}

/// Free space below which `cargo xtask test` reclaims what it can rebuild (see [`reclaim_disk`]).
pub const LOW_DISK_BYTES: u64 = 10 << 30;

/// Bytes free for this user on the file system holding `path` (`None`: not known).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Before a step that builds (`before`: the workspace tests, the wheel, the package tests): when less than [`LOW_DISK_BYTES`] is free where the
/// build output goes, removes the incremental compilation caches (`target/*/incremental`, a
/// third of a test build's size and only a speed-up for the next edit), and says so. A full test
/// run on a machine with little disk then finishes instead of failing mid-link (a CI run once
/// ran out of space in its last step).
pub fn reclaim_disk(before: &str) {
    let target = target_dir();
    let Some(free) = free_bytes(&target) else {
        return;
    };
    if let Some(reclaimed) = reclaim_incremental(&target, free, LOW_DISK_BYTES) {
        println!(
            "♻  {} GiB free before {before}: removed the incremental build caches ({} MiB)",
            free >> 30,
            reclaimed >> 20
        );
    }
}

/// Removes `target`'s incremental caches when `free` is below `threshold`; the bytes removed
/// (`None`: enough was free, nothing removed).
fn reclaim_incremental(target: &Path, free: u64, threshold: u64) -> Option<u64> {
    if free >= threshold {
        return None;
    }
    let mut reclaimed = 0_u64;
    for profile in ["debug", "release"] {
        let incremental = target.join(profile).join("incremental");
        let size = dir_size(&incremental);
        if std::fs::remove_dir_all(&incremental).is_ok() {
            reclaimed += size;
        }
    }
    Some(reclaimed)
}

/// The bytes of the files under `dir` (0 when unreadable).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => todo.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// `cargo` as invoked us (falls back to `cargo` on PATH).
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs `cmd` as a named step, inheriting stdout/stderr, and prints ✅/❌ with the duration.
pub fn step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
    println!("▶ {name}");
    let started = Instant::now();
    let status = cmd.status().with_context(|| {
        format!(
            "cannot start {} for step `{name}`",
            cmd.get_program().to_string_lossy()
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    if status.success() {
        println!("✅ {name} ({secs:.1}s)");
        Ok(())
    } else {
        println!("❌ {name} ({secs:.1}s, {status})");
        bail!("step `{name}` failed")
    }
}

/// True when the process runs as root (uid 0), read from /proc without unsafe code.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// True when `program` is an executable file on PATH (the operations library's check).
pub use sealcache_ops::up::on_path;

/// Prints the `sealcache-ops` library's progress lines as they come (`✅`/`❌` ...).
#[derive(Debug, Default)]
pub struct Printer;

impl sealcache_ops::Progress for Printer {
    fn line(&mut self, line: sealcache_ops::Line) {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_caches_go_only_when_disk_is_low() {
        let target = tempfile::tempdir().unwrap();
        let cache = target.path().join("debug/incremental/crate-x");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("query-cache.bin"), vec![0_u8; 4096]).unwrap();
        std::fs::create_dir_all(target.path().join("debug/deps")).unwrap();
        // Enough free: nothing is touched.
        assert_eq!(reclaim_incremental(target.path(), 20 << 30, 10 << 30), None);
        assert!(cache.exists());
        // Low: the incremental caches go, the build output stays.
        assert_eq!(
            reclaim_incremental(target.path(), 1 << 30, 10 << 30),
            Some(4096)
        );
        assert!(!target.path().join("debug/incremental").exists());
        assert!(target.path().join("debug/deps").exists());
    }

    #[test]
    fn free_space_is_read() {
        assert!(free_bytes(Path::new(".")).is_some_and(|b| b > 0));
    }
}
