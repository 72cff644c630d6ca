//! A rendering as a value (every file and its contents), then written: `--dry-run` lists the
//! plan, tests inspect it, and writing is one step that replaces each file atomically.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::Topology;
use super::certs::ServerCertificate;
use super::kustomize::{BASE_DIR, OVERLAYS_DIR, SECRETS_DIR};
use crate::error::{Result, io};

/// One file of a rendering.
pub struct PlannedFile {
    path: PathBuf,
    contents: Zeroizing<Vec<u8>>,
    secret: bool,
}

impl std::fmt::Debug for PlannedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedFile")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("secret", &self.secret)
            .finish()
    }
}

impl PlannedFile {
    pub(crate) fn public(path: impl Into<PathBuf>, contents: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            contents: Zeroizing::new(contents),
            secret: false,
        }
    }

    pub(crate) fn secret(path: impl Into<PathBuf>, contents: Zeroizing<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            contents,
            secret: true,
        }
    }

    /// The path, relative to the output directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it is part of the secret output (written 0600 in a 0700 directory).
    #[must_use]
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// The text of a file that holds no secret; `None` for the secret output.
    #[must_use]
    pub fn public_text(&self) -> Option<&str> {
        if self.secret {
            None
        } else {
            std::str::from_utf8(&self.contents).ok()
        }
    }
}

/// Everything a rendering writes, before it is written.
#[derive(Debug)]
pub struct RenderPlan {
    pub(crate) out: PathBuf,
    pub(crate) topology: Topology,
    pub(crate) files: Vec<PlannedFile>,
    pub(crate) server_certificate: ServerCertificate,
}

/// What [`RenderPlan::write`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RenderReport {
    /// The output directory.
    pub out: PathBuf,
    /// The topology rendered.
    pub topology: Topology,
    /// `OUT/base`.
    pub base: PathBuf,
    /// `OUT/overlays/single` or `OUT/overlays/cluster`: what `kubectl apply -k` takes.
    pub overlay: PathBuf,
    /// `OUT/secrets/single` or `OUT/secrets/cluster` (git-ignored, 0700, files 0600).
    pub secrets: PathBuf,
    /// Every file written, relative to `out`.
    pub written: Vec<PathBuf>,
    /// Files of an earlier rendering removed from the directories this one owns.
    pub removed: Vec<PathBuf>,
    /// Where the Redis server certificate came from.
    pub server_certificate: ServerCertificate,
}

impl RenderPlan {
    /// The output directory.
    #[must_use]
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The topology.
    #[must_use]
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Every file, in writing order.
    pub fn files(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files.iter()
    }

    /// Where the Redis server certificate comes from.
    #[must_use]
    pub fn server_certificate(&self) -> ServerCertificate {
        self.server_certificate
    }

    /// The directories this rendering owns: every file in them that it does not write is stale.
    fn owned_dirs(&self) -> Vec<PathBuf> {
        let t = self.topology.dir_name();
        vec![
            PathBuf::from(BASE_DIR),
            Path::new(OVERLAYS_DIR).join(t),
            Path::new(SECRETS_DIR).join(t),
            Path::new(SECRETS_DIR)
                .join(t)
                .join(super::kustomize::SERVER_TLS_DIR),
        ]
    }

    /// Writes every file (manifests 0644; the secret output 0600 in 0700 directories), each
    /// replaced atomically, and removes the files of an earlier rendering that this one no longer
    /// writes from the directories it owns.
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming the file or directory.
    pub fn write(&self) -> Result<RenderReport> {
        let out = &self.out;
        make_dir(out, 0o755)?;
        make_dir(&out.join(SECRETS_DIR), 0o700)?;
        let mut removed = Vec::new();
        for dir in self.owned_dirs() {
            let path = out.join(&dir);
            if !path.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&path).map_err(io("read", &path))? {
                let entry = entry.map_err(io("read", &path))?;
                let relative = dir.join(entry.file_name());
                let is_file = entry
                    .file_type()
                    .map_err(io("read", entry.path()))?
                    .is_file();
                if is_file && !self.files.iter().any(|f| f.path == relative) {
                    std::fs::remove_file(entry.path()).map_err(io("remove", entry.path()))?;
                    removed.push(relative);
                }
            }
        }
        let mut written = Vec::new();
        for file in &self.files {
            let path = out.join(&file.path);
            if let Some(parent) = path.parent() {
                make_dir(parent, if file.secret { 0o700 } else { 0o755 })?;
            }
            write_atomically(
                &path,
                &file.contents,
                if file.secret { 0o600 } else { 0o644 },
            )?;
            written.push(file.path.clone());
        }
        let t = self.topology.dir_name();
        Ok(RenderReport {
            out: out.clone(),
            topology: self.topology,
            base: out.join(BASE_DIR),
            overlay: out.join(OVERLAYS_DIR).join(t),
            secrets: out.join(SECRETS_DIR).join(t),
            written,
            removed,
            server_certificate: self.server_certificate,
        })
    }
}

/// Creates `dir` (and its parents) and sets its mode (also when it existed: a secret directory
/// is tightened).
fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io("create", dir))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(io("set the permissions of", dir))
}

/// Writes `contents` with `mode` over `path`, atomically (`sealcache_config_gen::atomic`).
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    sealcache_config_gen::atomic::write_atomically(path, contents, mode, None)
        .map_err(io("write", path))
}
