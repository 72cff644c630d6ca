//! One Redis node through a redis-rs `ConnectionManager` (multiplexed, reconnecting).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sealcache_monitor::{BreakerState, CacheObserver};

use super::lazy::Lazy;
use super::{Backend, BoxFuture, Fetched, Guard, LeaseProbe, SetCond, px_millis, refused_write};
use crate::connect::RedisConfig;
use crate::error::Result;
use crate::status::{Refusal, Topology};

/// A single Redis node.
pub(crate) struct SingleNode {
    config: RedisConfig,
    manager: Lazy<redis::Client, ConnectionManager>,
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
            manager: Lazy::new(client, config.connect_timeout),
            config,
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
            manager: Lazy::owned(manager, config.connect_timeout),
            config,
        }
    }

    /// The shared connection, connecting (once, for all waiters) when there is none.
    fn connection(&self) -> impl Future<Output = Result<ConnectionManager>> + '_ {
        // The manager's configuration is built only to connect, not on every command.
        self.manager.get(|client| {
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.config.connect_timeout))
                .set_response_timeout(Some(self.config.response_timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            ConnectionManager::new_with_config(client, cfg)
        })
    }
}

impl Backend for SingleNode {
    fn get_with_ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(self.guard.run("GET", self.connection(), move |c| {
            super::get_with_ttl(c, key)
        }))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(
            self.guard
                .run("GET", self.connection(), move |c| super::get(c, key)),
        )
    }

    fn pttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Duration>>> {
        Box::pin(
            self.guard
                .run("PTTL", self.connection(), move |c| super::pttl(c, key)),
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
                .run("SET", self.connection(), move |c| {
                    super::set_px(c, key, value, ms)
                })
                .await
                .map_err(refused_write)
        })
    }

    fn pexpire<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        let ms = px_millis(ttl);
        Box::pin(self.guard.run("PEXPIRE", self.connection(), move |c| {
            super::pexpire(c, key, ms)
        }))
    }

    fn lease_step<'a>(
        &'a self,
        lease_key: &'a str,
        probe: LeaseProbe<'a>,
        entry_key: &'a str,
    ) -> BoxFuture<'a, Result<(bool, Option<Vec<u8>>)>> {
        Box::pin(async move {
            let stepped = self
                .guard
                .run(probe.command(), self.connection(), move |c| {
                    super::lease_step(c, lease_key, probe, entry_key)
                })
                .await;
            match probe {
                LeaseProbe::Acquire { .. } => stepped.map_err(refused_write),
                LeaseProbe::Observe => stepped,
            }
        })
    }

    fn set_cond<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        cond: SetCond,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            self.guard
                .run("SET", self.connection(), move |c| {
                    super::set_cond(c, key, value, cond)
                })
                .await
                .map_err(refused_write)
        })
    }

    fn scan_keys<'a>(
        &'a self,
        pattern: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let mut cursor = 0_u64;
            let mut found = Vec::new();
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .guard
                    .run("SCAN", self.connection(), move |mut c| async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(crate::cache::SCAN_BATCH)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                found.extend(keys);
                cursor = next;
                if cursor == 0 || found.len() >= limit {
                    found.truncate(limit);
                    return Ok(found);
                }
            }
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

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        message: &'a [u8],
        _key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
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
        let mut config = self.config.clone();
        config.password = Some(zeroize::Zeroizing::new(password.to_owned()));
        self.manager
            .replace_client(|| crate::connect::client(&config))
    }
}
