//! The secret values of a deployment directory, for the checks that none of them leaks.

use std::path::Path;

use sealcache_config_gen::{cluster_dir, layout};

/// Values shorter than this are not searched for: no generated secret is that short, and a short
/// string would be found by chance.
const MIN_LEN: usize = 8;

/// Every secret value found in the secret files of `dir` that exist (those of
/// [`layout::SECRET_FILES`] and a cluster's replication password and node key): a password or the
/// API key (the whole file), each key of the keyring (the last word of each non-comment line), and
/// each base64 line of a PEM private key.
#[must_use]
pub fn secret_values(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let files = layout::SECRET_FILES
        .iter()
        .chain([&cluster_dir::REPLICATION_PASSWORD, &cluster_dir::NODE_KEY]);
    for rel in files {
        let Ok(text) = crate::runtime::read_below(dir, rel) else {
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
    out.sort();
    out.dedup();
    out
}
