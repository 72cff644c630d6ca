//! The record a compose deployment leaves in its directory (`compose-stack.json`): which compose
//! project runs from it and on which host ports its backends answer. The local stacks keep their
//! pid records ([`crate::runtime::LocalPids`], [`crate::runtime::LocalCluster`]).

use std::path::Path;

use crate::error::{OpsError, Result, StepExt as _, io};

/// The compose record's file name in the deployment directory.
pub const COMPOSE_RECORD: &str = "compose-stack.json";
/// The name the cluster stack's record had before the single-node stack wrote one too; read,
/// never written.
const LEGACY_CLUSTER_RECORD: &str = "cluster-stack.json";

/// What `secure-up` (compose) started from a deployment directory.
///
/// JSON: `{"project": "sealcache", "backends": [8080]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ComposeRecord {
    /// The compose project name.
    pub project: String,
    /// The host ports the backends' APIs are published on (127.0.0.1), in backend order.
    pub backends: Vec<u16>,
}

impl ComposeRecord {
    /// The record of compose project `project` with backends on `backends`.
    #[must_use]
    pub fn new(project: impl Into<String>, backends: Vec<u16>) -> Self {
        Self {
            project: project.into(),
            backends,
        }
    }

    /// The record in `dir` (`None`: no compose stack was started from it).
    ///
    /// # Errors
    /// [`OpsError::Io`] when it cannot be read; [`OpsError::Input`] when it is not a record.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        for name in [COMPOSE_RECORD, LEGACY_CLUSTER_RECORD] {
            let path = dir.join(name);
            let text = match std::fs::read(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("read", &path)(e)),
            };
            let record = serde_json::from_slice(&text).map_err(|e| OpsError::Input {
                what: path.display().to_string(),
                reason: format!("not a compose stack record: {e}"),
            })?;
            return Ok(Some(record));
        }
        Ok(None)
    }

    /// Writes the record into `dir` (atomically, 0644: it holds no secret).
    ///
    /// # Errors
    /// [`OpsError::Io`].
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(COMPOSE_RECORD);
        let json = serde_json::to_vec_pretty(self).step(|| "cannot write the compose record")?;
        sealcache_config_gen::atomic::write_atomically(&path, &json, 0o644, None)
            .map_err(io("write", &path))?;
        // The record under its old name would be read first by nothing, but could disagree.
        let _ = std::fs::remove_file(dir.join(LEGACY_CLUSTER_RECORD));
        Ok(())
    }

    /// Removes the record from `dir` (once the stack is down).
    ///
    /// # Errors
    /// [`OpsError::Io`] when a record exists and cannot be removed.
    pub fn remove(dir: &Path) -> Result<()> {
        for name in [COMPOSE_RECORD, LEGACY_CLUSTER_RECORD] {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_record_is_written_read_and_removed_and_the_old_name_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ComposeRecord::read(dir.path()).unwrap(), None);
        std::fs::write(
            dir.path().join(LEGACY_CLUSTER_RECORD),
            r#"{"project": "sealcache-cluster", "backends": [8080, 8081]}"#,
        )
        .unwrap();
        let old = ComposeRecord::read(dir.path()).unwrap().unwrap();
        assert_eq!(
            old,
            ComposeRecord::new("sealcache-cluster", vec![8080, 8081])
        );
        let record = ComposeRecord::new("sealcache", vec![18080]);
        record.write(dir.path()).unwrap();
        assert!(!dir.path().join(LEGACY_CLUSTER_RECORD).exists());
        assert_eq!(ComposeRecord::read(dir.path()).unwrap(), Some(record));
        ComposeRecord::remove(dir.path()).unwrap();
        assert_eq!(ComposeRecord::read(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(COMPOSE_RECORD), "not json").unwrap();
        assert!(matches!(
            ComposeRecord::read(dir.path()),
            Err(OpsError::Input { .. })
        ));
    }
}
