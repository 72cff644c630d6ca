//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong in an operation. `Display` names the file, option or object at fault, never
/// a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The deployment directory lacks a file every deployment has.
    #[error("{} holds no deployment: {missing} is missing (run `sealcache config generate`, or `cargo xtask config generate` in a checkout)", path.display())]
    NotADeployment {
        /// The directory.
        path: PathBuf,
        /// The missing file, relative to it.
        missing: &'static str,
    },
    /// The directory's topology is not the one asked for.
    #[error("{} holds a {directory} deployment, but a {asked} rendering was asked for{hint}", path.display())]
    TopologyMismatch {
        /// The directory.
        path: PathBuf,
        /// What it holds (`single-node` or `cluster`).
        directory: &'static str,
        /// What was asked for.
        asked: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
    /// A rendering option is invalid.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The directory's `.env` carries a secret value (it becomes a ConfigMap, which must hold none).
    #[error(
        "the deployment's .env sets {variable}, which carries a secret: secrets are files under secrets/, never settings"
    )]
    SecretInSettings {
        /// The variable (its value is never shown).
        variable: String,
    },
    /// A file under a mounted secrets directory has a name a Secret cannot hold as a key.
    #[error("{} cannot become a Secret key (letters, digits, '-', '_' and '.' only)", path.display())]
    UnsupportedFileName {
        /// The file.
        path: PathBuf,
    },
    /// A certificate of the directory cannot be read.
    #[error("{} is not a PEM certificate", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading the deployment directory or issuing a certificate failed.
    #[error(transparent)]
    Deployment(#[from] sealcache_config_gen::Error),
    /// An object could not be written as YAML (no content is shown: it may be a Secret).
    #[error("cannot write {what} as YAML")]
    Emit {
        /// The object's kind and name.
        what: String,
    },
    /// An input of an operation (a flag, a sample file, a directory's contents) is unusable.
    #[error("{what}: {reason}")]
    Input {
        /// The input at fault.
        what: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The operation was refused before it changed anything: the running system or the
    /// directory is not in a state it may run in. The reason names the command that fixes it.
    #[error("{reason}")]
    Refused {
        /// Why, and what to run first.
        reason: String,
    },
    /// An external program (`docker`, `redis-cli`, `kill`, ...) could not run or failed.
    #[error("{program}: {detail}")]
    Command {
        /// The program and what it was asked to do (no secret: those go through standard input
        /// or files).
        program: String,
        /// Its exit status or the error, and its message.
        detail: String,
    },
    /// A running process (a backend, a Redis) did not answer as the operation needs.
    #[error("{target}: {detail}")]
    Unhealthy {
        /// The process.
        target: String,
        /// What was observed.
        detail: String,
    },
    /// Training or adding a compression dictionary failed.
    #[error("dictionary: {0}")]
    Dictionary(#[from] sealcache_codec::Error),
    /// A system call failed (the enclosing [`OpsError::Step`] names the file or connection).
    #[error(transparent)]
    System(#[from] std::io::Error),
    /// A process answered with JSON this crate cannot read.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A step of an operation failed; the cause says why. Its text holds the cause's, so the
    /// cause is not also this error's `source()` (a reporter that prints the chain would print it
    /// twice); [`OpsError::root`] reaches it.
    #[error("{step}: {cause}")]
    Step {
        /// The step (`cannot begin stage add in DIR`, ...).
        step: String,
        /// The cause.
        cause: Box<OpsError>,
    },
}

/// The name the rest of the crate (and earlier callers) use for [`OpsError`].
pub type Error = OpsError;

impl OpsError {
    /// The error that names `step` as the failing step of an operation and `self` as its cause.
    #[must_use]
    pub fn in_step(self, step: impl Into<String>) -> Self {
        OpsError::Step {
            step: step.into(),
            cause: Box::new(self),
        }
    }

    /// The innermost cause: the error under every [`OpsError::Step`].
    #[must_use]
    pub fn root(&self) -> &OpsError {
        match self {
            OpsError::Step { cause, .. } => cause.root(),
            other => other,
        }
    }
}

/// Adds the failing step to any error this crate can convert (`.step(|| "...")`).
pub(crate) trait StepExt<T> {
    /// On error, wraps it in [`OpsError::Step`] naming `step`.
    fn step<S: Into<String>>(self, step: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<OpsError>> StepExt<T> for std::result::Result<T, E> {
    fn step<S: Into<String>>(self, step: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().in_step(step()))
    }
}

/// Returns [`OpsError::Refused`] with a formatted reason.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err($crate::error::OpsError::Refused { reason: format!($($arg)*) })
    };
}
pub(crate) use refuse;

/// Returns [`OpsError::Unhealthy`] for `target` with a formatted detail unless `cond` holds.
macro_rules! ensure_healthy {
    ($cond:expr, $target:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::error::OpsError::Unhealthy {
                target: $target.to_string(),
                detail: format!($($arg)*),
            });
        }
    };
}
pub(crate) use ensure_healthy;

/// Returns [`OpsError::Refused`] with a formatted reason unless `cond` holds.
macro_rules! ensure_or_refuse {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::error::refuse!($($arg)*);
        }
    };
}
pub(crate) use ensure_or_refuse;

/// `Result` with [`OpsError`].
pub type Result<T, E = OpsError> = std::result::Result<T, E>;

/// Maps an I/O error on `path` to [`Error::Io`].
pub(crate) fn io(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> OpsError {
    let path = path.into();
    move |source| OpsError::Io {
        action,
        path,
        source,
    }
}
