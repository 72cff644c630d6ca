//! A Redis Cluster through redis-rs `cluster-async`.
//!
//! Data commands are single-key, so redis-rs routes each to its slot's primary (following `MOVED`
//! and `ASK`, refreshing the slot map after a failover). Invalidation asks `CLUSTER SLOTS` for the
//! primaries, walks each one's `SCAN` (routed by address: a cursor belongs to one node) and
//! `UNLINK`s what it found grouped by slot (a multi-key command must stay within one slot).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, Slot,
    SlotAddr,
};
use redis::{Cmd, Value};
use sealcache_monitor::{BreakerState, CacheObserver};

use super::lazy::Lazy;
use super::{Backend, BoxFuture, Fetched, Guard, LeaseProbe, SetCond, px_millis, refused_write};
use crate::connect::RedisConfig;
use crate::error::{Error, Result};
use crate::status::{NodeObservation, NodeRole, Refusal, Topology};

/// A Redis Cluster, reached through its seed nodes.
pub(crate) struct Cluster {
    config: RedisConfig,
    connection: Lazy<ClusterClient, ClusterConnection>,
    guard: Guard,
}

impl Cluster {
    /// Connects lazily (on the first command) with `client`.
    pub(crate) fn new(
        client: ClusterClient,
        config: RedisConfig,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        Self {
            guard: Guard::new(&config, observer),
            connection: Lazy::new(client, config.connect_timeout),
            config,
        }
    }

    /// Uses a cluster connection the application already owns; `config` describes its transport.
    pub(crate) fn with_connection(
        connection: ClusterConnection,
        config: RedisConfig,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        Self {
            guard: Guard::new(&config, observer),
            connection: Lazy::owned(connection, config.connect_timeout),
            config,
        }
    }

    /// The shared connection, connecting (once, for all waiters) when there is none.
    async fn connection(&self) -> Result<ClusterConnection> {
        self.connection
            .get(|client| async move { client.get_async_connection().await })
            .await
    }

    /// Sends `cmd` to one node.
    async fn on_node(
        &self,
        command: &'static str,
        cmd: Cmd,
        routing: SingleNodeRoutingInfo,
    ) -> Result<Value> {
        self.guard
            .run(command, self.connection(), move |mut c| async move {
                c.route_command(cmd, RoutingInfo::SingleNode(routing)).await
            })
            .await
    }

    /// Every node `CLUSTER SLOTS` names, primaries first, each once; an error when a slot range's
    /// primary has no usable address (a walk over the primaries would miss it).
    async fn nodes(&self) -> Result<Vec<(String, u16, NodeRole)>> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let reply = self
            .on_node("CLUSTER", cmd, SingleNodeRoutingInfo::Random)
            .await?;
        let (nodes, complete) = parse_slots(&reply);
        if !complete || nodes.is_empty() {
            return Err(Error::Unavailable);
        }
        Ok(nodes)
    }

    /// `cluster_state` as node `host:port` reports it.
    async fn state_of(&self, host: &str, port: u16) -> Option<String> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("INFO");
        let routing = SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        };
        self.on_node("CLUSTER", cmd, routing)
            .await
            .ok()
            .and_then(|reply| cluster_state(&reply))
    }
}

/// The nodes of a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ..], [replica ..] ..] ..]`,
/// and whether every range's primary had a usable address (not NULL, empty or `?`). Also used by
/// the coherence heartbeat, which goes out through every node listed.
pub(crate) fn parse_slots(reply: &Value) -> (Vec<(String, u16, NodeRole)>, bool) {
    let mut primaries = Vec::new();
    let mut replicas = Vec::new();
    let mut complete = true;
    let Value::Array(ranges) = reply else {
        return (Vec::new(), false);
    };
    for range in ranges {
        let Value::Array(parts) = range else {
            complete = false;
            continue;
        };
        if parts.len() < 3 {
            complete = false;
        }
        for (i, node) in parts.iter().skip(2).enumerate() {
            let address = match node {
                Value::Array(fields) => {
                    let host = match fields.first() {
                        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                        Some(Value::SimpleString(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let port = match fields.get(1) {
                        Some(Value::Int(port)) => u16::try_from(*port).ok(),
                        _ => None,
                    };
                    port.filter(|_| !host.is_empty() && host != "?")
                        .map(|port| (host, port))
                }
                _ => None,
            };
            let Some((host, port)) = address else {
                if i == 0 {
                    complete = false;
                }
                continue;
            };
            let list = if i == 0 {
                &mut primaries
            } else {
                &mut replicas
            };
            if !list.iter().any(|(h, p, _)| *h == host && *p == port) {
                list.push((
                    host,
                    port,
                    if i == 0 {
                        NodeRole::Primary
                    } else {
                        NodeRole::Replica
                    },
                ));
            }
        }
    }
    primaries.extend(replicas);
    (primaries, complete)
}

/// `cluster_state` from a `CLUSTER INFO` reply.
fn cluster_state(reply: &Value) -> Option<String> {
    let text = match reply {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let state = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("cluster_state:"))?;
    // A known word only: a hostile node cannot put text into the status.
    match state.trim() {
        "ok" => Some("ok".to_owned()),
        "fail" => Some("fail".to_owned()),
        _ => Some("unknown".to_owned()),
    }
}

impl Backend for Cluster {
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
            let primaries: Vec<(String, u16)> = self
                .nodes()
                .await?
                .into_iter()
                .filter(|(_, _, role)| *role == NodeRole::Primary)
                .map(|(h, p, _)| (h, p))
                .collect();
            if primaries.is_empty() {
                return Err(Error::Unavailable);
            }
            let mut found = Vec::new();
            for (host, port) in primaries {
                let mut cursor = 0_u64;
                loop {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(crate::cache::SCAN_BATCH);
                    let routing = SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    };
                    let reply = self.on_node("SCAN", cmd, routing).await?;
                    let (next, keys): (u64, Vec<String>) =
                        redis::from_redis_value(reply).map_err(|_| Error::Redis {
                            command: "SCAN",
                            kind: "ResponseError".to_owned(),
                        })?;
                    found.extend(keys);
                    cursor = next;
                    if found.len() >= limit {
                        found.truncate(limit);
                        return Ok(found);
                    }
                    if cursor == 0 {
                        break;
                    }
                }
            }
            Ok(found)
        })
    }

    fn unlink<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let mut by_slot: HashMap<Slot, Vec<&String>> = HashMap::new();
            for key in keys {
                by_slot
                    .entry(Slot::for_key(key.as_bytes()))
                    .or_default()
                    .push(key);
            }
            let mut removed = 0;
            for group in by_slot.into_values() {
                removed += self
                    .guard
                    .run("UNLINK", self.connection(), move |mut c| async move {
                        redis::cmd("UNLINK")
                            .arg(group)
                            .query_async::<u64>(&mut c)
                            .await
                    })
                    .await?;
            }
            Ok(removed)
        })
    }

    fn unlink_matching<'a>(&'a self, pattern: &'a str, batch: usize) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let primaries: Vec<(String, u16)> = self
                .nodes()
                .await?
                .into_iter()
                .filter(|(_, _, role)| *role == NodeRole::Primary)
                .map(|(h, p, _)| (h, p))
                .collect();
            if primaries.is_empty() {
                return Err(Error::Unavailable);
            }
            let mut removed = 0;
            for (host, port) in primaries {
                let mut cursor = 0_u64;
                loop {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(batch);
                    let reply = self
                        .on_node(
                            "SCAN",
                            cmd,
                            SingleNodeRoutingInfo::ByAddress {
                                host: host.clone(),
                                port,
                            },
                        )
                        .await?;
                    let (next, keys): (u64, Vec<String>) =
                        redis::from_redis_value(reply).map_err(|_| Error::Redis {
                            command: "SCAN",
                            kind: "ResponseError".to_owned(),
                        })?;
                    removed += self.unlink(&keys).await?;
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
            Ok(removed)
        })
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        message: &'a [u8],
        key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Classic pub/sub is broadcast over the cluster bus, but not from any node: a message
            // published on a node cut off from the bus reaches nobody else, and a node the
            // publisher still reaches may be one the cluster has already failed. So a message
            // goes out where its change was made: on the primary of the key's slot (it just took
            // the write), a prefix's on every primary (the walk just visited each). Each of them
            // is a node every subscriber's heartbeat proves (see `coherence::Beacons`); and a
            // publish never waits on a node unrelated to the change (a random one behind a
            // partition held a write for the whole deadline, then refused it).
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(channel).arg(message);
            match key {
                Some(key) => {
                    let route = Route::with_slot(Slot::for_key(key.as_bytes()), SlotAddr::Master);
                    self.on_node("PUBLISH", cmd, SingleNodeRoutingInfo::SpecificNode(route))
                        .await
                        .map(|_| ())
                }
                None => self
                    .guard
                    .run("PUBLISH", self.connection(), move |mut c| async move {
                        c.route_command(
                            cmd,
                            RoutingInfo::MultiNode((
                                MultipleNodeRoutingInfo::AllMasters,
                                Some(ResponsePolicy::AllSucceeded),
                            )),
                        )
                        .await
                    })
                    .await
                    .map(|_| ()),
            }
        })
    }

    fn whoami(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("ACL");
            cmd.arg("WHOAMI");
            let reply = self
                .on_node("ACL", cmd, SingleNodeRoutingInfo::Random)
                .await?;
            redis::from_redis_value(reply).map_err(|_| Error::Redis {
                command: "ACL",
                kind: "ResponseError".to_owned(),
            })
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.on_node("PING", redis::cmd("PING"), SingleNodeRoutingInfo::Random)
                .await
                .map(|_| ())
        })
    }

    fn topology(&self) -> BoxFuture<'_, Option<Topology>> {
        Box::pin(async move {
            let nodes = self.nodes().await.unwrap_or_default();
            let mut observed = Vec::with_capacity(nodes.len());
            for (host, port, role) in nodes {
                let state = self.state_of(&host, port).await;
                let mut node = NodeObservation::new(host, port, role);
                node.cluster_state = state;
                observed.push(node);
            }
            // The cluster is `ok` only when every node that answered says so.
            let states: Vec<&str> = observed
                .iter()
                .filter_map(|n| n.cluster_state.as_deref())
                .collect();
            let cluster_state = if states.is_empty() {
                None
            } else if states.iter().all(|s| *s == "ok") {
                Some("ok".to_owned())
            } else if states.contains(&"fail") {
                Some("fail".to_owned())
            } else {
                Some("unknown".to_owned())
            };
            Some(Topology {
                cluster_state,
                nodes: observed,
            })
        })
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
        self.connection
            .replace_client(|| crate::connect::cluster_client(&config))
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::{NodeRole, cluster_state, parse_slots};

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn slots_reply_names_primaries_then_replicas_once() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7001),
                node("127.0.0.1", 7004),
            ]),
        ]);
        let (nodes, complete) = parse_slots(&reply);
        assert!(complete);
        assert_eq!(
            nodes,
            vec![
                ("127.0.0.1".to_owned(), 7000, NodeRole::Primary),
                ("127.0.0.1".to_owned(), 7001, NodeRole::Primary),
                ("127.0.0.1".to_owned(), 7003, NodeRole::Replica),
                ("127.0.0.1".to_owned(), 7004, NodeRole::Replica),
            ]
        );
        assert!(parse_slots(&Value::Nil).0.is_empty());
        // A range whose primary has no address: the walk over the primaries would miss it.
        let unaddressed = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16383),
            node("", 7000),
        ])]);
        assert!(!parse_slots(&unaddressed).1);
    }

    #[test]
    fn cluster_state_is_a_known_word() {
        let info = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            cluster_state(&info("cluster_enabled:1\r\ncluster_state:ok\r\n")).as_deref(),
            Some("ok")
        );
        assert_eq!(
            cluster_state(&info("cluster_state:fail\r\n")).as_deref(),
            Some("fail")
        );
        assert_eq!(
            cluster_state(&info("cluster_state:<script>\r\n")).as_deref(),
            Some("unknown")
        );
        assert_eq!(cluster_state(&info("nothing")), None);
    }
}
