//! Reading and validating an API keys file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::types::{Digest, KeyId, Scope, Scopes, Tenant};

/// Why a keys file was refused. Names the line and field, never a value (a key pasted where its
/// digest belongs stays out of logs).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysFileError {
    /// The file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML of the expected shape (a syntax error, an unknown or missing field, a wrong
    /// type). `message` is the parser's, with every quoted value removed.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// What is wrong (quoted values shown as `"…"`).
        message: String,
    },
    /// A field breaks its rule.
    #[error("line {line}: field `{field}`: {reason}")]
    Invalid {
        /// 1-based line of the field.
        line: usize,
        /// `id`, `tenant`, `scopes` or `sha256`.
        field: &'static str,
        /// The rule (never the value).
        reason: &'static str,
    },
    /// Two keys have one id.
    #[error("line {line}: id `{id}` is already used on line {first_line}")]
    DuplicateId {
        /// The id (ids are shown in logs).
        id: String,
        /// 1-based line of the second use.
        line: usize,
        /// 1-based line of the first.
        first_line: usize,
    },
    /// Two keys have one digest (one key would act as two).
    #[error("line {line}: this sha256 is already used on line {first_line}")]
    DuplicateDigest {
        /// 1-based line of the second use.
        line: usize,
        /// 1-based line of the first.
        first_line: usize,
    },
    /// Minting: the id is already in the file.
    #[error("the id `{id}` is already in the keys file")]
    IdTaken {
        /// The id.
        id: String,
    },
    /// Minting: another mint is writing the file (or one was interrupted: remove the lock file).
    #[error("{} exists: another api-key command is writing the file (if none is, remove it)", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// The OS random generator failed.
    #[error("operating system randomness unavailable")]
    Randomness,
    /// The file can be written by its group or by everyone: whoever can write it can give
    /// themselves any scope of any tenant.
    #[error("{} can be written by its group or others (mode {mode:04o}): `chmod go-w` it", path.display())]
    WritableByOthers {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path names something other than a regular file (a directory, a FIFO, a device), or,
    /// when minting, a symbolic link that leads nowhere.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than any keys file ([`MAX_FILE_BYTES`]).
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
}

/// The largest keys file read: 4 MiB, some 25,000 keys.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// One key of the file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiKeyEntry {
    /// The id (shown in logs).
    pub id: KeyId,
    /// The tenant it acts for.
    pub tenant: Tenant,
    /// What it may do.
    pub scopes: Scopes,
    /// The SHA-256 of the key.
    pub digest: Digest,
    /// 1-based line of its `[[key]]` header (0 when not read from a file).
    pub line: usize,
}

impl ApiKeyEntry {
    /// An entry not read from a file.
    #[must_use]
    pub fn new(id: KeyId, tenant: Tenant, scopes: Scopes, digest: Digest) -> Self {
        Self {
            id,
            tenant,
            scopes,
            digest,
            line: 0,
        }
    }

    /// The entry as a `[[key]]` table (ends with a newline).
    #[must_use]
    pub fn to_toml(&self) -> String {
        let scopes: Vec<String> = self.scopes.iter().map(|s| format!("\"{s}\"")).collect();
        // id and tenant are validated names (a-z, 0-9, _ and -): nothing to escape.
        format!(
            "[[key]]\nid = \"{}\"\ntenant = \"{}\"\nscopes = [{}]\nsha256 = \"{}\"\n",
            self.id,
            self.tenant.as_str(),
            scopes.join(", "),
            self.digest.to_hex()
        )
    }
}

/// A validated keys file.
#[derive(Debug, Clone, Default)]
pub struct ApiKeysFile {
    entries: Vec<ApiKeyEntry>,
}

impl ApiKeysFile {
    /// The keys, in file order.
    #[must_use]
    pub fn entries(&self) -> &[ApiKeyEntry] {
        &self.entries
    }

    /// The key with id `id`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&ApiKeyEntry> {
        self.entries.iter().find(|e| e.id.as_str() == id)
    }

    /// How many distinct tenants the keys act for.
    #[must_use]
    pub fn tenant_count(&self) -> usize {
        self.entries
            .iter()
            .map(|e| &e.tenant)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// How many keys hold each scope (every scope listed, zeros included).
    #[must_use]
    pub fn keys_per_scope(&self) -> BTreeMap<&'static str, usize> {
        Scope::ALL
            .into_iter()
            .map(|scope| {
                let n = self
                    .entries
                    .iter()
                    .filter(|e| e.scopes.contains(scope))
                    .count();
                (scope.as_str(), n)
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    key: Vec<Spanned<RawKey>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: Spanned<String>,
    tenant: Spanned<String>,
    scopes: Spanned<Vec<Spanned<String>>>,
    sha256: Spanned<String>,
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `message` with every double-quoted part replaced by `"…"` (serde quotes the values it shows).
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if quoted {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    if quoted {
        out.push_str("…\"");
    }
    // The parser's message may span lines (a snippet); the first line is the reason.
    out.lines().next().unwrap_or("").trim().to_owned()
}

/// Parses and validates a keys file's text.
///
/// # Errors
/// [`KeysFileError::Syntax`], [`KeysFileError::Invalid`], [`KeysFileError::DuplicateId`] or
/// [`KeysFileError::DuplicateDigest`], naming the first problem's line; none shows a value.
pub fn parse(text: &str) -> Result<ApiKeysFile, KeysFileError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| KeysFileError::Syntax {
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: redact(e.message()),
    })?;
    let mut entries = Vec::with_capacity(raw.key.len());
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for key in raw.key {
        let line = line_of(text, key.span().start);
        let key = key.into_inner();
        let at = |s: std::ops::Range<usize>| line_of(text, s.start);
        let invalid = |span: std::ops::Range<usize>, field, reason| KeysFileError::Invalid {
            line: at(span),
            field,
            reason,
        };
        let id = KeyId::new(key.id.get_ref()).map_err(|_| {
            invalid(
                key.id.span(),
                "id",
                "must be 1-64 characters of a-z, 0-9, _ or -",
            )
        })?;
        if id.as_str() == KeyId::LEGACY {
            return Err(invalid(
                key.id.span(),
                "id",
                "`legacy` is reserved for API_KEY_FILE, API_KEY and ADDITIONAL_API_KEYS",
            ));
        }
        let tenant = Tenant::new(key.tenant.get_ref()).map_err(|_| {
            invalid(
                key.tenant.span(),
                "tenant",
                "must be 1-64 characters of a-z, 0-9, _ or -",
            )
        })?;
        let mut scopes = Scopes::empty();
        for scope in key.scopes.get_ref() {
            let known = scope.get_ref().parse::<Scope>().map_err(|_| {
                invalid(
                    scope.span(),
                    "scopes",
                    "unknown scope (known: lookup, store, store_shared, invalidate, erase, admin)",
                )
            })?;
            scopes.insert(known);
        }
        if scopes.is_empty() {
            return Err(invalid(
                key.scopes.span(),
                "scopes",
                "must name at least one scope",
            ));
        }
        let digest = Digest::from_hex(key.sha256.get_ref()).ok_or_else(|| {
            invalid(
                key.sha256.span(),
                "sha256",
                "must be the key's SHA-256 as 64 hex digits (the key itself never goes in the file)",
            )
        })?;
        if let Some(&first_line) = ids.get(id.as_str()) {
            return Err(KeysFileError::DuplicateId {
                id: id.to_string(),
                line,
                first_line,
            });
        }
        // Public digests of distinct keys: which one repeats is no secret, so plain loops do.
        if let Some(first) = entries
            .iter()
            .find(|e: &&ApiKeyEntry| bool::from(e.digest.ct_eq(&digest)))
        {
            return Err(KeysFileError::DuplicateDigest {
                line,
                first_line: first.line,
            });
        }
        ids.insert(id.to_string(), line);
        entries.push(ApiKeyEntry {
            id,
            tenant,
            scopes,
            digest,
            line,
        });
    }
    Ok(ApiKeysFile { entries })
}

/// Reads and validates the keys file at `path`: a regular file (after symbolic links, as a
/// Kubernetes Secret volume links it) of at most [`MAX_FILE_BYTES`], not writable by its group or
/// others. It is opened without blocking, so a FIFO put at the path is refused instead of
/// stalling the reader.
///
/// # Errors
/// [`KeysFileError::Io`] when it cannot be read, [`KeysFileError::NotAFile`],
/// [`KeysFileError::TooLarge`], [`KeysFileError::WritableByOthers`], else as [`parse`].
pub fn load(path: &Path) -> Result<ApiKeysFile, KeysFileError> {
    parse(&read_checked(path, true)?)
}

/// The text of the keys file at `path`, with [`load`]'s checks (the mode's only when
/// `refuse_writable`: minting rewrites such a file without that access).
pub(super) fn read_checked(path: &Path, refuse_writable: bool) -> Result<String, KeysFileError> {
    use std::io::Read as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let unreadable = |source| KeysFileError::Io {
        action: "cannot read",
        path: path.to_owned(),
        source,
    };
    let nonblocking = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(KeysFileError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if refuse_writable && mode & 0o022 != 0 {
        return Err(KeysFileError::WritableByOthers {
            path: path.to_owned(),
            mode,
        });
    }
    let too_large = || KeysFileError::TooLarge {
        path: path.to_owned(),
        limit: MAX_FILE_BYTES,
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    const D1: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const D2: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn key(id: &str, tenant: &str, scopes: &str, sha: &str) -> String {
        format!(
            "[[key]]\nid = \"{id}\"\ntenant = \"{tenant}\"\nscopes = [{scopes}]\nsha256 = \"{sha}\"\n\n"
        )
    }

    #[test]
    fn a_valid_file_parses_with_lines_counts_and_round_trips() {
        let text = format!(
            "# keys\n{}{}",
            key("web", "acme", r#""lookup", "store""#, D1),
            key("ops", "default", r#""admin", "lookup""#, D2)
        );
        let file = parse(&text).unwrap();
        assert_eq!(file.entries().len(), 2);
        let web = file.get("web").unwrap();
        assert_eq!(web.line, 2);
        assert_eq!(web.tenant.as_str(), "acme");
        assert_eq!(web.scopes.to_string(), "lookup,store");
        assert!(bool::from(web.digest.ct_eq(&Digest::from_hex(D1).unwrap())));
        assert_eq!(file.get("ops").unwrap().line, 8);
        assert_eq!(file.tenant_count(), 2);
        let per_scope = file.keys_per_scope();
        assert_eq!(per_scope["lookup"], 2);
        assert_eq!(per_scope["admin"], 1);
        assert_eq!(per_scope["erase"], 0);
        assert_eq!(per_scope.len(), 6);
        // Rendering and parsing again gives the same entry.
        let again = parse(&web.to_toml()).unwrap();
        assert_eq!(again.entries()[0].id, web.id);
        assert_eq!(again.entries()[0].scopes, web.scopes);
        assert!(parse("").unwrap().entries().is_empty());
    }

    /// Every refusal names its line and field and shows no value.
    #[test]
    fn each_fault_is_refused_with_its_line_and_field_and_no_value() {
        let secret = "sck_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
        let cases: Vec<(String, &str)> = vec![
            (key("Web", "acme", r#""lookup""#, D1), "line 2: field `id`"),
            (
                key("legacy", "acme", r#""lookup""#, D1),
                "line 2: field `id`",
            ),
            (
                key("web", "Acme Inc", r#""lookup""#, D1),
                "line 3: field `tenant`",
            ),
            (
                key("web", "acme", r#""lookup", "root""#, D1),
                "line 4: field `scopes`: unknown scope",
            ),
            (
                key("web", "acme", "", D1),
                "line 4: field `scopes`: must name",
            ),
            (
                key("web", "acme", r#""lookup""#, secret),
                "line 5: field `sha256`",
            ),
            (
                key("web", "acme", r#""lookup""#, &D1[..63]),
                "line 5: field `sha256`",
            ),
            (
                format!(
                    "{}{}",
                    key("web", "acme", r#""lookup""#, D1),
                    key("web", "b", r#""lookup""#, D2)
                ),
                "line 7: id `web` is already used on line 1",
            ),
            (
                format!(
                    "{}{}",
                    key("web", "acme", r#""lookup""#, D1),
                    key("api", "b", r#""lookup""#, D1)
                ),
                "line 7: this sha256 is already used on line 1",
            ),
            (
                format!(
                    "[[key]]\nid = \"web\"\ntenant = \"acme\"\nscopes = [\"lookup\"]\nkey = \"{secret}\"\n"
                ),
                "line 5: unknown field `key`",
            ),
            (
                "[[key]]\nid = \"web\"\ntenant = \"acme\"\nscopes = [\"lookup\"]\n".to_owned(),
                "missing field `sha256`",
            ),
            (
                format!(
                    "[[key]]\nid = \"web\"\ntenant = \"acme\"\nscopes = \"{secret}\"\nsha256 = \"{D1}\"\n"
                ),
                "line 4: invalid type",
            ),
            (format!("[[key]\nsha256 = \"{secret}\""), "line 1:"),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.starts_with(expected) || err.contains(expected),
                "{expected:?} in {err:?}"
            );
            assert!(!err.contains(secret) && !err.contains(&D1[..20]), "{err}");
        }
    }

    #[test]
    fn redaction_removes_every_quoted_value() {
        assert_eq!(
            redact("invalid type: string \"sck_secret\", expected a sequence"),
            "invalid type: string \"…\", expected a sequence"
        );
        assert_eq!(redact("a \"b\" c \"d"), "a \"…\" c \"…\"");
    }
}
