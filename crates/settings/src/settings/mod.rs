//! `SecuritySettings::load()`: the runtime settings of the cache and server
//! (docs/architecture.md §9), the one input every component reads its configuration from.
//!
//! Precedence, lowest first: built-in defaults, then the TOML file (`SEALCACHE_CONFIG`, or
//! `sealcache.toml` in the working directory when present), then environment variables. TOML keys
//! are the variable names in lower case (`redis_url = "rediss://..."`).
//!
//! Names are checked before anything is read ([`names`]): deprecated aliases of the Python
//! template are read with one warning each, misspellings are errors naming the right variable.
//! Every secret can come from its variable or from a file named by `*_FILE`; setting both is an
//! error naming the pair. A leading byte order mark and trailing CR/LF are removed from secret
//! files and variables. Errors name the setting and its source, never its value.

mod custom;
pub(crate) mod declare;
mod declared;
mod layers;
mod names;
pub(crate) mod readers;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;

use crate::error::{Error, Result};
use readers::Ctx;
use values::{Raw, Sources};

pub use declare::{Setting, markdown_table};
pub use declared::{SETTINGS, SecuritySettings, ServerLimits, VARIABLES};
pub use names::{ALIASES, NEAR_MISSES, OTHER_VARIABLES};

/// The default `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "rediss://redis:6379/0";
/// The default ACL user.
pub const DEFAULT_USERNAME: &str = "cache_app";
/// The default key namespace.
pub const DEFAULT_NAMESPACE: &str = "ai_cache";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default `OTEL_SERVICE_NAME`.
pub const DEFAULT_OTEL_SERVICE_NAME: &str = "sealcache-server";
/// The default `SEALCACHE_STATUS_INTERVAL_SECS`.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(15);

impl SecuritySettings {
    /// Loads the settings of this process: its variables, then `SEALCACHE_CONFIG` or
    /// `./sealcache.toml` when present.
    ///
    /// Variables whose name or value is not UTF-8 are skipped, unless the name is a setting or an
    /// alias: then the value is refused.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`], [`Error::BothPlainAndFileSet`], [`Error::MisspelledSetting`],
    /// [`Error::UnknownSetting`], [`Error::AliasConflict`], [`Error::Io`] for unreadable secret
    /// or settings files, key format errors.
    pub fn load() -> Result<Self> {
        let mut vars = BTreeMap::new();
        for (name, value) in std::env::vars_os() {
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => {
                    vars.insert(name, value);
                }
                Err(_) if names::is_read(values::clean_name(&name)) => {
                    return Err(Error::InvalidSetting {
                        key: name,
                        source_name: "environment variable".to_owned(),
                        problem: "is not valid UTF-8".to_owned(),
                    });
                }
                Err(_) => {}
            }
        }
        let toml = vars
            .get("SEALCACHE_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("sealcache.toml")).filter(|p| p.exists()));
        Self::load_from(&vars, toml.as_deref())
    }

    /// Loads from explicit variables and an optional TOML file (tests, tools).
    ///
    /// # Errors
    /// As [`SecuritySettings::load`]; a named TOML file that does not exist is an error.
    pub fn load_from(vars: &BTreeMap<String, String>, toml: Option<&Path>) -> Result<Self> {
        let mut layers = Vec::with_capacity(2);
        if let Some(path) = toml {
            if !path.exists() {
                return Err(Error::Io {
                    action: "cannot read settings file",
                    path: path.to_path_buf(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            layers.push(layers::toml_file(path)?);
        }
        layers.push(layers::variables(vars)?);

        let mut figment = Figment::from(Serialized::defaults(Raw::new()));
        for layer in &layers {
            figment = figment.merge(layer);
        }
        let raw: Raw = figment.extract().map_err(|e| values::convert(&e))?;
        let mut sources = Sources::new();
        for key in raw.keys() {
            let name = figment
                .find_metadata(key)
                .map_or_else(|| "default".to_owned(), values::describe);
            sources.insert(key.to_ascii_uppercase(), name);
        }
        let mut deprecated_aliases = Vec::new();
        for layer in &layers {
            let source_name = layer.source_name();
            for (canonical, alias) in &layer.via_alias {
                if let Some(source) = sources.get_mut(*canonical)
                    && *source == source_name
                {
                    source.push_str(&format!(" {alias} (deprecated name)"));
                }
            }
            for &(alias, canonical) in &layer.aliases {
                if !deprecated_aliases.contains(&(alias, canonical)) {
                    tracing::warn!(
                        deprecated = alias,
                        canonical,
                        "deprecated setting name: rename {alias} to {canonical}"
                    );
                    deprecated_aliases.push((alias, canonical));
                }
            }
        }
        Self::from_raw(&raw, sources, deprecated_aliases)
    }

    fn from_raw(
        raw: &Raw,
        sources: Sources,
        deprecated_aliases: Vec<(&'static str, &'static str)>,
    ) -> Result<Self> {
        let ctx = Ctx {
            raw,
            sources: &sources,
        };
        let limits = ServerLimits::read_declared(&ctx)?;
        let mut settings = Self::read_declared(&ctx, limits, deprecated_aliases, Sources::new())?;
        settings.sources = sources;
        Ok(settings)
    }
}
