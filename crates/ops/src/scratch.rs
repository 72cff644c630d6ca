//! Scratch directories for dry runs: a stage runs on a copy (or into an empty directory), and the
//! files it wrote there are the plan. Created 0700 by `tempfile` and removed when dropped.

use std::path::{Path, PathBuf};

use crate::error::{Result, io};

/// A private temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir(tempfile::TempDir);

impl ScratchDir {
    /// A new, empty scratch directory (mode 0700).
    pub(crate) fn new() -> Result<Self> {
        tempfile::Builder::new()
            .prefix("sealcache-dry-run-")
            .tempdir()
            .map(Self)
            .map_err(io("create", std::env::temp_dir()))
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Every file under `root`, relative to it, sorted, but for the entries of `root` named in `skip`;
/// links are neither listed nor followed.
pub(crate) fn files_under(root: &Path, skip: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io("read", &dir))? {
            let entry = entry.map_err(io("read", &dir))?;
            let path = entry.path();
            if dir == root && skip.iter().any(|s| entry.file_name() == *s) {
                continue;
            }
            let kind = entry.file_type().map_err(io("read", &path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && let Ok(rel) = path.strip_prefix(root)
            {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The largest file [`copy_tree`] copies.
const COPY_LIMIT: u64 = 16 << 20;

/// Copies the directory tree `from` into `to` (created), keeping each file's mode, but for the
/// entries of `from` named in `skip`; links are neither copied nor followed.
pub(crate) fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io("read", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst, &[])?;
        } else if kind.is_file() {
            // Nothing in a deployment is this large; what the backend container may have left
            // in its secrets is never copied whole (a dry run then fails, changing nothing).
            let len = entry.metadata().map_err(io("read", &src))?.len();
            if len > COPY_LIMIT {
                return Err(crate::error::OpsError::Input {
                    what: src.display().to_string(),
                    reason: "larger than 16 MiB: not a deployment's file".to_owned(),
                });
            }
            std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
        }
    }
    Ok(())
}
