//! `status [--json]` of a single-node stack: the backend's live security status, compared with
//! the deployment directory (the rotation's view), and one verdict.

use std::path::Path;

use sealcache_config_gen::layout;

use crate::error::{OpsError, Result, io};
use crate::report::{Mark, Progress, ProgressExt as _};
use crate::rotate::{RotationReport, annotate, report, report_lines};

/// The security status of the backend on 127.0.0.1:`port`, with `rotation` (the running system
/// compared with `dir`: key ids, password generation, reload refusals, the stage in progress,
/// the command to run) and `verdict` (`rotation_incomplete` while they disagree, else the
/// backend's `security_level`): the JSON of `status --json`.
///
/// # Errors
/// The API key cannot be read ([`OpsError::Io`]), the backend does not answer 200 with JSON
/// ([`OpsError::Unhealthy`]), or the comparison fails (see [`report`]).
pub fn status(dir: &Path, port: u16) -> Result<(serde_json::Value, Option<RotationReport>)> {
    let key_path = dir.join(layout::API_KEY);
    let key = std::fs::read_to_string(&key_path).map_err(io("read the API key", &key_path))?;
    let target = format!("the backend on 127.0.0.1:{port}");
    let (code, body) = crate::runtime::request(
        port,
        "GET",
        "/internal/cache/security-status",
        Some(key.trim()),
        None,
    )?;
    if code != 200 {
        return Err(OpsError::Unhealthy {
            target,
            detail: format!("answered {code}"),
        });
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| OpsError::Unhealthy {
            target,
            detail: "/internal/cache/security-status is not JSON".to_owned(),
        })?;
    let report = report(dir).map_err(|e| {
        e.in_step(format!(
            "cannot compare the running stack with {}",
            dir.display()
        ))
    })?;
    annotate(&mut v, report.as_ref());
    Ok((v, report))
}

/// Reports the security level and the checks of an annotated status `v` (see [`status`]), then
/// the rotation lines and the verdict.
pub fn status_lines(
    v: &serde_json::Value,
    report: Option<&RotationReport>,
    progress: &mut dyn Progress,
) {
    security_lines(v, progress);
    report_lines(v, report, progress);
}

/// Reports the security level and the checks of a backend's security status `v`.
pub fn security_lines(v: &serde_json::Value, progress: &mut dyn Progress) {
    let level = v["security_level"].as_str().unwrap_or("?");
    if level == "development" {
        progress.warn("DEVELOPMENT MODE: not for production");
    }
    // While the running system disagrees with the directory (a rotation not complete), the
    // backend's own level is not the verdict.
    let disagrees = v["rotation"]["agrees"] == false;
    progress.mark(
        match (level == "production_ready", disagrees) {
            (_, true) => Mark::Failed,
            (true, false) => Mark::Ok,
            (false, false) => Mark::Warning,
        },
        format!(
            "security_level: {level} ({} {}){}",
            v["environment"],
            v["confidence"],
            if disagrees {
                ", the backend's own view: the running system disagrees with the deployment directory (rotation, below)"
            } else {
                ""
            }
        ),
    );
    for c in v["checks"].as_array().into_iter().flatten() {
        progress.mark(
            if c["passed"] == true {
                Mark::Ok
            } else {
                Mark::Failed
            },
            format!(
                "{}: {}",
                c["name"].as_str().unwrap_or(""),
                c["detail"].as_str().unwrap_or("")
            ),
        );
    }
}
