//! Where signals come from: an injectable source, so tests never touch the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the detector may read.
pub trait SignalSource {
    /// The value of environment variable `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The host name, if known.
    fn hostname(&self) -> Option<String>;
    /// The working directory, where file indicators are looked for.
    fn working_dir(&self) -> Option<PathBuf>;
    /// True when `relative` exists under the working directory.
    fn exists(&self, relative: &str) -> bool {
        self.working_dir()
            .is_some_and(|d| d.join(relative).exists())
    }
}

/// Reads the real process: its variables, `/proc/sys/kernel/hostname` (or `HOSTNAME`), and its
/// current directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSource;

impl SignalSource for ProcessSource {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn hostname(&self) -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
    }

    fn working_dir(&self) -> Option<PathBuf> {
        std::env::current_dir().ok()
    }
}

/// A fixed set of variables, an optional host name and an optional directory (for tests and for
/// evaluating an env file).
#[derive(Debug, Clone, Default)]
pub struct MapSource {
    vars: BTreeMap<String, String>,
    hostname: Option<String>,
    dir: Option<PathBuf>,
}

impl MapSource {
    /// An empty source: no variables, no host name, no directory.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a variable.
    #[must_use]
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds many variables.
    #[must_use]
    pub fn vars<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.vars
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets the host name.
    #[must_use]
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_owned());
        self
    }

    /// Sets the working directory for file indicators.
    #[must_use]
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }
}

impl SignalSource for MapSource {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn hostname(&self) -> Option<String> {
        self.hostname.clone()
    }

    fn working_dir(&self) -> Option<PathBuf> {
        self.dir.clone()
    }
}

/// Variables that take precedence over another source's: how loaded settings (a TOML file's
/// `environment`, `redis_security_mode`) reach detection while the host name, platform and CI
/// signals still come from the process.
///
/// ```
/// use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource, Overlay};
///
/// let process = MapSource::new().hostname("devon-web-01");
/// let source = Overlay::new(process).var("ENVIRONMENT", "production");
/// let info = EnvironmentDetector::new(source).detect(FeatureContext::Default);
/// assert_eq!(info.environment(), Environment::Production);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Overlay<S> {
    vars: BTreeMap<String, String>,
    inner: S,
}

impl<S: SignalSource> Overlay<S> {
    /// Nothing overridden yet.
    pub fn new(inner: S) -> Self {
        Self {
            vars: BTreeMap::new(),
            inner,
        }
    }

    /// `name` reads `value`, whatever the inner source says.
    #[must_use]
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }
}

impl<S: SignalSource> SignalSource for Overlay<S> {
    fn var(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .cloned()
            .or_else(|| self.inner.var(name))
    }

    fn hostname(&self) -> Option<String> {
        self.inner.hostname()
    }

    fn working_dir(&self) -> Option<PathBuf> {
        self.inner.working_dir()
    }

    fn exists(&self, relative: &str) -> bool {
        self.inner.exists(relative)
    }
}
