//! Reading and writing `.env` files (the subset docker compose and dotenv agree on).
//!
//! `KEY=VALUE` per line; `#` comments and blank lines; an optional `export ` prefix; values may be
//! wrapped in single or double quotes. Generated files contain only values that need no quoting.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result, io};

/// Parses env file text. Later assignments win. One leading UTF-8 byte order mark is ignored,
/// and so are CR line ends.
///
/// # Errors
/// [`Error::EnvSyntax`] naming the line, never its content.
pub fn parse(text: &str, path: &Path) -> Result<BTreeMap<String, String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let syntax = |reason| Error::EnvSyntax {
            path: path.to_path_buf(),
            line: index + 1,
            reason,
        };
        let (key, value) = line.split_once('=').ok_or(syntax("expected KEY=VALUE"))?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(syntax("variable names are letters, digits and underscores"));
        }
        let value = value.trim();
        let value = match value.as_bytes() {
            [b'"', .., b'"'] | [b'\'', .., b'\''] if value.len() >= 2 => &value[1..value.len() - 1],
            [b'"' | b'\'', ..] => return Err(syntax("unterminated quote")),
            _ => value.split(" #").next().unwrap_or(value).trim_end(),
        };
        vars.insert(key.to_owned(), value.to_owned());
    }
    Ok(vars)
}

/// Reads and parses an env file.
///
/// # Errors
/// [`Error::Io`] or [`Error::EnvSyntax`].
pub fn read(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(io("cannot read", path))?;
    let text = zeroize::Zeroizing::new(text);
    parse(&text, path)
}

/// Renders `KEY=VALUE` lines after a header comment.
#[must_use]
pub(crate) fn render(header: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for (key, value) in vars {
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        let text = "# c\nA=1\nexport B = two \nC=\"quoted # not a comment\"\nD='single'\nE=value # comment\n\n";
        let vars = parse(text, Path::new(".env")).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two");
        assert_eq!(vars["C"], "quoted # not a comment");
        assert_eq!(vars["D"], "single");
        assert_eq!(vars["E"], "value");
    }

    #[test]
    fn a_byte_order_mark_and_crlf_are_ignored() {
        let vars = parse("\u{feff}A=1\r\nB=\"two\"\r\n", Path::new(".env")).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two");
    }

    #[test]
    fn errors_name_the_line_not_the_content() {
        let err = parse("A=1\nsecret-value-without-equals\n", Path::new("x.env")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("line 2"), "{shown}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(parse("K=\"open", Path::new("x")).is_err());
    }
}
