//! Reading values: text, flags, numbers, secret files; and naming where a value came from.

use std::collections::BTreeMap;
use std::path::Path;

use figment::Metadata;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result, io};
use crate::secret::SecretString;

/// A value that may be written as a TOML boolean or number, or as text.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(super) enum Flex {
    Bool(bool),
    Int(i64),
    Str(String),
}

impl Flex {
    pub(super) fn text(&self) -> String {
        match self {
            Flex::Bool(b) => b.to_string(),
            Flex::Int(i) => i.to_string(),
            Flex::Str(s) => s.clone(),
        }
    }
}

/// The merged settings, by lower-case key.
pub(super) type Raw = BTreeMap<String, Flex>;

/// Where each setting came from, by variable name.
pub(super) type Sources = BTreeMap<String, String>;

/// The byte order mark some editors put at the start of a file.
const BOM: char = '\u{feff}';

/// Text as written by an editor or a shell, cleaned: one leading byte order mark and every
/// trailing CR and LF removed (a file saved on Windows, `echo` without `-n`).
pub(super) fn clean(text: &str) -> &str {
    text.strip_prefix(BOM)
        .unwrap_or(text)
        .trim_end_matches(['\n', '\r'])
}

/// A variable name with a leading byte order mark removed (the first line of a `.env` file
/// saved with one).
pub(super) fn clean_name(name: &str) -> &str {
    name.strip_prefix(BOM).unwrap_or(name)
}

/// Reads a secret file: the whole file, [`clean`]ed.
pub(super) fn read_secret_file(path: &Path) -> Result<SecretString> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(io("cannot read secret file", path))?);
    Ok(SecretString::new(clean(&text).to_owned()))
}

/// "TOML file /etc/sealcache.toml", "environment variable", ...
pub(super) fn describe(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(source) => format!("{} {source}", metadata.name),
        None => metadata.name.to_string(),
    }
}

/// A figment error as [`Error::InvalidSetting`], without any value or quoted line.
pub(super) fn convert(err: &figment::Error) -> Error {
    use figment::error::Kind;
    let key = err.path.join(".").to_ascii_uppercase();
    let source_name = err
        .metadata
        .as_ref()
        .map_or_else(|| "configuration".to_owned(), describe);
    let problem = match &err.kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("expected {expected}")
        }
        Kind::MissingField(field) => format!("missing {field}"),
        Kind::UnknownField(field, _) => format!("unknown setting {field}"),
        // Parser messages can quote the offending line, which may hold a secret.
        _ => "cannot be read (syntax or type error)".to_owned(),
    };
    Error::InvalidSetting {
        key: if key.is_empty() {
            "(file)".to_owned()
        } else {
            key
        },
        source_name,
        problem,
    }
}

/// [`Error::InvalidSetting`] for `key`, naming its source.
pub(super) fn invalid(key: &str, sources: &Sources, problem: impl Into<String>) -> Error {
    Error::InvalidSetting {
        key: key.to_owned(),
        source_name: sources.get(key).cloned().unwrap_or_default(),
        problem: problem.into(),
    }
}

/// A flag setting, or `default` when unset.
pub(super) fn truthy(key: &str, raw: &Raw, default: bool, sources: &Sources) -> Result<bool> {
    let Some(v) = raw.get(&key.to_ascii_lowercase()) else {
        return Ok(default);
    };
    match v.text().trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, sources, "expected true or false")),
    }
}

/// A whole number setting at least `min`, or `default` when unset.
pub(super) fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    key: &str,
    raw: &Raw,
    default: T,
    min: T,
    sources: &Sources,
) -> Result<T> {
    let Some(v) = raw
        .get(&key.to_ascii_lowercase())
        .filter(|v| !v.text().trim().is_empty())
    else {
        return Ok(default);
    };
    match v.text().trim().parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(invalid(
            key,
            sources,
            format!("expected a whole number of at least {min}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_one_bom_and_trailing_line_ends_only() {
        assert_eq!(clean("\u{feff}pw\r\n"), "pw");
        assert_eq!(clean("pw\n\n"), "pw");
        assert_eq!(clean(" pw \r\n"), " pw ", "spaces are part of a secret");
        assert_eq!(clean("\u{feff}\u{feff}pw"), "\u{feff}pw", "one mark only");
        assert_eq!(clean("p\r\nw"), "p\r\nw");
        assert_eq!(clean_name("\u{feff}REDIS_URL"), "REDIS_URL");
    }
}
