//! `config dictionary --samples S [--dir D] [--size N] [--dry-run]`: a zstd dictionary trained on
//! the deployment's own sample values becomes its sealing dictionary.

use std::path::{Path, PathBuf};

use sealcache_config_gen::layout;

use crate::error::{OpsError, Result, io};
use crate::report::{Mark, Progress, ProgressExt as _};

/// The fewest samples a dictionary is trained on.
pub const MIN_SAMPLES: usize = 10;

/// Options of [`train_dictionary`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DictionaryOptions {
    /// Sample values: a JSON-lines file (one value per line) or a directory (one value per file).
    pub samples: PathBuf,
    /// The deployment directory whose keyring gets the dictionary.
    pub dir: PathBuf,
    /// Largest dictionary size in bytes (1024 to 1 MiB).
    pub size: usize,
    /// Train and report, but leave the keyring unchanged.
    pub dry_run: bool,
}

impl DictionaryOptions {
    /// `--samples samples --dir dir` with the default size (16 KiB).
    #[must_use]
    pub fn new(samples: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        Self {
            samples: samples.into(),
            dir: dir.into(),
            size: 16 * 1024,
            dry_run: false,
        }
    }
}

/// What [`train_dictionary`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct DictionaryOutcome {
    /// The trained dictionary's id.
    pub id: u32,
    /// Its size in bytes.
    pub bytes: usize,
    /// The number of samples it was trained on.
    pub samples: usize,
    /// The dictionaries the keyring holds now (unchanged by a dry run).
    pub held: Vec<u32>,
}

/// Trains a dictionary on `opts.samples` and adds it to the keyring of `opts.dir` as the sealing
/// dictionary (a dry run stops before the keyring).
///
/// # Errors
/// [`OpsError::NotADeployment`] without a keyring, [`OpsError::Input`] for a size out of range or
/// too few samples, [`OpsError::Dictionary`] when training fails, I/O errors.
pub fn train_dictionary(
    opts: &DictionaryOptions,
    progress: &mut dyn Progress,
) -> Result<DictionaryOutcome> {
    if !opts.dir.join(layout::ENCRYPTION_KEYRING).is_file() {
        return Err(OpsError::NotADeployment {
            path: opts.dir.clone(),
            missing: layout::ENCRYPTION_KEYRING,
        });
    }
    if !(1024..=1 << 20).contains(&opts.size) {
        return Err(OpsError::Input {
            what: "--size".to_owned(),
            reason: "must be between 1024 and 1048576 bytes".to_owned(),
        });
    }
    let samples = read_samples(&opts.samples)?;
    if samples.len() < MIN_SAMPLES {
        return Err(OpsError::Input {
            what: opts.samples.display().to_string(),
            reason: format!(
                "holds {} samples; train on at least {MIN_SAMPLES} (a few hundred is better)",
                samples.len()
            ),
        });
    }
    let dictionary = sealcache_codec::Dictionary::train(&samples, opts.size)?;
    let (id, bytes) = (dictionary.id(), dictionary.as_bytes().len());
    progress.ok(format!(
        "Trained dictionary {id} ({bytes} bytes) on {} samples",
        samples.len()
    ));
    let keyring = opts.dir.join(layout::ENCRYPTION_KEYRING);
    if opts.dry_run {
        progress.mark(
            Mark::Planned,
            format!(
                "would add dictionary {id} to {} as the sealing dictionary; nothing was written (--dry-run)",
                keyring.display()
            ),
        );
        return Ok(DictionaryOutcome {
            id,
            bytes,
            samples: samples.len(),
            held: Vec::new(),
        });
    }
    // As the secrets' owner when another user owns them (the backend container may write them:
    // a link it left is never followed as root).
    let held = crate::runtime::as_owner_of(&opts.dir.join(layout::BACKEND_SECRETS_DIR), || {
        sealcache_config_gen::add_dictionary(&opts.dir, dictionary)
    })??;
    progress.ok(format!(
        "{}: dictionary {id} seals new values; dictionaries held: {held:?} (reload the backends: SIGHUP; drop an old one after the longest TTL)",
        keyring.display()
    ));
    Ok(DictionaryOutcome {
        id,
        bytes,
        samples: samples.len(),
        held,
    })
}

/// The sample values of a JSON-lines file or a directory of files.
fn read_samples(samples: &Path) -> Result<Vec<Vec<u8>>> {
    if samples.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(samples)
            .map_err(io("read", samples))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        return files
            .iter()
            .map(|p| std::fs::read(p).map_err(io("read", p)))
            .collect();
    }
    Ok(std::fs::read_to_string(samples)
        .map_err(io("read", samples))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect())
}
