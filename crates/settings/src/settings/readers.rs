//! How a declared setting is read from the merged layers, what its default is, and how both are
//! described in the documentation: one reader value per setting, written in the declaration
//! ([`super::declared`]) next to the setting's name and meaning.
//!
//! Every reader gives the same answer for a variable that is unset and one set to the empty
//! string: the default.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{Flex, Raw, Sources, invalid, number, read_secret_file, truthy};
use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The merged layers a reader reads from, and where each value came from (for errors).
pub(super) struct Ctx<'a> {
    pub(super) raw: &'a Raw,
    pub(super) sources: &'a Sources,
}

impl Ctx<'_> {
    /// The value of `var` as text, when set and not empty.
    pub(super) fn text(&self, var: &str) -> Option<String> {
        self.raw
            .get(&var.to_ascii_lowercase())
            .map(Flex::text)
            .filter(|s| !s.is_empty())
    }

    /// The value of `var` as text, when set and not blank.
    pub(super) fn trimmed(&self, var: &str) -> Option<String> {
        self.text(var).filter(|s| !s.trim().is_empty())
    }
}

/// What the documentation says of a setting's value: its kind and its default.
pub(crate) trait Describe: Sync {
    /// What the value is, for the settings table ("whole number, at least 1").
    fn kind(&self) -> String;
    /// The default, as the settings table shows it.
    fn shown_default(&self) -> String;
    /// The positions, among the setting's variables, of those whose value is a secret (never
    /// the `*_FILE` twin, which holds a path).
    fn secret_positions(&self) -> &'static [usize] {
        &[]
    }
}

/// Reads a setting's value; `vars` are the variables the declaration names for it, the canonical
/// one first.
pub(super) trait Read: Describe {
    /// The field's type.
    type Output;
    /// The value, or its default when unset.
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Self::Output>;
    /// The value when nothing is set.
    fn default_value(&self) -> Self::Output;
}

/// The first declared variable (every declaration names at least one).
fn first(vars: &[&'static str]) -> &'static str {
    vars.first().copied().unwrap_or_default()
}

/// Text with a default; `trim` removes surrounding blanks (a blank value is then unset).
pub(super) struct Text {
    pub(super) default: &'static str,
    pub(super) trim: bool,
}

impl Describe for Text {
    fn kind(&self) -> String {
        "text".to_owned()
    }
    fn shown_default(&self) -> String {
        format!("`{}`", self.default)
    }
}

impl Read for Text {
    type Output = String;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<String> {
        let value = if self.trim {
            ctx.trimmed(first(vars)).map(|s| s.trim().to_owned())
        } else {
            ctx.text(first(vars))
        };
        Ok(value.unwrap_or_else(|| self.default_value()))
    }
    fn default_value(&self) -> String {
        self.default.to_owned()
    }
}

/// Optional text: unset unless given. `shown` is the table's default ("unset", "detected").
pub(super) struct OptionalText {
    pub(super) shown: &'static str,
}

impl Describe for OptionalText {
    fn kind(&self) -> String {
        "text".to_owned()
    }
    fn shown_default(&self) -> String {
        self.shown.to_owned()
    }
}

impl Read for OptionalText {
    type Output = Option<String>;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Option<String>> {
        Ok(ctx.text(first(vars)))
    }
    fn default_value(&self) -> Option<String> {
        None
    }
}

/// An optional file path.
pub(super) struct FilePath;

impl Describe for FilePath {
    fn kind(&self) -> String {
        "file path".to_owned()
    }
    fn shown_default(&self) -> String {
        "unset".to_owned()
    }
}

impl Read for FilePath {
    type Output = Option<PathBuf>;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Option<PathBuf>> {
        Ok(ctx.text(first(vars)).map(PathBuf::from))
    }
    fn default_value(&self) -> Option<PathBuf> {
        None
    }
}

/// A flag: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
pub(super) struct Flag {
    pub(super) default: bool,
}

impl Describe for Flag {
    fn kind(&self) -> String {
        "flag (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`)".to_owned()
    }
    fn shown_default(&self) -> String {
        format!("`{}`", self.default)
    }
}

impl Read for Flag {
    type Output = bool;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<bool> {
        truthy(first(vars), ctx.raw, self.default, ctx.sources)
    }
    fn default_value(&self) -> bool {
        self.default
    }
}

/// What a whole number counts, for the table.
#[derive(Clone, Copy)]
pub(super) enum Unit {
    /// A plain count (connections, entries, attempts).
    Count,
    /// Bytes, shown in KiB or MiB when whole.
    Bytes,
}

impl Unit {
    fn show(self, n: u64) -> String {
        match self {
            Unit::Count => n.to_string(),
            Unit::Bytes => bytes(n),
        }
    }
}

/// `1 MiB`, `16 KiB`, `1000 bytes`.
fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// The whole-number types a setting may have.
pub(super) trait Whole:
    Copy + Sync + std::str::FromStr + PartialOrd + std::fmt::Display
{
    /// The value widened, for the table.
    fn widened(self) -> u64;
}

impl Whole for u32 {
    fn widened(self) -> u64 {
        u64::from(self)
    }
}

impl Whole for usize {
    fn widened(self) -> u64 {
        u64::try_from(self).unwrap_or(u64::MAX)
    }
}

/// A whole number at least `min`, of type `T` (`usize`, `u32`).
pub(super) struct Number<T> {
    pub(super) default: T,
    pub(super) min: T,
    pub(super) unit: Unit,
}

impl<T: Whole> Describe for Number<T> {
    fn kind(&self) -> String {
        let unit = match self.unit {
            Unit::Count => "whole number",
            Unit::Bytes => "bytes",
        };
        match self.min.widened() {
            0 => unit.to_owned(),
            min => format!("{unit}, at least {}", self.unit.show(min)),
        }
    }
    fn shown_default(&self) -> String {
        self.unit.show(self.default.widened())
    }
}

impl<T: Whole> Read for Number<T> {
    type Output = T;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<T> {
        number(first(vars), ctx.raw, self.default, self.min, ctx.sources)
    }
    fn default_value(&self) -> T {
        self.default
    }
}

/// A byte count that is unset unless given (its default is worked out where it is used).
pub(super) struct OptionalBytes {
    pub(super) shown: &'static str,
}

impl Describe for OptionalBytes {
    fn kind(&self) -> String {
        "bytes".to_owned()
    }
    fn shown_default(&self) -> String {
        self.shown.to_owned()
    }
}

impl Read for OptionalBytes {
    type Output = Option<usize>;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Option<usize>> {
        let var = first(vars);
        match ctx.trimmed(var) {
            Some(_) => number(var, ctx.raw, 0usize, 0, ctx.sources).map(Some),
            None => Ok(None),
        }
    }
    fn default_value(&self) -> Option<usize> {
        None
    }
}

/// A duration in whole seconds, at least `min`.
pub(super) struct Seconds {
    pub(super) default: u64,
    pub(super) min: u64,
}

impl Describe for Seconds {
    fn kind(&self) -> String {
        format!("whole seconds, at least {}", self.min)
    }
    fn shown_default(&self) -> String {
        format!("{} s", self.default)
    }
}

impl Read for Seconds {
    type Output = Duration;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Duration> {
        number(first(vars), ctx.raw, self.default, self.min, ctx.sources).map(Duration::from_secs)
    }
    fn default_value(&self) -> Duration {
        Duration::from_secs(self.default)
    }
}

/// A comma-separated list; blanks around items and empty items are dropped.
pub(super) struct List;

impl Describe for List {
    fn kind(&self) -> String {
        "comma-separated list".to_owned()
    }
    fn shown_default(&self) -> String {
        "none".to_owned()
    }
}

impl Read for List {
    type Output = Vec<String>;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Vec<String>> {
        Ok(ctx
            .text(first(vars))
            .map(|v| split_list(&v))
            .unwrap_or_default())
    }
    fn default_value(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The items of a comma-separated list, trimmed, empty ones dropped.
pub(super) fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A secret, from its variable or from the file its `*_FILE` twin names (the declaration's two
/// variables, in that order); both set is an error naming the pair.
pub(super) struct Secret;

impl Describe for Secret {
    fn kind(&self) -> String {
        "secret, or a file holding it".to_owned()
    }
    fn shown_default(&self) -> String {
        "unset".to_owned()
    }
    fn secret_positions(&self) -> &'static [usize] {
        &[0]
    }
}

impl Read for Secret {
    type Output = Option<SecretString>;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Option<SecretString>> {
        secret(ctx, vars)
    }
    fn default_value(&self) -> Option<SecretString> {
        None
    }
}

/// [`Secret`]'s reading, for the custom readers that hold a secret pair too.
pub(super) fn secret(ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Option<SecretString>> {
    let (Some(&var), Some(&file_var)) = (vars.first(), vars.get(1)) else {
        return Err(invalid(
            first(vars),
            ctx.sources,
            "declared without its *_FILE twin",
        ));
    };
    match (ctx.text(var), ctx.text(file_var)) {
        (Some(_), Some(_)) => Err(Error::BothPlainAndFileSet { var, file_var }),
        (Some(v), None) => Ok(Some(SecretString::new(v))),
        (None, Some(path)) => read_secret_file(std::path::Path::new(&path)).map(Some),
        (None, None) => Ok(None),
    }
}

/// A setting read by its own function: values checked against each other or parsed by another
/// crate. `kind` and `shown` describe it in the table; `secret` lists the positions of the
/// variables whose value is a secret.
pub(super) struct Custom<T: 'static> {
    pub(super) kind: &'static str,
    pub(super) shown: &'static str,
    pub(super) secret: &'static [usize],
    pub(super) read: fn(&Ctx<'_>, &[&'static str]) -> Result<T>,
    pub(super) default: fn() -> T,
}

impl<T> Describe for Custom<T> {
    fn kind(&self) -> String {
        self.kind.to_owned()
    }
    fn shown_default(&self) -> String {
        self.shown.to_owned()
    }
    fn secret_positions(&self) -> &'static [usize] {
        self.secret
    }
}

impl<T> Read for Custom<T> {
    type Output = T;
    fn read(&self, ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<T> {
        (self.read)(ctx, vars)
    }
    fn default_value(&self) -> T {
        (self.default)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_are_shown_in_the_largest_whole_unit() {
        assert_eq!(bytes(1 << 20), "1 MiB");
        assert_eq!(bytes(16 << 10), "16 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
        assert_eq!(bytes(0), "0 bytes");
    }

    #[test]
    fn lists_drop_blanks_and_empty_items() {
        assert_eq!(split_list(" a, ,b ,"), ["a", "b"]);
        assert!(split_list("").is_empty());
    }
}
