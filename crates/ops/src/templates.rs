//! The compose files and the configuration they mount (Redis, observability), embedded in the
//! binary: a host with neither a checkout nor a Rust toolchain brings a stack up from them.
//!
//! They are the repository's `deploy/` files (`templates/` links to them, so there is one copy),
//! written into a deployment directory's `compose/` by [`write()`]; the compose files find them
//! there through `SEALCACHE_DEPLOY`.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Result, io};

/// The subdirectory of a deployment directory the templates are written into.
pub const COMPOSE_DIR: &str = "compose";

/// Every template: its path under [`COMPOSE_DIR`] (the same as under the repository's `deploy/`)
/// and its text.
pub const FILES: &[(&str, &str)] = &[
    (
        "docker-compose.secure.yml",
        include_str!("../templates/docker-compose.secure.yml"),
    ),
    (
        "docker-compose.dev.yml",
        include_str!("../templates/docker-compose.dev.yml"),
    ),
    (
        "docker-compose.cluster.yml",
        include_str!("../templates/docker-compose.cluster.yml"),
    ),
    (
        "redis/redis.conf",
        include_str!("../templates/redis/redis.conf"),
    ),
    (
        "redis/redis.dev.conf",
        include_str!("../templates/redis/redis.dev.conf"),
    ),
    (
        "redis/redis.cluster.conf",
        include_str!("../templates/redis/redis.cluster.conf"),
    ),
    (
        "observability/otel-collector.yaml",
        include_str!("../templates/observability/otel-collector.yaml"),
    ),
    (
        "observability/prometheus.yml",
        include_str!("../templates/observability/prometheus.yml"),
    ),
    (
        "observability/alerts.yml",
        include_str!("../templates/observability/alerts.yml"),
    ),
    (
        "observability/grafana/dashboards/sealcache.json",
        include_str!("../templates/observability/grafana/dashboards/sealcache.json"),
    ),
    (
        "observability/grafana/provisioning/dashboards/sealcache.yml",
        include_str!("../templates/observability/grafana/provisioning/dashboards/sealcache.yml"),
    ),
    (
        "observability/grafana/provisioning/datasources/prometheus.yml",
        include_str!("../templates/observability/grafana/provisioning/datasources/prometheus.yml"),
    ),
];

/// Writes every template into `dir`'s [`COMPOSE_DIR`] (files 0644: they hold no secret; each
/// replaced atomically, and only when its text differs). Returns the directory.
///
/// A [`COMPOSE_DIR`] that is a symbolic link, or that another user owns, is removed first and
/// written afresh: the backend container may write the deployment directory (for a rotation run
/// inside it), so it could put another `compose/` in place of this one (with a `.env`, or a file
/// that mounts the host); the files `up` runs compose with are only ever its own.
///
/// # Errors
/// [`crate::OpsError::Io`] when a directory or file cannot be written or removed.
pub fn write(dir: &Path) -> Result<PathBuf> {
    let root = dir.join(COMPOSE_DIR);
    if let Ok(meta) = std::fs::symlink_metadata(&root) {
        let euid = rustix::process::geteuid().as_raw();
        if meta.file_type().is_symlink() || !meta.is_dir() {
            std::fs::remove_file(&root).map_err(io("remove", &root))?;
        } else if meta.uid() != euid {
            std::fs::remove_dir_all(&root).map_err(io("remove", &root))?;
        }
    }
    for (rel, text) in FILES {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            // 0755 whatever the umask: the directories hold no secret, and only their owner
            // writes them.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true).mode(0o755);
            builder.create(parent).map_err(io("create", parent))?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))
                .map_err(io("set the mode of", parent))?;
        }
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        sealcache_config_gen::atomic::write_atomically(&path, text.as_bytes(), 0o644, None)
            .map_err(io("write", &path))?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_template_is_written_and_names_only_variables_it_is_given() {
        let tmp = tempfile::tempdir().unwrap();
        let root = write(tmp.path()).unwrap();
        for (rel, text) in FILES {
            assert_eq!(std::fs::read_to_string(root.join(rel)).unwrap(), *text);
        }
        // The compose files mount their configuration through SEALCACHE_DEPLOY, which `up` sets
        // to this directory: every file they mount from it is a template.
        for (rel, text) in FILES
            .iter()
            .filter(|(r, _)| r.starts_with("docker-compose"))
        {
            for mounted in text.split("${SEALCACHE_DEPLOY").skip(1) {
                let path = mounted
                    .split_once('}')
                    .map(|(_, rest)| rest)
                    .and_then(|rest| rest.split(':').next())
                    .unwrap();
                let path = path.trim_start_matches('/');
                assert!(
                    root.join(path).exists(),
                    "{rel} mounts {path}, not a template"
                );
            }
        }
        // Written again unchanged: nothing is rewritten.
        let before = std::fs::metadata(root.join(FILES[0].0))
            .unwrap()
            .modified()
            .unwrap();
        write(tmp.path()).unwrap();
        let after = std::fs::metadata(root.join(FILES[0].0))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn a_compose_directory_put_in_place_as_a_link_is_replaced_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let dir = tmp.path().join("deployment");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(COMPOSE_DIR)).unwrap();
        let root = write(&dir).unwrap();
        assert!(
            !std::fs::symlink_metadata(&root)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert!(root.join(FILES[0].0).is_file());
    }
}
