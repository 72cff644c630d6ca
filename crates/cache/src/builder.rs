//! The cache builder: decide the keyring, then the transport, then `build()`.
//!
//! ```text
//! CacheBuilder::new(environment)      state <NeedsKeyring, NeedsTransport>
//!     .keyring(keyring)               state <KeySource, NeedsTransport>   (or .no_keyring())
//!     .redis(RedisConfig)             state <KeySource, RedisConfig>
//!     .build()                        -> Result<AiResponseCache>
//! ```
//!
//! Skipping a decision is a compile error (there is no `build` on the earlier states). `build`
//! applies the strict policy: in production, staging and unknown environments a configuration
//! without TLS, without a named ACL user and password, or without an encryption key is refused with
//! one error listing every gap, unless `REDIS_SECURITY_MODE=development` is set (then it builds,
//! logs a warning and records `override_used`).

use std::sync::Arc;
use std::time::SystemTime;

use sealcache_codec::{Keyring, ValueCodec};
use sealcache_env_detect::EnvironmentInfo;
use sealcache_monitor::{
    CacheObserver, EventSource, MonitorOptions, Outcome, SecurityAwareCacheMonitor, SecurityEvent,
    SecurityEventType, SystemClock, Tee,
};

use crate::ai::AiResponseCache;
use crate::backend::{Backend, Cluster, SingleNode};
use crate::cache::{CacheOptions, SealedCache};
use crate::connect::{Existing, RedisConfig, client, cluster_client};
use crate::error::{Error, Result};
use crate::ttl::TtlPolicy;

/// State: no keyring decided yet.
#[derive(Debug)]
pub struct NeedsKeyring;
/// State: no transport decided yet.
#[derive(Debug)]
pub struct NeedsTransport;

/// The keyring decision.
#[derive(Debug)]
pub enum KeySource {
    /// Seal with this keyring.
    Configured(Keyring),
    /// No key configured: refused by the strict policy; in development an ephemeral random key is
    /// used (values are unreadable after a restart), never plaintext.
    Missing,
}

/// Builds an [`AiResponseCache`]; see the module docs for the order of decisions.
#[derive(Debug)]
pub struct CacheBuilder<K = NeedsKeyring, T = NeedsTransport> {
    keyring: K,
    transport: T,
    environment: EnvironmentInfo,
    options: CacheOptions,
    ttl: TtlPolicy,
    observer: Option<Arc<dyn CacheObserver>>,
    legacy_until: Option<SystemTime>,
}

impl CacheBuilder<NeedsKeyring, NeedsTransport> {
    /// Starts a builder for the detected `environment`.
    #[must_use]
    pub fn new(environment: EnvironmentInfo) -> Self {
        Self {
            keyring: NeedsKeyring,
            transport: NeedsTransport,
            environment,
            options: CacheOptions::default(),
            ttl: TtlPolicy::default(),
            observer: None,
            legacy_until: None,
        }
    }
}

impl<K, T> CacheBuilder<K, T> {
    fn with_state_moving_keyring<T2>(self, transport: T2) -> CacheBuilder<K, T2> {
        CacheBuilder {
            keyring: self.keyring,
            transport,
            environment: self.environment,
            options: self.options,
            ttl: self.ttl,
            observer: self.observer,
            legacy_until: self.legacy_until,
        }
    }

    fn with_state<K2, T2>(self, keyring: K2, transport: T2) -> CacheBuilder<K2, T2> {
        CacheBuilder {
            keyring,
            transport,
            environment: self.environment,
            options: self.options,
            ttl: self.ttl,
            observer: self.observer,
            legacy_until: self.legacy_until,
        }
    }

    /// Cache options (namespace, L1, size cap).
    #[must_use]
    pub fn options(mut self, options: CacheOptions) -> Self {
        self.options = options;
        self
    }

    /// Per-operation TTLs.
    #[must_use]
    pub fn ttl_policy(mut self, ttl: TtlPolicy) -> Self {
        self.ttl = ttl;
        self
    }

    /// An observer that gets every call too (for example OpenTelemetry); the cache always keeps
    /// its own in-process monitor.
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn CacheObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Options that weaken the cache. Audit every use.
    #[must_use]
    pub fn dangerous(self) -> crate::danger::DangerousCacheOptions<K, T> {
        crate::danger::DangerousCacheOptions { builder: self }
    }

    pub(crate) fn set_legacy_until(&mut self, until: SystemTime) {
        self.legacy_until = Some(until);
    }
}

impl CacheBuilder<NeedsKeyring, NeedsTransport> {
    /// Seals with `keyring`.
    #[must_use]
    pub fn keyring(self, keyring: Keyring) -> CacheBuilder<KeySource, NeedsTransport> {
        self.with_state(KeySource::Configured(keyring), NeedsTransport)
    }

    /// No key is configured (see [`KeySource::Missing`]).
    #[must_use]
    pub fn no_keyring(self) -> CacheBuilder<KeySource, NeedsTransport> {
        self.with_state(KeySource::Missing, NeedsTransport)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::KeySource {}
    impl Sealed for super::CacheBuilder<super::KeySource, super::RedisConfig> {}
}

/// The keyring has been decided (`.keyring(k)` or `.no_keyring()`): the state `.redis(..)` needs.
/// Sealed; only the builder's own states implement it.
#[diagnostic::on_unimplemented(
    message = "decide the keyring before the transport: call `.keyring(keyring)` or `.no_keyring()` before `.redis(config)`",
    label = "this builder has no keyring decision yet"
)]
pub trait KeyringDecided: sealed::Sealed {}
impl KeyringDecided for KeySource {}

/// Every decision is made: the state `.build()` needs. Sealed.
#[diagnostic::on_unimplemented(
    message = "the cache builder is not ready: call `.keyring(keyring)` (or `.no_keyring()`), then `.redis(config)`, then `.build()`",
    label = "this builder still needs `.keyring(..)`/`.no_keyring()` and `.redis(..)`"
)]
pub trait ReadyToBuild: sealed::Sealed {
    #[doc(hidden)]
    fn into_ready(self) -> CacheBuilder<KeySource, RedisConfig>;
}
impl ReadyToBuild for CacheBuilder<KeySource, RedisConfig> {
    fn into_ready(self) -> CacheBuilder<KeySource, RedisConfig> {
        self
    }
}

impl<K: KeyringDecided> CacheBuilder<K, NeedsTransport> {
    /// Connects to Redis with `config` (connections are made lazily, on first use). Needs the
    /// keyring decided first; otherwise the compiler says so in words.
    #[must_use]
    pub fn redis(self, config: RedisConfig) -> CacheBuilder<K, RedisConfig> {
        self.with_state_moving_keyring(config)
    }
}

impl<K, T> CacheBuilder<K, T> {
    /// Applies the strict policy and builds the cache. Available once the keyring and the
    /// transport are decided; before that the compiler names the missing call:
    ///
    /// ```compile_fail
    /// # use sealcache::CacheBuilder;
    /// # use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};
    /// let env = EnvironmentDetector::new(MapSource::new()).detect(FeatureContext::Default);
    /// // error: the cache builder is not ready: call `.keyring(keyring)` (or `.no_keyring()`),
    /// // then `.redis(config)`, then `.build()`
    /// let cache = CacheBuilder::new(env).build();
    /// ```
    ///
    /// # Errors
    /// [`Error::Policy`] listing every unmet requirement; [`Error::Config`] and
    /// [`Error::TlsFile`] for unusable settings.
    pub fn build(self) -> Result<AiResponseCache>
    where
        Self: ReadyToBuild,
    {
        self.into_ready().build_ready()
    }
}

impl CacheBuilder<KeySource, RedisConfig> {
    fn build_ready(self) -> Result<AiResponseCache> {
        let has_key = matches!(self.keyring, KeySource::Configured(_));
        let tolerated = crate::policy::check(&self.environment, &self.transport, has_key)
            .map_err(Error::Policy)?;
        let policy = self.environment.policy();
        let monitor = Arc::new(SecurityAwareCacheMonitor::with_options(
            MonitorOptions {
                production_like: policy.environment().is_production_like(),
                ..MonitorOptions::default()
            },
            Arc::new(SystemClock),
        ));
        let observer: Arc<dyn CacheObserver> = match self.observer {
            Some(extra) => Arc::new(Tee(monitor.clone(), extra)),
            None => monitor.clone(),
        };
        if !tolerated.is_empty() {
            let list: Vec<&str> = tolerated.iter().map(|r| r.remedy()).collect();
            tracing::warn!(
                target: "sealcache::security",
                environment = %self.environment.environment(),
                unmet = ?list,
                "security requirements relaxed (development environment or REDIS_SECURITY_MODE=development)"
            );
        }
        {
            // The override is counted whenever it is in force, even with nothing unmet today.
            if policy.development_override() {
                observer.security_event(
                    SecurityEvent::new(SecurityEventType::OverrideUsed)
                        .source(EventSource::Configuration)
                        .outcome(Outcome::Allowed)
                        .detail(format!(
                            "REDIS_SECURITY_MODE=development in {} with {} unmet requirement(s)",
                            self.environment.environment(),
                            tolerated.len()
                        )),
                );
            }
        }
        let keyring = match self.keyring {
            KeySource::Configured(k) => k,
            KeySource::Missing => {
                tracing::warn!(target: "sealcache::security", "no encryption key configured: sealing with an ephemeral key (development only)");
                Keyring::generate().map_err(Error::Seal)?
            }
        };
        let mut codec = ValueCodec::new(&keyring);
        if let Some(until) = self.legacy_until {
            codec = codec
                .dangerous()
                .accept_legacy_plaintext_until(until)
                .done();
            observer.security_event(
                SecurityEvent::new(SecurityEventType::OverrideUsed)
                    .source(EventSource::Configuration)
                    .outcome(Outcome::Allowed)
                    .detail("legacy plaintext migration window open"),
            );
        }
        let mut transport = self.transport;
        let backend: Box<dyn Backend> = match transport.take_existing() {
            Some(Existing::Single(manager)) => Box::new(SingleNode::with_manager(
                manager,
                transport,
                observer.clone(),
            )),
            Some(Existing::Cluster(connection)) => Box::new(Cluster::with_connection(
                connection,
                transport,
                observer.clone(),
            )),
            None if !transport.cluster_nodes.is_empty() => {
                let redis = cluster_client(&transport)?;
                Box::new(Cluster::new(redis, transport, observer.clone()))
            }
            None => {
                let redis = client(&transport)?;
                Box::new(SingleNode::new(redis, transport, observer.clone()))
            }
        };
        let cache = SealedCache::assemble(
            &keyring,
            backend,
            monitor,
            observer,
            self.options,
            self.environment,
            codec,
        )?;
        Ok(AiResponseCache::new(cache, self.ttl))
    }
}

/// Builds a cache from loaded settings (variables, `*_FILE` secrets, `sealcache.toml`).
///
/// # Errors
/// As [`CacheBuilder::build`].
#[cfg(feature = "settings")]
pub fn from_settings(
    settings: &sealcache_settings::SecuritySettings,
    environment: EnvironmentInfo,
    observer: Option<Arc<dyn CacheObserver>>,
) -> Result<AiResponseCache> {
    from_settings_with(settings, environment, observer, CacheOptions::default())
}

/// [`from_settings`] with cache options (the namespace still comes from the settings).
///
/// # Errors
/// As [`CacheBuilder::build`].
#[cfg(feature = "settings")]
pub fn from_settings_with(
    settings: &sealcache_settings::SecuritySettings,
    environment: EnvironmentInfo,
    observer: Option<Arc<dyn CacheObserver>>,
    options: CacheOptions,
) -> Result<AiResponseCache> {
    // `REDIS_CLUSTER_NODES` switches to cluster mode (settings refuse it beside a non-default
    // `REDIS_URL`, naming both).
    let mut redis = if settings.redis_cluster_nodes.is_empty() {
        RedisConfig::new(settings.redis_url.clone())
    } else {
        RedisConfig::cluster(settings.redis_cluster_nodes.iter().cloned())
    };
    redis.username = Some(settings.redis_username.clone());
    redis.password = settings
        .redis_password
        .as_ref()
        .map(|p| zeroize::Zeroizing::new(p.expose_secret().to_owned()));
    redis.ca_path = settings.redis_tls_ca_path.clone();
    redis.client_cert_path = settings.redis_tls_cert_path.clone();
    redis.client_key_path = settings.redis_tls_key_path.clone();
    let options = options.with_namespace(settings.cache_namespace.clone());
    let builder = CacheBuilder::new(environment).options(options);
    let builder = match observer {
        Some(o) => builder.observer(o),
        None => builder,
    };
    let builder = match &settings.keyring {
        Some(k) => builder.keyring(k.clone()),
        None => builder.no_keyring(),
    };
    builder.redis(redis).build()
}
