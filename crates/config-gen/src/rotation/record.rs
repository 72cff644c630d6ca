//! The rotation record (`rotation.json`): where a rotation stands, and the stage in progress with
//! the facts it planned. No secret is ever in it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io};
use crate::layout;

use super::{Stage, files, rotation_error};

/// Where a rotation stands: the last stage whose files were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedStage {
    /// No rotation in progress (never rotated, or `retire` done).
    #[default]
    Idle,
    /// `add` done: promote next.
    Added,
    /// `promote` done: retire next.
    Promoted,
}

/// A stage that recorded its intent and has not been confirmed by every running process yet
/// ([`RotationRecord::in_progress`]). Written before the stage changes any other file; cleared by
/// [`super::confirm_stage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InProgress {
    /// The stage.
    pub stage: Stage,
    /// When it started (Unix seconds).
    pub started_at: u64,
    /// Every file of the stage is written; what is left is reloading and confirming the running
    /// processes. `false`: the files may be partly written.
    #[serde(default)]
    pub files_written: bool,
    /// `add`: the key id it adds; `promote`: the key id it promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<u32>,
    /// `promote`: the primary it demotes (decrypt-only from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demoted_key_id: Option<u32>,
    /// `retire`: the decrypt-only keys it drops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_key_ids: Vec<u32>,
    /// `retire`: some of them were promoted less than the longest TTL ago (or at an unknown
    /// time): the backends reload without their own live-key check.
    #[serde(default)]
    pub forced: bool,
}

impl InProgress {
    pub(super) fn new(stage: Stage, started_at: u64) -> Self {
        Self {
            stage,
            started_at,
            files_written: false,
            key_id: None,
            demoted_key_id: None,
            retired_key_ids: Vec::new(),
            forced: false,
        }
    }
}

/// The rotation record (`rotation.json`): stages and Unix times in seconds, no secret. Records
/// written before [`RotationRecord::in_progress`] existed still parse (every field has a default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RotationRecord {
    /// The stage reached.
    pub stage: RecordedStage,
    /// The environment the directory records (informational).
    pub environment: Option<String>,
    /// The key added by `add` and not promoted yet.
    pub staged_key_id: Option<u32>,
    /// When the last `add` ran.
    pub added_at: Option<u64>,
    /// When the last `promote` ran.
    pub promoted_at: Option<u64>,
    /// When the last `retire` ran.
    pub retired_at: Option<u64>,
    /// When each decrypt-only key stopped being the primary (by key id): the time every running
    /// process confirmed the promotion of its successor.
    pub demoted_at: BTreeMap<u32, u64>,
    /// The stage started and not yet confirmed by every running process (`None`: the last stage
    /// is complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<InProgress>,
}

impl RotationRecord {
    /// The stage whose run brings every running process to the directory's files: the stage in
    /// progress, or else the last stage recorded (`retire` for an idle directory: it reloads
    /// everything and removes nothing a running client still needs).
    #[must_use]
    pub fn completing_stage(&self) -> Stage {
        match (&self.in_progress, self.stage) {
            (Some(p), _) => p.stage,
            (None, RecordedStage::Added) => Stage::Add,
            (None, RecordedStage::Promoted) => Stage::Promote,
            (None, RecordedStage::Idle) => Stage::Retire,
        }
    }
}

/// The one command that runs (or completes) `stage` on `dir`.
#[must_use]
pub fn stage_command(dir: &Path, stage: Stage) -> String {
    format!(
        "sealcache config rotate --stage {} --dir {}",
        stage.as_str(),
        dir.display()
    )
}

/// The refusal of another stage while `p` is in progress, naming the command that completes it.
pub(super) fn unconfirmed(dir: &Path, p: &InProgress) -> Error {
    rotation_error(format!(
        "stage {} (started at Unix time {}) is not complete: {}; run `{}` to complete it first",
        p.stage.as_str(),
        p.started_at,
        if p.files_written {
            "its files are written, but not every running process confirmed them"
        } else {
            "it recorded its intent, and its files may be partly written"
        },
        stage_command(dir, p.stage)
    ))
}

/// The rotation record of `dir` (an empty one when there is none yet).
///
/// # Errors
/// An unreadable or malformed `rotation.json`.
pub fn read_record(dir: &Path) -> Result<RotationRecord> {
    let path = dir.join(layout::ROTATION_FILE);
    match files::read_regular(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|_| rotation_error(format!("{} is not a rotation record", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RotationRecord::default()),
        Err(e) => Err(io("cannot read", &path)(e)),
    }
}

/// `record` rendered for `rotation.json`.
pub(super) fn render(record: &RotationRecord) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(record)
        .map_err(|_| rotation_error("cannot render the rotation record"))
}

/// Writes `record` to `dir`'s `rotation.json`. An existing regular file is rewritten in place
/// (same inode, owner and mode): the compose stack's backend mounts it as a single file for a
/// rotation run inside the container, and a rename would leave that mount showing the old record
/// (and the container cannot create files beside it). Written whole, then cut to its length, then
/// synced: a crash midway leaves a record that does not parse, which every stage refuses (fail
/// closed) rather than one that lies. A missing record is created atomically; a link is never
/// written through (replaced by a file).
///
/// # Errors
/// [`Error::Rotation`] when the record cannot be written.
pub fn write_record(dir: &Path, record: &RotationRecord) -> Result<()> {
    let path = dir.join(layout::ROTATION_FILE);
    let bytes = render(record)?;
    let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
    if !is_file {
        return files::replace_file(&path, &bytes);
    }
    files::write_in_place(&path, &bytes).map_err(io("cannot write", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_before_in_progress_still_parses_and_round_trips() {
        let old = r#"{"stage":"promoted","environment":"production","staged_key_id":null,
            "added_at":1,"promoted_at":2,"retired_at":null,"demoted_at":{"1":2}}"#;
        let record: RotationRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.stage, RecordedStage::Promoted);
        assert_eq!(record.in_progress, None);
        assert_eq!(record.completing_stage(), Stage::Promote);
        let mut started = record.clone();
        started.in_progress = Some(InProgress::new(Stage::Retire, 3));
        let text = String::from_utf8(render(&started).unwrap()).unwrap();
        assert!(text.contains("\"stage\": \"retire\""), "{text}");
        let back: RotationRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, started);
        assert_eq!(back.completing_stage(), Stage::Retire);
        // A complete record says nothing about a stage in progress.
        assert!(
            !String::from_utf8(render(&record).unwrap())
                .unwrap()
                .contains("in_progress")
        );
    }
}
