//! The seam between the cache logic and Redis: [`Backend`], held as `Arc<dyn Backend>`.
//!
//! Two implementations: [`single::SingleNode`] (a redis-rs `ConnectionManager`: multiplexed,
//! reconnecting) and [`cluster::Cluster`] (redis-rs `cluster-async`: slot routing, `MOVED`/`ASK`,
//! topology refresh after a failover). Both run every command through one [`Guard`]: the circuit
//! breaker, a hard deadline, the command span and metrics, and refusal bookkeeping, so the cache
//! cannot tell them apart except through [`Backend::topology`].
//!
//! Every data command is single-key; invalidation is the backend's own walk
//! ([`Backend::unlink_matching`]: one node's `SCAN`, or every primary's, `UNLINK` grouped by slot).

mod cluster;
mod lazy;
mod single;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealcache_monitor::{
    BreakerState, CacheObserver, EventSource, Outcome, SecurityEvent, SecurityEventType,
};

pub(crate) use cluster::{Cluster, parse_slots};
pub(crate) use single::SingleNode;

use crate::breaker::{Breaker, Permit};
use crate::connect::RedisConfig;
use crate::error::{Error, Result, TlsFailure};
use crate::status::{Refusal, Topology};
use tracing::Instrument as _;

/// A value and its remaining TTL, as read in one round trip.
pub(crate) type Fetched = Option<(Vec<u8>, Option<Duration>)>;

/// What [`Backend::lease_step`] does with the lease key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeaseProbe<'a> {
    /// `SET lease value NX PX ttl`.
    Acquire {
        /// The holder's token.
        value: &'a [u8],
        /// The lease's lifetime.
        ttl: Duration,
    },
    /// `EXISTS lease`.
    Observe,
}

impl LeaseProbe<'_> {
    /// The command name for spans and metrics.
    pub(crate) fn command(&self) -> &'static str {
        match self {
            LeaseProbe::Acquire { .. } => "SET",
            LeaseProbe::Observe => "EXISTS",
        }
    }
}

/// When [`Backend::set_cond`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetCond {
    /// Always.
    Always,
    /// Only when the key does not exist (`NX`).
    Absent,
    /// Only when the key exists (`XX`).
    Present,
}

/// `SET key value [NX|XX]`: whether it was set.
pub(crate) async fn set_cond<C: redis::aio::ConnectionLike>(
    mut c: C,
    key: &str,
    value: &[u8],
    cond: SetCond,
) -> redis::RedisResult<bool> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    match cond {
        SetCond::Always => {}
        SetCond::Absent => {
            cmd.arg("NX");
        }
        SetCond::Present => {
            cmd.arg("XX");
        }
    }
    let reply: redis::Value = cmd.query_async(&mut c).await?;
    Ok(matches!(reply, redis::Value::Okay)
        || matches!(&reply, redis::Value::SimpleString(s) if s == "OK"))
}

/// A boxed, sendable future (the trait is used as `dyn Backend`).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything the cache needs from a Redis deployment.
pub(crate) trait Backend: Send + Sync {
    /// `GET` and `PTTL` of one key in one round trip.
    fn get_with_ttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched>>;
    /// `GET` alone, when nobody needs the remaining TTL.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;
    /// `PTTL`: the remaining TTL (`None`: no key, or no expiry).
    fn pttl<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Duration>>>;
    /// `SET key value PX ttl` (atomic value and expiry).
    fn set_px<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<()>>;
    /// `PEXPIRE key ttl`: whether the key existed.
    fn pexpire<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>>;
    /// One step of a lease (see `crate::lease`): `SET lease value NX PX ttl` (with
    /// [`LeaseProbe::Acquire`]) or `EXISTS lease` (with [`LeaseProbe::Observe`]), then `GET entry`,
    /// pipelined in one round trip. Both keys must hash to one slot (the lease key hash-tags the
    /// entry key). Returns whether the lease was set (or exists), and the entry.
    fn lease_step<'a>(
        &'a self,
        lease_key: &'a str,
        probe: LeaseProbe<'a>,
        entry_key: &'a str,
    ) -> BoxFuture<'a, Result<(bool, Option<Vec<u8>>)>>;
    /// `SET key value [NX|XX]` without expiry: whether Redis set it (a record that lives until it is
    /// destroyed: data keys and erasure tombstones).
    fn set_cond<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        cond: SetCond,
    ) -> BoxFuture<'a, Result<bool>>;
    /// `SCAN MATCH pattern` over every primary: the keys found (at most `limit`).
    fn scan_keys<'a>(
        &'a self,
        pattern: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<String>>>;
    /// `UNLINK` of keys (a cluster backend groups them by slot).
    fn unlink<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64>>;
    /// `SCAN MATCH pattern` over every primary and `UNLINK` of what it finds, in batches of
    /// `batch`; how many keys Redis removed.
    fn unlink_matching<'a>(&'a self, pattern: &'a str, batch: usize) -> BoxFuture<'a, Result<u64>>;
    /// `PUBLISH channel message` (cluster-wide in a Redis Cluster). `key`: the Redis key the
    /// message is about, if one; a cluster publishes it on that key's primary, the node that just
    /// took the change (a message about a prefix: on every primary).
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        message: &'a [u8],
        key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>>;
    /// `ACL WHOAMI`.
    fn whoami(&self) -> BoxFuture<'_, Result<String>>;
    /// `PING`.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;
    /// The nodes and `cluster_state` (`None` for a single node).
    fn topology(&self) -> BoxFuture<'_, Option<Topology>>;
    /// The breaker's state.
    fn breaker_state(&self) -> BreakerState;
    /// The last refusal a connection attempt saw, until a command succeeds.
    fn last_refusal(&self) -> Option<Refusal>;
    /// The connection settings (URL or seeds, TLS material, timeouts) the cache was built with.
    fn config(&self) -> &RedisConfig;
    /// Authenticates new connections with `password` from now on: the client is rebuilt and the
    /// shared connection dropped once the commands in flight on it finish (so the next command
    /// connects with the new password). Refused for an application-owned connection.
    fn set_password(&self, password: &str) -> Result<()>;
}

fn kind(e: &redis::RedisError) -> String {
    format!("{:?}", e.kind())
}

/// Error replies that mean "not now" rather than "no": the node is loading, failing over, or the
/// cluster is down. They count as unavailability (breaker, 503), not as a refusal.
/// `MOVED` and `ASK` reach the cache only when redis-rs ran out of redirects (a slot migration or
/// failover in progress): not now, rather than no.
const TRANSIENT_CODES: &[&str] = &[
    "LOADING",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MOVED",
    "ASK",
];

/// A redis-rs error as the cache reports it: an error reply keeps its code (`OOM`, `READONLY`,
/// `NOPERM`, ...; only upper-case letters, at most 16, so a hostile server cannot put text into
/// errors or logs); a transport failure or a transient reply is [`Error::Unavailable`].
pub(crate) fn classify(command: &'static str, e: &redis::RedisError) -> Error {
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
pub(crate) fn connect_error(e: &redis::RedisError) -> Error {
    if let Some(refused) = refusal(e) {
        return refused;
    }
    if e.code() == Some("NOPERM") {
        return Error::AuthenticationRefused { code: "NOPERM" };
    }
    // redis-rs' cluster client wraps the first node's failure as an I/O error ("Failed to create
    // initial connections") with that failure only as text: a refusal must still be named.
    if let Some(detail) = e.detail() {
        for (needle, code) in [
            ("WRONGPASS", "WRONGPASS"),
            ("AuthenticationFailed", "WRONGPASS"),
            ("NOAUTH", "NOAUTH"),
            ("NOPERM", "NOPERM"),
        ] {
            if detail.contains(needle) {
                return Error::AuthenticationRefused { code };
            }
        }
    }
    Error::Connect(kind(e))
}

/// The breaker, deadlines, spans, metrics and refusal bookkeeping every command goes through.
pub(crate) struct Guard {
    breaker: Breaker,
    observer: Arc<dyn CacheObserver>,
    /// The last refusal a connection attempt saw (refused credentials, failed handshake), until a
    /// command succeeds: the status reports it while the breaker skips calls.
    refusal: Mutex<Option<Refusal>>,
    /// `server.address` and `server.port` of the command spans (the first seed for a cluster).
    address: Option<(String, i64)>,
    /// The hard deadline of one command once connected.
    deadline: Duration,
}

impl Guard {
    pub(crate) fn new(config: &RedisConfig, observer: Arc<dyn CacheObserver>) -> Self {
        Self {
            breaker: Breaker::new(config.breaker),
            observer,
            refusal: Mutex::new(None),
            address: config.host_port().map(|(h, p)| (h, i64::from(p))),
            deadline: config.response_timeout + Duration::from_millis(250),
        }
    }

    pub(crate) fn last_refusal(&self) -> Option<Refusal> {
        *self
            .refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_refusal(&self, refusal: Option<Refusal>) {
        *self
            .refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = refusal;
    }

    /// Counts a refusal as its security event (once per attempt; the breaker bounds attempts).
    fn record_refusal(&self, err: &Error) {
        let Some(refusal) = Refusal::of(err) else {
            return;
        };
        self.set_refusal(Some(refusal));
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

    /// Runs one command under the breaker and a hard deadline, recording it: `connect` yields the
    /// connection (its own errors already classified), `command` runs on it. Returns whether the
    /// breaker just opened beside the outcome, so a backend can drop a connection that keeps
    /// failing.
    pub(crate) async fn run<C, T, Conn, F, Fut>(
        &self,
        command: &'static str,
        connect: Conn,
        f: F,
    ) -> Result<T>
    where
        Conn: Future<Output = Result<C>>,
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.breaker.permit() == Permit::Denied {
            return Err(Error::Unavailable);
        }
        let started = Instant::now();
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
        let deadline = self.deadline;
        let outcome = async {
            match connect.await {
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
            Err(Error::Unavailable | Error::Connect(_)) => self.set_refusal(None),
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
                    self.set_refusal(None);
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

/// `SET` errors as the cache reports them: an error reply is a refused write.
pub(crate) fn refused_write(e: Error) -> Error {
    match e {
        Error::Redis { kind, .. } => Error::WriteRefused {
            reason: crate::error::WriteRefusal::from_code(&kind),
        },
        other => other,
    }
}

/// `SET`'s `PX` argument: at least 1 ms.
pub(crate) fn px_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A `PTTL` reply as a duration (`-1`/`-2`: none).
pub(crate) fn pttl_duration(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// `GET` and `PTTL` of one key, pipelined (one slot, so one node in a cluster too).
pub(crate) async fn get_with_ttl<C: redis::aio::ConnectionLike>(
    mut c: C,
    key: &str,
) -> redis::RedisResult<Fetched> {
    let (value, pttl): (Option<Vec<u8>>, i64) = redis::pipe()
        .get(key)
        .cmd("PTTL")
        .arg(key)
        .query_async(&mut c)
        .await?;
    Ok(value.map(|v| (v, pttl_duration(pttl))))
}

/// `GET key`.
pub(crate) async fn get<C: redis::aio::ConnectionLike>(
    mut c: C,
    key: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    redis::cmd("GET").arg(key).query_async(&mut c).await
}

/// `PTTL key`.
pub(crate) async fn pttl<C: redis::aio::ConnectionLike>(
    mut c: C,
    key: &str,
) -> redis::RedisResult<Option<Duration>> {
    let ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut c).await?;
    Ok(pttl_duration(ms))
}

/// `SET key value PX ms`.
pub(crate) async fn set_px<C: redis::aio::ConnectionLike>(
    mut c: C,
    key: &str,
    value: &[u8],
    ms: u64,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(ms)
        .query_async(&mut c)
        .await
}

/// `PEXPIRE key ms`: whether the key existed.
pub(crate) async fn pexpire<C: redis::aio::ConnectionLike>(
    mut c: C,
    key: &str,
    ms: u64,
) -> redis::RedisResult<bool> {
    let n: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(ms)
        .query_async(&mut c)
        .await?;
    Ok(n == 1)
}

/// [`Backend::lease_step`]: the lease command, then `GET entry`, in one pipeline.
pub(crate) async fn lease_step<C: redis::aio::ConnectionLike>(
    mut c: C,
    lease_key: &str,
    probe: LeaseProbe<'_>,
    entry_key: &str,
) -> redis::RedisResult<(bool, Option<Vec<u8>>)> {
    let mut pipe = redis::pipe();
    match probe {
        LeaseProbe::Acquire { value, ttl } => {
            pipe.cmd("SET")
                .arg(lease_key)
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(px_millis(ttl));
        }
        LeaseProbe::Observe => {
            pipe.cmd("EXISTS").arg(lease_key);
        }
    }
    pipe.get(entry_key);
    let (first, entry): (redis::Value, Option<Vec<u8>>) = pipe.query_async(&mut c).await?;
    let flag = match first {
        redis::Value::Okay => true,
        redis::Value::SimpleString(s) => s == "OK",
        redis::Value::Int(n) => n > 0,
        _ => false,
    };
    Ok((flag, entry))
}
