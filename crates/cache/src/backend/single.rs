//! One Redis node through a redis-rs `ConnectionManager` (multiplexed, reconnecting).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sealcache_monitor::{BreakerState, CacheObserver};

use super::{
    Backend, BoxFuture, Fetched, Guard, connect_error, pttl_duration, px_millis, refused_write,
};
use crate::connect::RedisConfig;
use crate::error::{Error, Result};
use crate::status::{Refusal, Topology};

/// A single Redis node.
pub(crate) struct SingleNode {
    /// `None` for a connection the application handed over (it owns reconnection then).
    client: RwLock<Option<redis::Client>>,
    config: RedisConfig,
    manager: RwLock<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<()>,
    /// Failed connection attempts so far: a caller that waited for another's attempt shares its
    /// failure instead of making one more (each would cost a connect timeout).
    failed_attempts: std::sync::atomic::AtomicU64,
    guard: Guard,
}

impl SingleNode {
    /// Connects lazily (on the first command) with `client`.
    pub(crate) fn new(
        client: redis::Client,
        config: RedisConfig,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        Self {
            guard: Guard::new(&config, observer),
            client: RwLock::new(Some(client)),
            config,
            manager: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            failed_attempts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Uses a connection the application already owns; `config` describes its transport (for the
    /// policy check and the posture).
    pub(crate) fn with_manager(
        manager: ConnectionManager,
        config: RedisConfig,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        Self {
            guard: Guard::new(&config, observer),
            client: RwLock::new(None),
            config,
            manager: RwLock::new(Some(manager)),
            connecting: tokio::sync::Mutex::new(()),
            failed_attempts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn cached(&self) -> Option<ConnectionManager> {
        self.manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The shared connection, connecting (once, for all waiters) when there is none.
    async fn connection(&self) -> Result<ConnectionManager> {
        if let Some(m) = self.cached() {
            return Ok(m);
        }
        let seen = self
            .failed_attempts
            .load(std::sync::atomic::Ordering::Acquire);
        let bound = self.config.connect_timeout + Duration::from_millis(500);
        let _guard = tokio::time::timeout(bound, self.connecting.lock())
            .await
            .map_err(|_| Error::Unavailable)?;
        if self
            .failed_attempts
            .load(std::sync::atomic::Ordering::Acquire)
            != seen
        {
            return Err(Error::Unavailable);
        }
        if let Some(m) = self.cached() {
            return Ok(m);
        }
        let Some(client) = self
            .client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Err(Error::Unavailable);
        };
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let fut = ConnectionManager::new_with_config(client, cfg);
        let attempt = tokio::time::timeout(bound, fut)
            .await
            .map_err(|_| Error::Unavailable)
            .and_then(|r| r.map_err(|e| connect_error(&e)));
        let manager = attempt.inspect_err(|_| {
            self.failed_attempts
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        })?;
        *self.manager.write().unwrap_or_else(PoisonError::into_inner) = Some(manager.clone());
        Ok(manager)
    }
}

impl Backend for SingleNode {
    fn get_with_ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(
            self.guard
                .run("GET", self.connection(), move |mut c| async move {
                    let (value, pttl): (Option<Vec<u8>>, i64) = redis::pipe()
                        .get(key)
                        .cmd("PTTL")
                        .arg(key)
                        .query_async(&mut c)
                        .await?;
                    Ok(value.map(|v| (v, pttl_duration(pttl))))
                }),
        )
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(
            self.guard
                .run("GET", self.connection(), move |mut c| async move {
                    redis::cmd("GET").arg(key).query_async(&mut c).await
                }),
        )
    }

    fn pttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Duration>>> {
        Box::pin(
            self.guard
                .run("PTTL", self.connection(), move |mut c| async move {
                    let ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut c).await?;
                    Ok(pttl_duration(ms))
                }),
        )
    }

    fn set_px<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        let ms = px_millis(ttl);
        Box::pin(async move {
            self.guard
                .run("SET", self.connection(), move |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(ms)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
                .map_err(refused_write)
        })
    }

    fn unlink<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(0);
            }
            self.guard
                .run("UNLINK", self.connection(), move |mut c| async move {
                    redis::cmd("UNLINK").arg(keys).query_async(&mut c).await
                })
                .await
        })
    }

    fn unlink_matching<'a>(&'a self, pattern: &'a str, batch: usize) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let mut cursor = 0_u64;
            let mut removed = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .guard
                    .run("SCAN", self.connection(), move |mut c| async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(batch)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                removed += self.unlink(&keys).await?;
                cursor = next;
                if cursor == 0 {
                    return Ok(removed);
                }
            }
        })
    }

    fn publish<'a>(&'a self, channel: &'a str, message: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            self.guard
                .run("PUBLISH", self.connection(), move |mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(message)
                        .query_async::<()>(&mut c)
                        .await
                }),
        )
    }

    fn whoami(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(
            self.guard
                .run("ACL", self.connection(), move |mut c| async move {
                    redis::cmd("ACL").arg("WHOAMI").query_async(&mut c).await
                }),
        )
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(
            self.guard
                .run("PING", self.connection(), move |mut c| async move {
                    redis::cmd("PING").query_async::<()>(&mut c).await
                }),
        )
    }

    fn topology(&self) -> BoxFuture<'_, Option<Topology>> {
        Box::pin(async { None })
    }

    fn breaker_state(&self) -> BreakerState {
        self.guard.breaker_state()
    }

    fn last_refusal(&self) -> Option<Refusal> {
        self.guard.last_refusal()
    }

    fn config(&self) -> &RedisConfig {
        &self.config
    }

    fn set_password(&self, password: &str) -> Result<()> {
        let mut client = self.client.write().unwrap_or_else(PoisonError::into_inner);
        if client.is_none() {
            return Err(Error::Config(
                "the Redis password of an application-owned connection is the application's to change".into(),
            ));
        }
        let mut config = self.config.clone();
        config.password = Some(zeroize::Zeroizing::new(password.to_owned()));
        *client = Some(crate::connect::client(&config)?);
        *self.manager.write().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
}
