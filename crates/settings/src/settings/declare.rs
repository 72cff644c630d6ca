//! `declare_settings!`: each setting declared once (its variables, meaning, type, reader and
//! default), and from that one declaration the struct that holds it, its reader, its default,
//! [`VARIABLES`](super::VARIABLES) and the settings table in docs/configuration.md
//! ([`markdown_table`]).
//!
//! The shape follows rust-analyzer's `config_data!`: the doc comment of a declared field is both
//! its rustdoc and the table's meaning column; the reader value after `=` says how it is read and
//! what its default is, and describes both for the table.

use std::fmt;

use super::names::ALIASES;
use super::readers::Describe;

/// One declared setting, as the documentation describes it. [`SETTINGS`](super::SETTINGS) lists
/// them all.
#[derive(Clone, Copy)]
pub struct Setting {
    /// The field that holds it (`redis_url`; a server limit's field is in `ServerLimits`).
    pub field: &'static str,
    /// The variables it is read from, the canonical one first (a secret's `*_FILE` twin second).
    /// TOML keys are these in lower case.
    pub variables: &'static [&'static str],
    pub(super) doc: &'static [&'static str],
    pub(super) value: &'static dyn Describe,
}

impl Setting {
    /// What it means: its doc comment as one paragraph (Markdown).
    #[must_use]
    pub fn meaning(&self) -> String {
        self.doc
            .iter()
            .map(|line| line.trim())
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What its value is ("whole number, at least 1", "secret, or a file holding it").
    #[must_use]
    pub fn kind(&self) -> String {
        self.value.kind()
    }

    /// Its default, as the documentation shows it ("`cache_app`", "10 s", "unset").
    #[must_use]
    pub fn shown_default(&self) -> String {
        self.value.shown_default()
    }

    /// The variables whose value is a secret (a password, a key; never a `*_FILE` path), with
    /// their deprecated names: what a plain configuration file (a Kubernetes ConfigMap, a
    /// committed `.env`) must never carry.
    #[must_use]
    pub fn secret_variables(&self) -> Vec<&'static str> {
        let secret: Vec<&'static str> = self
            .value
            .secret_positions()
            .iter()
            .filter_map(|&i| self.variables.get(i).copied())
            .collect();
        let aliases = ALIASES
            .iter()
            .filter(|(_, canonical)| secret.contains(canonical))
            .map(|(alias, _)| *alias);
        secret.iter().copied().chain(aliases).collect()
    }

    /// The deprecated names read as this setting ([`ALIASES`]), in table order.
    #[must_use]
    pub fn aliases(&self) -> Vec<&'static str> {
        ALIASES
            .iter()
            .filter(|(_, canonical)| self.variables.contains(canonical))
            .map(|(alias, _)| *alias)
            .collect()
    }
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setting")
            .field("field", &self.field)
            .field("variables", &self.variables)
            .field("kind", &self.kind())
            .field("default", &self.shown_default())
            .finish_non_exhaustive()
    }
}

/// The settings table of docs/configuration.md, generated from the declarations: one row per
/// setting, `| variable | meaning | value | default |`, with its deprecated names in the meaning.
#[must_use]
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | meaning | value | default |\n|---|---|---|---|\n");
    for setting in super::SETTINGS {
        let variables = setting
            .variables
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(" / ");
        let mut meaning = setting.meaning();
        let aliases = setting.aliases();
        if !aliases.is_empty() {
            let names = aliases
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            meaning.push_str(&format!(" Deprecated names: {names}."));
        }
        table.push_str(&format!(
            "| {variables} | {meaning} | {} | {} |\n",
            setting.kind(),
            setting.shown_default()
        ));
    }
    table
}

/// Declares blocks of settings. Each block is a struct of declared fields, each
///
/// ```text
/// /// Its meaning (rustdoc, and the table's meaning column).
/// field: Type = ["VARIABLE", "ITS_FILE_TWIN"] Reader { .. },
/// ```
///
/// then `computed { field: Type, }`: fields the caller works out and hands to `read_declared`.
/// Generated: the struct, `read_declared(ctx, computed..)`, `Default` (the readers' defaults),
/// and, over every block, `SETTINGS` and `VARIABLES`.
macro_rules! declare_settings {
    (
        $(
            $(#[$meta:meta])*
            pub struct $name:ident {
                $(
                    $(#[doc = $doc:literal])*
                    $field:ident : $ty:ty = [$var:literal $(, $more:literal)*] $reader:expr,
                )*
            }
            computed {
                $(
                    $(#[doc = $cdoc:literal])*
                    $cfield:ident : $cty:ty,
                )*
            }
        )+
    ) => {
        $(
            $(#[$meta])*
            pub struct $name {
                $(
                    $(#[doc = $doc])*
                    #[doc = ""]
                    #[doc = concat!("Read from `", $var, "`" $(, " or `", $more, "`")*, ".")]
                    pub $field: $ty,
                )*
                $(
                    $(#[doc = $cdoc])*
                    pub $cfield: $cty,
                )*
            }

            impl $name {
                /// Reads every declared field, each by its reader; `computed` fields as given.
                pub(super) fn read_declared(
                    ctx: &$crate::settings::readers::Ctx<'_>,
                    $($cfield: $cty,)*
                ) -> $crate::error::Result<Self> {
                    use $crate::settings::readers::Read as _;
                    Ok(Self {
                        $( $field: $reader.read(ctx, &[$var $(, $more)*])?, )*
                        $( $cfield, )*
                    })
                }
            }

            impl Default for $name {
                /// What is read when nothing is set.
                fn default() -> Self {
                    use $crate::settings::readers::Read as _;
                    Self {
                        $( $field: $reader.default_value(), )*
                        $( $cfield: Default::default(), )*
                    }
                }
            }
        )+

        /// Every declared setting, in declaration order (the settings table's rows).
        pub const SETTINGS: &[$crate::settings::declare::Setting] = &[
            $($(
                $crate::settings::declare::Setting {
                    field: stringify!($field),
                    variables: &[$var $(, $more)*],
                    doc: &[$($doc),*],
                    value: &$reader,
                },
            )*)+
        ];

        /// Every variable the settings read (the TOML keys are these in lower case), in
        /// declaration order.
        pub const VARIABLES: &[&str] = &[$($($var, $($more,)*)*)+];
    };
}

pub(super) use declare_settings;
