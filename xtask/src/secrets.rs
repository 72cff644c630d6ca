//! The secret values of a deployment directory, for the checks that none of them leaks.
//!
//! Shared with the CLI tests (`tests/cli.rs` includes this file with `#[path]`), so that the
//! verification and the tests search for the same values; which files hold secrets is
//! `sealcache_config_gen::layout::SECRET_FILES`.

use std::path::Path;

use sealcache_config_gen::layout;

/// Values shorter than this are not searched for: no generated secret is that short, and a short
/// string would be found by chance.
const MIN_LEN: usize = 8;

/// Every secret value found in the secret files of `dir` that exist: a password or the API key
/// (the whole file), each key of the keyring (the last word of each non-comment line), and each
/// base64 line of a PEM private key.
pub(crate) fn secret_values(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for rel in layout::SECRET_FILES {
        let Ok(text) = std::fs::read_to_string(dir.join(rel)) else {
            continue;
        };
        if text.contains("-----BEGIN") {
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.starts_with("-----"))
                    .map(str::to_owned),
            );
        } else if *rel == layout::ENCRYPTION_KEYRING {
            out.extend(
                text.lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| l.split_whitespace().last().map(str::to_owned)),
            );
        } else {
            out.push(text.trim().to_owned());
        }
    }
    out.retain(|s| s.len() >= MIN_LEN);
    out
}
