//! The small internal seam between the cache logic and Redis.
//!
//! Every command is single-key (no multi-key command spans entries) and invalidation walks a
//! cursor, so a Redis Cluster backend (redis-rs `cluster-async`, scanning each primary) can replace
//! [`RedisBackend`] without touching the cache logic.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sealcache_monitor::{
    BreakerState, CacheObserver, EventSource, Outcome, SecurityEvent, SecurityEventType,
};

use crate::breaker::{Breaker, Permit};
use crate::connect::RedisConfig;
use crate::error::{Error, Result, TlsFailure, WriteRefusal};
use crate::status::Refusal;
use tracing::Instrument as _;

/// A value and its remaining TTL, as read in one round trip.
pub(crate) type Fetched = Option<(Vec<u8>, Option<Duration>)>;

/// What the cache needs from a Redis deployment.
pub(crate) trait Backend: Send + Sync {
    /// `GET` and `PTTL` of one key in one round trip.
    async fn get_with_ttl(&self, key: &str) -> Result<Fetched>;
    /// `GET` alone, when nobody needs the remaining TTL.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// `PTTL`: the remaining TTL (`None`: no key, or no expiry).
    async fn pttl(&self, key: &str) -> Result<Option<Duration>>;
    /// `SET key value PX ttl` (atomic value and expiry).
    async fn set_px(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()>;
    /// `UNLINK` of keys (each key is its own entry; a cluster backend may split them by slot).
    async fn unlink(&self, keys: &[String]) -> Result<u64>;
    /// One `SCAN` step: the next cursor (0 when done) and the keys of this batch.
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<(u64, Vec<String>)>;
    /// `ACL WHOAMI`.
    async fn whoami(&self) -> Result<String>;
    /// `PING`.
    async fn ping(&self) -> Result<()>;
}

/// redis-rs `ConnectionManager` (multiplexed, reconnecting) behind a breaker and hard timeouts.
pub(crate) struct RedisBackend {
    client: redis::Client,
    config: RedisConfig,
    manager: RwLock<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<()>,
    breaker: Breaker,
    observer: Arc<dyn CacheObserver>,
    /// The last refusal a connection attempt saw (refused credentials, failed handshake), until a
    /// command succeeds: the status reports it while the breaker skips calls.
    refusal: Mutex<Option<Refusal>>,
    /// `server.address` and `server.port` of the command spans.
    address: Option<(String, i64)>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn kind(e: &redis::RedisError) -> String {
    format!("{:?}", e.kind())
}

/// Error replies that mean "not now" rather than "no": the node is loading, failing over, or the
/// cluster is down. They count as unavailability (breaker, 503), not as a refusal.
const TRANSIENT_CODES: &[&str] = &["LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN"];

/// A redis-rs error as the cache reports it: an error reply keeps its code (`OOM`, `READONLY`,
/// `NOPERM`, ...; only upper-case letters, at most 16, so a hostile server cannot put text into
/// errors or logs); a transport failure or a transient reply is [`Error::Unavailable`].
fn classify(command: &'static str, e: &redis::RedisError) -> Error {
    if let Some(refused) = refusal(e) {
        return refused;
    }
    if let Some(code) = e.code() {
        if TRANSIENT_CODES.contains(&code) {
            return Error::Unavailable;
        }
        let plain =
            !code.is_empty() && code.len() <= 16 && code.bytes().all(|b| b.is_ascii_uppercase());
        return Error::Redis {
            command,
            kind: if plain {
                code.to_owned()
            } else {
                "ERR".to_owned()
            },
        };
    }
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
    {
        Error::Unavailable
    } else {
        Error::Redis {
            command,
            kind: kind(e),
        }
    }
}

/// Refused credentials or a failed TLS handshake, named for what they are.
fn refusal(e: &redis::RedisError) -> Option<Error> {
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return Some(Error::AuthenticationRefused { code: "WRONGPASS" });
    }
    match e.code() {
        Some("WRONGPASS") => return Some(Error::AuthenticationRefused { code: "WRONGPASS" }),
        Some("NOAUTH") => return Some(Error::AuthenticationRefused { code: "NOAUTH" }),
        _ => {}
    }
    TlsFailure::find(e).map(|failure| Error::Tls { failure })
}

/// A failed connection attempt: refused credentials (`NOPERM` too: the user may not even select
/// the database), a failed handshake, or a transport failure.
fn connect_error(e: &redis::RedisError) -> Error {
    if let Some(refused) = refusal(e) {
        return refused;
    }
    if e.code() == Some("NOPERM") {
        return Error::AuthenticationRefused { code: "NOPERM" };
    }
    Error::Connect(kind(e))
}

impl RedisBackend {
    pub(crate) fn new(
        client: redis::Client,
        config: RedisConfig,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        Self {
            address: config.host_port().map(|(h, p)| (h, i64::from(p))),
            breaker: Breaker::new(config.breaker),
            client,
            config,
            manager: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            observer,
            refusal: Mutex::new(None),
        }
    }

    /// The last refusal a connection attempt saw, until a command succeeds.
    pub(crate) fn last_refusal(&self) -> Option<Refusal> {
        *self
            .refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a refusal as its security event (once per attempt; the breaker bounds attempts).
    fn record_refusal(&self, err: &Error) {
        let Some(refusal) = Refusal::of(err) else {
            return;
        };
        *self
            .refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refusal);
        let event = match refusal {
            Refusal::Authentication(code) => SecurityEvent::new(SecurityEventType::AuthFailed)
                .detail(format!("Redis refused the cache's credentials ({code})")),
            Refusal::Tls(failure) => SecurityEvent::new(SecurityEventType::TlsError).detail(
                format!("TLS handshake with Redis failed: {}", failure.as_str()),
            ),
        };
        self.observer
            .security_event(event.source(EventSource::Client).outcome(Outcome::Blocked));
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The shared connection, connecting (once, for all waiters) when there is none.
    async fn connection(&self) -> Result<ConnectionManager> {
        if let Some(m) = self
            .manager
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(m);
        }
        let _guard = self.connecting.lock().await;
        if let Some(m) = self
            .manager
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(m);
        }
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let fut = ConnectionManager::new_with_config(self.client.clone(), cfg);
        let manager = tokio::time::timeout(
            self.config.connect_timeout + Duration::from_millis(500),
            fut,
        )
        .await
        .map_err(|_| Error::Unavailable)?
        .map_err(|e| connect_error(&e))?;
        *self
            .manager
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(manager.clone());
        Ok(manager)
    }

    /// Runs one command under the breaker and a hard deadline, recording it.
    async fn run<T, F, Fut>(&self, command: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.breaker.permit() == Permit::Denied {
            return Err(Error::Unavailable);
        }
        let started = Instant::now();
        let deadline = self.config.response_timeout + Duration::from_millis(250);
        // A client span per command (database conventions; never the key or value), disabled and
        // free unless traces are exported.
        let span = tracing::debug_span!(
            target: "sealcache::redis",
            "db.command",
            otel.name = command,
            otel.kind = "client",
            "db.system.name" = "redis",
            "db.operation.name" = command,
            "server.address" = self.address.as_ref().map(|(h, _)| h.as_str()),
            "server.port" = self.address.as_ref().map(|(_, p)| *p),
            "error.type" = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let outcome = async {
            match self.connection().await {
                Ok(conn) => match tokio::time::timeout(deadline, f(conn)).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(classify(command, &e)),
                    Err(_) => Err(Error::Unavailable),
                },
                Err(e) => Err(e),
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(err) = &outcome
            && !span.is_disabled()
        {
            span.record("error.type", err.kind_name());
            span.record("otel.status_code", "error");
        }
        let ok = outcome.is_ok();
        self.observer.redis_command(command, started.elapsed(), ok);
        match &outcome {
            Err(err @ (Error::AuthenticationRefused { .. } | Error::Tls { .. })) => {
                self.record_refusal(err);
            }
            // A real attempt that met an outage: the last refusal no longer says why Redis is
            // out of reach.
            Err(Error::Unavailable | Error::Connect(_)) => {
                *self
                    .refusal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            }
            _ => {}
        }
        match &outcome {
            Err(
                Error::Unavailable
                | Error::Connect(_)
                | Error::AuthenticationRefused { .. }
                | Error::Tls { .. },
            ) => {
                if let Some(state) = self.breaker.failure() {
                    self.observer.breaker_state(state);
                    self.observer.redis_available(false);
                    tracing::warn!(target: "sealcache::redis", "Redis unavailable: breaker open, reads are misses");
                }
            }
            _ => {
                if ok {
                    *self
                        .refusal
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                }
                if let Some(state) = self.breaker.success() {
                    self.observer.breaker_state(state);
                    self.observer.redis_available(true);
                    tracing::info!(target: "sealcache::redis", "Redis available again: breaker closed");
                }
            }
        }
        outcome.map_err(|e| match e {
            Error::Connect(_) => Error::Unavailable,
            other => other,
        })
    }
}

impl Backend for RedisBackend {
    async fn get_with_ttl(&self, key: &str) -> Result<Fetched> {
        self.run("GET", |mut c| async move {
            let (value, pttl): (Option<Vec<u8>>, i64) = redis::pipe()
                .get(key)
                .cmd("PTTL")
                .arg(key)
                .query_async(&mut c)
                .await?;
            let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
            Ok(value.map(|v| (v, ttl)))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run("GET", |mut c| async move {
            redis::cmd("GET").arg(key).query_async(&mut c).await
        })
        .await
    }

    async fn pttl(&self, key: &str) -> Result<Option<Duration>> {
        self.run("PTTL", |mut c| async move {
            let ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut c).await?;
            Ok(u64::try_from(ms).ok().map(Duration::from_millis))
        })
        .await
    }

    async fn set_px(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run("SET", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
        .map_err(|e| match e {
            Error::Redis { kind, .. } => Error::WriteRefused {
                reason: WriteRefusal::from_code(&kind),
            },
            other => other,
        })
    }

    async fn unlink(&self, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.run("UNLINK", |mut c| async move {
            redis::cmd("UNLINK").arg(keys).query_async(&mut c).await
        })
        .await
    }

    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<(u64, Vec<String>)> {
        self.run("SCAN", |mut c| async move {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn whoami(&self) -> Result<String> {
        self.run("ACL", |mut c| async move {
            redis::cmd("ACL").arg("WHOAMI").query_async(&mut c).await
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run("PING", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }
}
