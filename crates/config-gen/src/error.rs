//! The crate's one error type. No variant ever carries a secret value.

use std::path::PathBuf;

/// Everything that can go wrong generating, writing, reading or loading a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OS random generator failed.
    #[error("operating system randomness unavailable")]
    Randomness,
    /// Key material from the codec.
    #[error(transparent)]
    Codec(#[from] sealcache_codec::Error),
    /// Certificate generation failed.
    #[error("cannot generate TLS {what}")]
    Tls {
        /// Which part.
        what: &'static str,
        /// The rcgen error (names the problem, never a key).
        #[source]
        source: rcgen::Error,
    },
    /// A file is not a PEM certificate.
    #[error("not a PEM certificate")]
    Certificate,
    /// The deployment directory exists and neither `--force` nor `--rotate` was given.
    #[error("{} already exists: pass --force to replace it or --rotate to rotate its secrets", path.display())]
    DirectoryExists {
        /// The directory.
        path: PathBuf,
    },
    /// `--rotate` on a directory that holds no deployment.
    #[error("{} holds no generated deployment to rotate (missing {missing})", path.display())]
    NothingToRotate {
        /// The directory.
        path: PathBuf,
        /// The first missing file.
        missing: &'static str,
    },
    /// A rotation stage cannot run in the directory's current state (the message says which
    /// stage to run instead; it never holds a secret).
    #[error("{0}")]
    Rotation(String),
    /// Reading or writing a file failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// An env file line is malformed.
    #[error("{}: line {line}: {reason}", path.display())]
    EnvSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong (never the line's text).
        reason: &'static str,
    },
    /// A setting cannot go into a generated file (out of range, or characters Redis refuses).
    #[error("invalid {what}: {reason}")]
    InvalidSetting {
        /// Which setting (a `redis.conf` directive name).
        what: &'static str,
        /// What is wrong (never the value).
        reason: &'static str,
    },
    /// Loading the runtime settings failed (see `sealcache_settings::Error`).
    #[error(transparent)]
    Settings(#[from] sealcache_settings::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}
