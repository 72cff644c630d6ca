//! Progress of an operation as typed lines: the library reports, the caller renders (the CLI as
//! `✅`/`❌` lines or JSON). Nothing in this crate prints.

use serde::{Deserialize, Serialize};

/// What a line says about its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mark {
    /// The step succeeded (`✅`).
    Ok,
    /// The step failed (`❌`).
    Failed,
    /// The step succeeded with a caveat the operator should read (`⚠️`).
    Warning,
    /// Information: nothing was done or checked (`ℹ️`).
    Info,
    /// Something is deliberately left for later (`⏳`).
    Waiting,
    /// Where a secret lives (`🔑`); never the secret itself.
    Secret,
    /// Something was recorded (`📝`).
    Recorded,
    /// A change a dry run would make (`📋`); nothing was changed.
    Planned,
}

impl Mark {
    /// The mark as the CLI prints it, padded to two columns.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✅",
            Mark::Failed => "❌",
            Mark::Warning => "⚠️ ",
            Mark::Info => "ℹ️ ",
            Mark::Waiting => "⏳",
            Mark::Secret => "🔑",
            Mark::Recorded => "📝",
            Mark::Planned => "📋",
        }
    }
}

/// One reported line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// What it says about the step.
    pub mark: Mark,
    /// The text (never a secret value).
    pub text: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.mark.symbol(), self.text)
    }
}

/// Where an operation sends its progress, line by line, as it goes (a long operation's caller
/// shows each line at once).
pub trait Progress {
    /// Receives one line.
    fn line(&mut self, line: Line);
}

/// Shorthands for the marks.
pub(crate) trait ProgressExt: Progress {
    fn ok(&mut self, text: impl Into<String>) {
        self.line(Line {
            mark: Mark::Ok,
            text: text.into(),
        });
    }
    fn failed(&mut self, text: impl Into<String>) {
        self.line(Line {
            mark: Mark::Failed,
            text: text.into(),
        });
    }
    fn warn(&mut self, text: impl Into<String>) {
        self.line(Line {
            mark: Mark::Warning,
            text: text.into(),
        });
    }
    fn info(&mut self, text: impl Into<String>) {
        self.line(Line {
            mark: Mark::Info,
            text: text.into(),
        });
    }
    fn mark(&mut self, mark: Mark, text: impl Into<String>) {
        self.line(Line {
            mark,
            text: text.into(),
        });
    }
}

impl<P: Progress + ?Sized> ProgressExt for P {}

/// A [`Progress`] that keeps every line (for `--json`, tests, or rendering at the end).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The lines, in order.
    pub lines: Vec<Line>,
}

impl Report {
    /// An empty report.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any line is [`Mark::Failed`].
    #[must_use]
    pub fn failed(&self) -> bool {
        self.lines.iter().any(|l| l.mark == Mark::Failed)
    }

    /// Whether a line contains `text` (for tests and callers that look for one step).
    #[must_use]
    pub fn mentions(&self, text: &str) -> bool {
        self.lines.iter().any(|l| l.text.contains(text))
    }
}

impl Progress for Report {
    fn line(&mut self, line: Line) {
        self.lines.push(line);
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// An error and its causes (`source()` chain) as one line joined by `: `, each cause once: a
/// cause whose text the line already holds (an error that shows its source in its own text, as
/// [`crate::OpsError::Io`] does) is not repeated. What the CLI and xtask print on failure.
#[must_use]
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use crate::OpsError;

    #[test]
    fn a_cause_the_message_already_shows_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let reason = io.to_string();
        let err = OpsError::Io {
            action: "read",
            path: "/srv/sealcache/secrets/api_key".into(),
            source: io,
        };
        let text = error_text(&err);
        assert_eq!(text.matches(&reason).count(), 1, "{text}");
        assert!(
            text.starts_with("cannot read /srv/sealcache/secrets/api_key"),
            "{text}"
        );
        // A cause that is not in the message is still shown.
        let wrapped = Step(std::io::Error::other("the cause"));
        assert_eq!(error_text(&wrapped), "the step: the cause");
    }

    #[derive(Debug)]
    struct Step(std::io::Error);

    impl std::fmt::Display for Step {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the step")
        }
    }

    impl std::error::Error for Step {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
