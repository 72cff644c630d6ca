//! The crate's one error type. No variant ever carries a secret value.

use std::path::PathBuf;

/// Everything that can go wrong loading the settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Key material from the codec.
    #[error(transparent)]
    Codec(#[from] sealcache_codec::Error),
    /// Reading a file failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("cannot read", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A variable and its `*_FILE` twin are both set.
    #[error("both {var} and {file_var} are set; set only one")]
    BothPlainAndFileSet {
        /// The plain variable's name.
        var: &'static str,
        /// The file variable's name.
        file_var: &'static str,
    },
    /// A setting has an invalid value. The message names the key and its source, never the value.
    #[error("setting {key} from {source_name}: {problem}")]
    InvalidSetting {
        /// The setting's variable name.
        key: String,
        /// Where it came from (`environment variable`, a TOML file path, `default`).
        source_name: String,
        /// What is wrong, without the value.
        problem: String,
    },
    /// A variable or TOML key that sealcache does not read but that looks like a setting: a known
    /// misspelling, or within two edits of a setting's name. Names only, never the value.
    #[error(
        "setting {found} from {source_name} is not read by sealcache: did you mean {expected}?"
    )]
    MisspelledSetting {
        /// The name as set.
        found: String,
        /// The variable meant (a name from `VARIABLES`, or two names joined by "or").
        expected: &'static str,
        /// Where it was set (`environment variable`, `TOML file PATH`).
        source_name: String,
    },
    /// A `SEALCACHE_*` variable, or a TOML key, that no setting reads and that resembles none.
    #[error(
        "setting {found} from {source_name} is not read by sealcache (see docs/configuration.md for the settings)"
    )]
    UnknownSetting {
        /// The name as set.
        found: String,
        /// Where it was set (`environment variable`, `TOML file PATH`).
        source_name: String,
    },
    /// A deprecated alias and its canonical name (or two aliases of one setting) are set, in one
    /// source, to different values.
    #[error("both {alias} and {other} are set, to different values; set only {canonical}")]
    AliasConflict {
        /// The deprecated name.
        alias: &'static str,
        /// The other name: the canonical name itself or another alias of it.
        other: &'static str,
        /// The name to keep.
        canonical: &'static str,
    },
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
