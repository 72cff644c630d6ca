//! The two layers above the defaults (the TOML file, then the variables), each checked and
//! resolved to canonical names before figment merges them.
//!
//! Aliases are resolved within a layer: an alias and its canonical name in the same layer must
//! agree, while across layers the usual precedence applies (a variable overrides the file,
//! whichever name either uses).

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format as _, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::names::{Name, judge};
use super::values::{clean, clean_name, convert, describe};
use crate::error::{Error, Result};

/// One layer with canonical, lower-case keys, as a figment provider.
pub(super) struct Layer {
    metadata: Metadata,
    dict: Dict,
    /// `(alias, canonical)` for every alias this layer used.
    pub(super) aliases: Vec<(&'static str, &'static str)>,
    /// Canonical names whose value this layer took from an alias (as written) alone.
    pub(super) via_alias: BTreeMap<&'static str, String>,
}

impl Layer {
    /// How figment names this layer (`environment variable`, `TOML file PATH`).
    pub(super) fn source_name(&self) -> String {
        describe(&self.metadata)
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The variables, checked (misspellings and unknown `SEALCACHE_*` names refused) and resolved.
/// Names and values are [`clean`]ed first; a variable set to the empty string counts as unset.
pub(super) fn variables(vars: &BTreeMap<String, String>) -> Result<Layer> {
    let metadata = Metadata::named("environment variable");
    let source_name = describe(&metadata);
    let mut resolver = Resolver::default();
    for (name, value) in vars {
        let name = clean_name(name);
        let value = clean(value);
        if value.is_empty() {
            continue;
        }
        let judged = judge(name, false);
        resolver.add(judged, name, value.to_owned(), &source_name)?;
    }
    let dict = resolver
        .values
        .iter()
        .map(|(canonical, (_, value))| (canonical.to_ascii_lowercase(), Value::from(value.clone())))
        .collect();
    Ok(resolver.into_layer(metadata, dict))
}

/// The TOML file at `path`, checked (every key must be a setting or an alias) and resolved.
/// Keys are the variable names in lower case; upper case is accepted too.
pub(super) fn toml_file(path: &Path) -> Result<Layer> {
    let provider = Toml::file_exact(path);
    let metadata = provider.metadata();
    let source_name = describe(&metadata);
    let mut data = provider.data().map_err(|mut err| {
        if err.metadata.is_none() {
            err.metadata = Some(metadata.clone());
        }
        convert(&err)
    })?;
    // A file that is not `nested()` has everything under the default profile.
    let file = data.remove(&Profile::Default).unwrap_or_default();
    let mut resolver = Resolver::default();
    for (key, value) in file {
        let judged = judge(&key.to_ascii_uppercase(), true);
        if matches!(&value, Value::String(_, s) if s.is_empty()) {
            // Empty text is unset, as for a variable; the key is still checked.
            if let Name::Misspelled(_) | Name::Unknown = judged {
                resolver.add(judged, &key, value, &source_name)?;
            }
            continue;
        }
        resolver.add(judged, &key, value, &source_name)?;
    }
    let dict = resolver
        .values
        .iter()
        .map(|(canonical, (_, value))| (canonical.to_ascii_lowercase(), value.clone()))
        .collect();
    Ok(resolver.into_layer(metadata, dict))
}

/// Collects one layer's values by canonical name, remembering which name set each.
struct Resolver<V> {
    /// canonical name -> (the name that set it, the value).
    values: BTreeMap<&'static str, (String, V)>,
    aliases: Vec<(&'static str, &'static str)>,
}

impl<V> Default for Resolver<V> {
    fn default() -> Self {
        Self {
            values: BTreeMap::new(),
            aliases: Vec::new(),
        }
    }
}

impl<V: PartialEq> Resolver<V> {
    fn add(&mut self, judged: Name, written: &str, value: V, source_name: &str) -> Result<()> {
        match judged {
            Name::Setting(canonical) => self.put(canonical, None, written, value),
            Name::Alias(alias, canonical) => {
                if !self.aliases.contains(&(alias, canonical)) {
                    self.aliases.push((alias, canonical));
                }
                self.put(canonical, Some(alias), written, value)
            }
            Name::Ignored => Ok(()),
            Name::Misspelled(expected) => Err(Error::MisspelledSetting {
                found: written.to_owned(),
                expected,
                source_name: source_name.to_owned(),
            }),
            Name::Unknown => Err(Error::UnknownSetting {
                found: written.to_owned(),
                source_name: source_name.to_owned(),
            }),
        }
    }

    /// Sets `canonical`, through `alias` when given. Two names of one setting must agree.
    fn put(
        &mut self,
        canonical: &'static str,
        alias: Option<&'static str>,
        written: &str,
        value: V,
    ) -> Result<()> {
        let Some((held_by, held)) = self.values.get(canonical) else {
            self.values.insert(canonical, (written.to_owned(), value));
            return Ok(());
        };
        if *held == value {
            // The same value twice: the canonical name is the one to report as its source.
            if alias.is_none() {
                self.values.insert(canonical, (written.to_owned(), value));
            }
            return Ok(());
        }
        let held_alias = alias_named(held_by, canonical);
        // Name an alias first: it is the one to remove.
        let (alias, other) = match (alias, held_alias) {
            (Some(alias), _) => (alias, held_alias.unwrap_or(canonical)),
            (None, Some(held)) => (held, canonical),
            // Two spellings of the canonical name (a TOML key in two cases).
            (None, None) => (canonical, canonical),
        };
        Err(Error::AliasConflict {
            alias,
            other,
            canonical,
        })
    }

    fn into_layer(self, metadata: Metadata, dict: Dict) -> Layer {
        let via_alias = self
            .values
            .iter()
            .filter(|(canonical, (by, _))| !by.eq_ignore_ascii_case(canonical))
            .map(|(canonical, (by, _))| (*canonical, by.clone()))
            .collect();
        Layer {
            metadata,
            dict,
            aliases: self.aliases,
            via_alias,
        }
    }
}

/// The alias of `canonical` spelled `written` (any case), if it is one.
fn alias_named(written: &str, canonical: &'static str) -> Option<&'static str> {
    super::names::ALIASES
        .iter()
        .find(|(alias, to)| *to == canonical && alias.eq_ignore_ascii_case(written))
        .map(|(alias, _)| *alias)
}
