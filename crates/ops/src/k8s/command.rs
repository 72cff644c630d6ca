//! `k8s render` as an operator command: the plan, written or (dry run) listed, reported line by
//! line.

use std::path::Path;

use super::{RenderOptions, ServerCertificate, plan};
use crate::error::{Result, StepExt as _};
use crate::report::{Mark, Progress, ProgressExt as _};

/// Renders `dir` into `out` (see [`super::render`]) and reports each step; with `dry_run`, lists
/// the files it would write and writes nothing.
///
/// # Errors
/// As [`super::plan`] and [`super::RenderPlan::write`].
pub fn render_command(
    dir: &Path,
    out: &Path,
    options: &RenderOptions,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<()> {
    let plan = plan(dir, out, options).step(|| format!("cannot render {}", dir.display()))?;
    let topology = plan.topology().dir_name();
    if dry_run {
        progress.info(format!(
            "--dry-run: rendering {} ({topology}) into {} would write:",
            dir.display(),
            out.display()
        ));
        for file in plan.files() {
            let secret = if file.is_secret() {
                "  (secret output, 0600)"
            } else {
                ""
            };
            progress.mark(Mark::Planned, format!("{}{secret}", file.path().display()));
        }
        progress.info(format!(
            "server certificate: {}",
            certificate_text(plan.server_certificate())
        ));
        return Ok(());
    }
    let report = plan
        .write()
        .step(|| format!("cannot write {}", out.display()))?;
    progress.ok(format!(
        "Rendered {} ({topology}) into {}: {} and {} ({} files)",
        dir.display(),
        out.display(),
        report.base.display(),
        report.overlay.display(),
        report.written.len()
    ));
    for removed in &report.removed {
        progress.info(format!(
            "removed {} (an earlier rendering's)",
            removed.display()
        ));
    }
    progress.mark(
        Mark::Secret,
        format!(
            "Secrets: {} (Secret manifests only, 0600 in 0700, git-ignored by {}); the CA key is in none",
            report.secrets.display(),
            out.join(super::GITIGNORE).display()
        ),
    );
    progress.mark(
        Mark::Secret,
        format!(
            "Redis server certificate: {}",
            certificate_text(report.server_certificate)
        ),
    );
    progress.info(format!(
        "Deploy: kubectl apply -k {}   (docs/deployment.md, \"Kubernetes\")",
        report.overlay.display()
    ));
    Ok(())
}

fn certificate_text(origin: ServerCertificate) -> &'static str {
    match origin {
        ServerCertificate::FromDirectory => {
            "the directory's own (it names every host the clients use)"
        }
        ServerCertificate::Reused => "the one issued for the pod DNS names before (kept)",
        ServerCertificate::Issued => {
            "issued now from the directory's CA for the pod DNS names (kept in the secret output)"
        }
    }
}
