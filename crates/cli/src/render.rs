//! Renders the library's progress: a `✅`/`❌` line per step as it happens, or, with `--json`,
//! nothing until the end (the caller prints one JSON document).

use sealcache_ops::{Line, Progress, Report};

/// The progress sink of one command.
#[derive(Debug, Default)]
pub(crate) struct Printer {
    json: bool,
    /// Every line, kept for `--json`.
    pub(crate) report: Report,
}

impl Printer {
    /// Prints each line at once, or (with `json`) keeps them for the JSON document.
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            report: Report::new(),
        }
    }
}

impl Progress for Printer {
    fn line(&mut self, line: Line) {
        if !self.json {
            println!("{line}");
        }
        self.report.line(line);
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Reports a verification's checks (JSON, or a ✅/❌ line each and `summary`'s line), and the
/// exit code: success when every check passed.
pub(crate) fn checks_report(
    checks: &[sealcache_ops::verify::Check],
    json: bool,
    printer: &mut Printer,
    summary: impl FnOnce(bool) -> String,
) -> anyhow::Result<std::process::ExitCode> {
    let passed = checks.iter().all(|c| c.passed);
    if json {
        print_json(&checks)?;
    } else {
        sealcache_ops::verify::check_lines(checks, printer);
        printer.line(Line {
            mark: if passed {
                sealcache_ops::Mark::Ok
            } else {
                sealcache_ops::Mark::Failed
            },
            text: summary(passed),
        });
    }
    Ok(if passed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
