//! Step output: a line per step, ✅ or ❌, and process helpers that check every exit status.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

/// The workspace root (the parent of the xtask crate).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
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
    let status = cmd
        .status()
        .with_context(|| format!("cannot start the process for step `{name}`"))?;
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
