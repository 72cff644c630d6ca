//! Step output: a line per step, ✅ or ❌, and process helpers that check every exit status.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

/// The workspace root, as `cargo metadata` reports it from the current directory.
pub(crate) fn workspace_root() -> PathBuf {
    layout().0.clone()
}

/// The build output directory (`CARGO_TARGET_DIR`, `build.target-dir`, or `target/`), as cargo
/// reports it for this workspace now.
pub(crate) fn target_dir() -> PathBuf {
    layout().1.clone()
}

/// The workspace root and target directory from `cargo metadata`, asked at run time from the
/// current directory: never a path baked in at compile time (a shared `CARGO_TARGET_DIR` would
/// otherwise run whichever checkout built xtask last). Falls back to this source's checkout.
fn layout() -> &'static (PathBuf, PathBuf) {
    static LAYOUT: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| {
        let fallback_root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .output();
        let parsed = output
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v[name].as_str().map(PathBuf::from))
        };
        let root = field("workspace_root").unwrap_or(fallback_root);
        let target = field("target_directory").unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
        });
        (root, target)
    })
}

/// `cargo` as invoked us (falls back to `cargo` on PATH).
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs `cmd` as a named step, inheriting stdout/stderr, and prints ✅/❌ with the duration.
pub(crate) fn step(name: &str, cmd: &mut Command) -> anyhow::Result<()> {
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
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// True when `program` is found on PATH.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Prints the `sealcache-ops` library's progress lines as they come (`✅`/`❌` ...).
#[derive(Debug, Default)]
pub(crate) struct Printer;

impl sealcache_ops::Progress for Printer {
    fn line(&mut self, line: sealcache_ops::Line) {
        println!("{line}");
    }
}
