//! L1 coherence across processes: invalidations published on one Redis channel per namespace.
//!
//! Every overwrite, delete, invalidation and clear publishes what it changed on
//! `sealcache:l1:{namespace}` (classic pub/sub, which a Redis Cluster broadcasts to every node);
//! every process subscribes and drops its L1 copies. Messages hold Redis key names or prefixes
//! (HMAC-derived, already visible in Redis), never values, and can only remove entries.
//!
//! **Fail safe.** L1 is served only while the subscription is confirmed, and confirmed means
//! proved end to end: every second each process publishes a heartbeat on the channel, through an
//! ordinary connection as its invalidations go, and must hear it back on its subscription within
//! the second. On a Redis Cluster the heartbeat goes out through every node (`Beacons`): a
//! subscription is confirmed only while every node can reach it over the cluster bus. When the
//! subscription drops, stalls, or publishing is refused (or before the first
//! heartbeat came back), L1 is flushed and bypassed, the loss is counted and shown in the security
//! status; once heartbeats come back again, L1 is flushed once more (messages sent while away are
//! lost) before it is served again. A change whose own invalidation cannot be published is
//! refused to its caller (`Error::InvalidationNotPublished`; a write is undone), so no caller is
//! told of a change the other processes could not hear of.
//!
//! Ordering: a read that raced a remote write either filled L1 before the message arrived (and
//! the message removes it) or after (the removal bumped the shard's generation, so the fill of the
//! older read is dropped: see `l1`). So a copy outlives a remote change by at most the message's
//! delivery time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use sealcache_monitor::{CacheObserver, EventSource, Outcome, SecurityEvent, SecurityEventType};

use crate::connect::{RedisConfig, client, connection_config};
use crate::l1::L1;

/// The channel of `namespace`'s L1 invalidations (granted to `cache_app` by the generated ACL).
#[must_use]
pub fn invalidation_channel(namespace: &str) -> String {
    format!("sealcache:l1:{namespace}")
}

/// How often the channel is proved with a heartbeat, and how long one may take to come back.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// First wait between subscription attempts (before jitter).
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between subscription attempts before jitter; jitter adds up to as much again, so
/// no wait exceeds 2 s.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Waits between subscription attempts: doubling from [`MIN_BACKOFF`] to [`MAX_BACKOFF`], each
/// with random jitter, so the replicas that lost Redis together do not come back in step.
fn resubscribe_backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder as _;
    backon::ExponentialBuilder::new()
        .with_min_delay(MIN_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_jitter()
        .without_max_times()
        .build()
}

/// What changed, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// One Redis key.
    Key(&'a str),
    /// Every key starting with this prefix.
    Prefix(&'a str),
}

impl Change<'_> {
    /// An owned copy (for a message sent from another task).
    pub(crate) fn to_owned(&self) -> OwnedChange {
        match self {
            Change::Key(k) => OwnedChange::Key((*k).to_owned()),
            Change::Prefix(p) => OwnedChange::Prefix((*p).to_owned()),
        }
    }
}

/// An owned [`Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnedChange {
    /// One Redis key.
    Key(String),
    /// A prefix.
    Prefix(String),
}

impl OwnedChange {
    pub(crate) fn as_change(&self) -> Change<'_> {
        match self {
            OwnedChange::Key(k) => Change::Key(k),
            OwnedChange::Prefix(p) => Change::Prefix(p),
        }
    }
}

/// One process's side of the coherence protocol.
pub(crate) struct Coherence {
    channel: String,
    /// This process's id: its own messages are skipped.
    sender: String,
    subscribed: AtomicBool,
    /// The first subscription attempt has finished (until then, the first calls wait for it).
    first_attempt: tokio::sync::watch::Sender<bool>,
    started: AtomicBool,
    losses: AtomicU64,
    /// The connection settings (the password replaced by [`Coherence::set_password`]).
    config: std::sync::RwLock<RedisConfig>,
    observer: Arc<dyn CacheObserver>,
    /// Lease waiters, woken by the messages about their keys (see `wake`).
    wakers: Arc<crate::wake::Wakers>,
}

impl std::fmt::Debug for Coherence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coherence")
            .field("channel", &self.channel)
            .field("subscribed", &self.is_subscribed())
            .finish_non_exhaustive()
    }
}

/// A point-in-time view for the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoherenceState {
    pub(crate) subscribed: bool,
    pub(crate) losses: u64,
}

impl Coherence {
    pub(crate) fn new(
        namespace: &str,
        config: RedisConfig,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        let mut id = [0_u8; 8];
        // An id only needs to differ between processes; a failed OS generator falls back to the
        // process id and the time.
        if getrandom_fill(&mut id).is_err() {
            let seed = u64::from(std::process::id())
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
            id = seed.to_le_bytes();
        }
        let sender = id.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            channel: invalidation_channel(namespace),
            sender,
            subscribed: AtomicBool::new(false),
            first_attempt: tokio::sync::watch::Sender::new(false),
            started: AtomicBool::new(false),
            losses: AtomicU64::new(0),
            config: std::sync::RwLock::new(config),
            observer,
            wakers: Arc::default(),
        }
    }

    /// The lease waiters of this process (woken by messages about their keys).
    pub(crate) fn wakers(&self) -> &Arc<crate::wake::Wakers> {
        &self.wakers
    }

    /// The message that wakes the waiters of `entry_key` without removing anything (its lease was
    /// released, or its live stream moved on). Processes that predate it ignore the kind.
    pub(crate) fn wake_message(&self, entry_key: &str) -> Vec<u8> {
        format!("{}|w|{entry_key}", self.sender).into_bytes()
    }

    pub(crate) fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> CoherenceState {
        CoherenceState {
            subscribed: self.is_subscribed(),
            losses: self.losses.load(Ordering::Relaxed),
        }
    }

    /// Whether L1 may be served now. Starts the subscriber on first use (on the caller's runtime)
    /// and lets the first callers wait for its first attempt, bounded by the connect timeout.
    pub(crate) async fn l1_usable(self: &Arc<Self>, l1: &Arc<L1>) -> bool {
        if self.is_subscribed() {
            return true;
        }
        if !self.started.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(self);
            let l1 = Arc::clone(l1);
            tokio::spawn(subscriber(weak, l1));
        }
        let mut first = self.first_attempt.subscribe();
        let _ = tokio::time::timeout(
            self.config().connect_timeout + HEARTBEAT_EVERY,
            first.wait_for(|done| *done),
        )
        .await;
        self.is_subscribed()
    }

    /// The message for `change`.
    pub(crate) fn message(&self, change: &Change<'_>) -> Vec<u8> {
        let (kind, what) = match change {
            Change::Key(k) => ("k", *k),
            Change::Prefix(p) => ("p", *p),
        };
        format!("{}|{kind}|{what}", self.sender).into_bytes()
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// A publish that failed: counted, and this process's L1 is flushed and bypassed until its
    /// heartbeat gets through again (whatever stops this process's messages most likely stops
    /// the heartbeats of the others too, and each of them stops serving L1 the same way).
    pub(crate) fn publish_failed(&self, l1: &L1) {
        self.observer.security_event(
            SecurityEvent::new(SecurityEventType::ConfigWeak)
                .source(EventSource::Client)
                .outcome(Outcome::Blocked)
                .detail("L1 invalidation could not be published: the change was refused and L1 is bypassed until invalidations get through again"),
        );
        self.set_subscribed(l1, false);
    }

    /// The heartbeat message with `token` (ignored by every other process).
    fn heartbeat(&self, token: u64) -> Vec<u8> {
        format!("{}|h|{token:x}", self.sender).into_bytes()
    }

    /// Applies a received message to `l1` (own messages and malformed ones are ignored).
    fn apply(&self, l1: &L1, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = text.splitn(3, '|');
        let (Some(sender), Some(kind), Some(what)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        // Waiters are woken by every process's messages, this one's included (a waiter and the
        // holder it waits for may share a process).
        if matches!(kind, "k" | "w") {
            self.wakers.wake(what);
        }
        if sender == self.sender {
            return;
        }
        match kind {
            "k" => l1.remove(what),
            "p" => {
                l1.remove_prefix(what);
            }
            _ => {}
        }
    }

    fn set_subscribed(&self, l1: &L1, now: bool) {
        // Flushed on both edges: entries filled while unsubscribed never existed (L1 was bypassed),
        // but a copy from before the loss may have missed its invalidation.
        l1.remove_prefix("");
        let was = self.subscribed.swap(now, Ordering::AcqRel);
        if was && !now {
            self.losses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "sealcache::cache",
                channel = %self.channel,
                "L1 invalidation subscription lost: L1 flushed and bypassed until re-subscribed"
            );
        } else if !was && now {
            tracing::info!(target: "sealcache::cache", channel = %self.channel, "L1 invalidation subscription confirmed: L1 served");
        }
    }

    fn config(&self) -> RedisConfig {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Subscribes with `password` from the next (re)connection on.
    pub(crate) fn set_password(&self, password: &str) {
        self.config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .password = Some(zeroize::Zeroizing::new(password.to_owned()));
    }

    /// Whether Redis is a cluster (the heartbeat then goes out through every node).
    fn is_cluster(&self) -> bool {
        self.config().is_cluster()
    }

    /// The seeds to subscribe through: the single node, or each cluster seed in turn.
    fn endpoints(&self) -> Vec<RedisConfig> {
        let config = self.config();
        if config.cluster_nodes.is_empty() {
            return vec![config];
        }
        config
            .cluster_nodes
            .iter()
            .map(|seed| {
                let mut one = config.clone();
                one.url.clone_from(seed);
                one.cluster_nodes = Vec::new();
                one
            })
            .collect()
    }
}

fn getrandom_fill(buf: &mut [u8]) -> Result<(), ()> {
    use rand::TryRng as _;
    rand::rngs::SysRng.try_fill_bytes(buf).map_err(|_| ())
}

/// The subscriber task: subscribe, apply messages, prove the channel with a heartbeat every
/// [`HEARTBEAT_EVERY`], and start over on any failure, until the cache is dropped.
///
/// The subscription counts as confirmed (and L1 is served) only while this process's own
/// heartbeat, published on the channel through an ordinary connection as every invalidation is,
/// comes back on the subscription within [`HEARTBEAT_EVERY`]: a refused `PUBLISH` (a narrowed ACL),
/// a dead or silently stalled subscription, or a partitioned node all stop L1 within two
/// heartbeats, not only a closed connection.
async fn subscriber(weak: Weak<Coherence>, l1: Arc<L1>) {
    // Whatever ends this task (its runtime shut down, a panic), L1 is not served on a
    // subscription nobody listens to, and the next call starts a new subscriber.
    let _stopped = Stopped {
        weak: weak.clone(),
        l1: Arc::clone(&l1),
    };
    let mut backoff = resubscribe_backoff();
    let mut next_endpoint = 0_usize;
    let mut token = 0_u64;
    // A cluster's heartbeat goes out through every node (see `Beacons`); the node connections
    // outlive a re-subscription, so one slow heartbeat does not make every node reconnect.
    let mut beacons: Option<Beacons> = None;
    loop {
        let Some(this) = weak.upgrade() else { return };
        let endpoints = this.endpoints();
        let endpoint = &endpoints[next_endpoint % endpoints.len().max(1)];
        next_endpoint = next_endpoint.wrapping_add(1);
        let connected = subscribe(endpoint, &this.channel).await;
        let Some((_sink, mut stream, mut publisher)) = connected else {
            this.first_attempt.send_replace(true);
            drop(this);
            tokio::time::sleep(backoff.next().unwrap_or(MAX_BACKOFF)).await;
            continue;
        };
        let channel = this.channel.clone();
        if this.is_cluster() {
            match beacons.as_mut() {
                Some(beacons) => beacons.set_endpoint(this.config()),
                None => beacons = Some(Beacons::new(this.config())),
            }
        } else {
            beacons = None;
        }
        drop(this);
        // `pending`: the heartbeats sent and not heard back yet.
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut next_beat = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_beat {
                if !pending.is_empty() {
                    if let Some(beacons) = beacons.as_mut() {
                        beacons.forget_unheard(&pending);
                    }
                    break;
                }
                let Some(this) = weak.upgrade() else { return };
                token = token.wrapping_add(1);
                let beat = this.heartbeat(token);
                if let Some(beacons) = beacons.as_mut() {
                    beacons.set_endpoint(this.config());
                }
                drop(this);
                let sent = tokio::time::timeout(HEARTBEAT_EVERY, async {
                    match beacons.as_mut() {
                        Some(beacons) => beacons.send(&mut publisher, &channel, &beat).await,
                        None => redis::cmd("PUBLISH")
                            .arg(&channel)
                            .arg(&beat)
                            .query_async::<redis::Value>(&mut publisher)
                            .await
                            .ok()
                            .map(|_| vec![beat.clone()]),
                    }
                })
                .await;
                match sent {
                    Ok(Some(beats)) if !beats.is_empty() => pending = beats,
                    _ => break,
                }
                next_beat = tokio::time::Instant::now() + HEARTBEAT_EVERY;
            }
            match tokio::time::timeout_at(next_beat, stream.next()).await {
                Ok(Some(msg)) => {
                    let Some(this) = weak.upgrade() else { return };
                    let payload = msg.get_payload_bytes();
                    if let Some(i) = pending.iter().position(|p| p.as_slice() == payload) {
                        pending.swap_remove(i);
                        if pending.is_empty() {
                            if !this.is_subscribed() {
                                backoff = resubscribe_backoff();
                                this.set_subscribed(&l1, true);
                            }
                            this.first_attempt.send_replace(true);
                        }
                    } else {
                        this.apply(&l1, payload);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    if weak.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
        let Some(this) = weak.upgrade() else { return };
        this.set_subscribed(&l1, false);
        this.first_attempt.send_replace(true);
        drop(this);
        tokio::time::sleep(backoff.next().unwrap_or(MAX_BACKOFF)).await;
    }
}

/// Resets the subscription state when the subscriber task ends, however it ends.
struct Stopped {
    weak: Weak<Coherence>,
    l1: Arc<L1>,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(this) = self.weak.upgrade() {
            this.set_subscribed(&self.l1, false);
            this.started.store(false, Ordering::Release);
        }
    }
}

/// The heartbeat of a Redis Cluster: published through every node the subscription's node lists
/// in `CLUSTER SLOTS` (every primary, and every replica that is not failed), each copy with its
/// own token, and every copy must come back on the subscription within the second.
///
/// Why every node: a message reaches a subscriber only when the node it was published on can
/// forward it over the cluster bus to the node the subscriber listens on, and an invalidation is
/// published on the primary that made its change, which may be any of them. A heartbeat
/// published on the subscription's own node proves nothing about the bus: a subscriber on a node
/// cut off from the others (a host on the minority side of a partition, or only its cluster bus
/// ports dropped) kept hearing its own heartbeat, and kept serving L1, while the other
/// processes' invalidations never reached it (found by `cargo xtask partitions`: `isolate_bus`
/// served answers up to 2.8 s stale, `isolate_host` served L1 on the cut-off host). Proving every
/// node-to-subscription path each second bounds that to two heartbeats again. A node that cannot
/// be reached, or that cannot reach the subscription's node, keeps L1 off until the cluster has
/// failed it over and dropped it from `CLUSTER SLOTS` (a failed replica, or a primary without
/// slots, is not listed) or it is back.
struct Beacons {
    /// The subscription's settings: their scheme, credentials and TLS material reach every node
    /// (refreshed on every heartbeat, so a rotated password reaches new connections at once).
    endpoint: RedisConfig,
    /// A connection per node address, made on first use; dropped when a connect or publish on
    /// it fails or runs out of time, when its node's copy of a heartbeat did not come back, when
    /// the node is no longer listed, and (all of them) when the password changes.
    connections: std::collections::HashMap<(String, u16), redis::aio::MultiplexedConnection>,
    /// The copies of the last heartbeat, each with the node it was published on.
    sent: Vec<(Vec<u8>, (String, u16))>,
}

/// How long a heartbeat's sending may take in all (the node list, the connects it lacks, the
/// publishes), under [`HEARTBEAT_EVERY`]: a connect or publish that runs out is a failure that
/// drops its connection, so a connection that hangs (a node gone without closing it, or back on
/// another address) is made again at the next heartbeat instead of failing every one.
const SEND_WITHIN: Duration = Duration::from_millis(900);

impl Beacons {
    fn new(endpoint: RedisConfig) -> Self {
        let mut beacons = Self {
            endpoint: RedisConfig::new(""),
            connections: std::collections::HashMap::new(),
            sent: Vec::new(),
        };
        beacons.set_endpoint(endpoint);
        beacons
    }

    /// New node connections take `endpoint`'s settings; when its password is not the one the
    /// open connections were made with, they are all dropped (none keeps using a retired one).
    fn set_endpoint(&mut self, mut endpoint: RedisConfig) {
        endpoint.cluster_nodes = Vec::new();
        if endpoint.password != self.endpoint.password
            || endpoint.username != self.endpoint.username
        {
            self.connections.clear();
        }
        self.endpoint = endpoint;
    }

    /// Drops the connections of the nodes whose copies of the last heartbeat (`unheard`) did not
    /// come back: the next heartbeat connects to them again.
    /// When no copy came back, the subscription is the likelier fault: the node connections are
    /// kept.
    fn forget_unheard(&mut self, unheard: &[Vec<u8>]) {
        if unheard.len() >= self.sent.len() {
            return;
        }
        for (message, address) in &self.sent {
            if unheard.contains(message) {
                self.connections.remove(address);
            }
        }
    }

    /// Publishes `beat` (with a per-node suffix) through every node `publisher`'s node lists,
    /// within [`SEND_WITHIN`]; the messages to hear back, or `None` when a node could not be
    /// asked, connected to or published on in time.
    ///
    /// The connections it lacks are made all at once (each kept as soon as it is made), and the
    /// publishes go out all at once: one after the other, six TLS connections took most of the
    /// heartbeat's second on a compose cluster (nodes limited to half a CPU), so a
    /// re-subscription that also dropped every node connection timed out again, and every ~2 s
    /// each backend reconnected to every node.
    async fn send(
        &mut self,
        publisher: &mut redis::aio::MultiplexedConnection,
        channel: &str,
        beat: &[u8],
    ) -> Option<Vec<Vec<u8>>> {
        let deadline = tokio::time::Instant::now() + SEND_WITHIN;
        self.sent.clear();
        let slots = redis::cmd("CLUSTER").arg("SLOTS").clone();
        let reply: redis::Value = tokio::time::timeout_at(deadline, slots.query_async(publisher))
            .await
            .ok()?
            .ok()?;
        let (nodes, complete) = crate::backend::parse_slots(&reply);
        if !complete || nodes.is_empty() {
            return None;
        }
        let addresses: Vec<(String, u16)> = nodes.into_iter().map(|(h, p, _)| (h, p)).collect();
        // A node no longer listed (failed over, removed) is not published on again.
        self.connections
            .retain(|address, _| addresses.contains(address));
        let mut connecting: futures_util::stream::FuturesUnordered<_> = addresses
            .iter()
            .filter(|address| !self.connections.contains_key(*address))
            .map(|address| {
                let endpoint = self.endpoint.clone();
                let address = address.clone();
                async move {
                    let made =
                        tokio::time::timeout_at(deadline, Self::connect(&endpoint, &address))
                            .await
                            .ok()
                            .flatten();
                    (address, made)
                }
            })
            .collect();
        let mut connected = true;
        while let Some((address, made)) = connecting.next().await {
            match made {
                Some(connection) => {
                    self.connections.insert(address, connection);
                }
                None => connected = false,
            }
        }
        if !connected {
            return None;
        }
        let mut publishes = Vec::with_capacity(addresses.len());
        for (i, address) in addresses.iter().enumerate() {
            let mut message = beat.to_vec();
            message.extend_from_slice(format!(".{i}").as_bytes());
            let mut connection = self.connections.get(address)?.clone();
            let publish = redis::cmd("PUBLISH").arg(channel).arg(&message).clone();
            self.sent.push((message, address.clone()));
            publishes.push(async move {
                tokio::time::timeout_at(
                    deadline,
                    publish.query_async::<redis::Value>(&mut connection),
                )
                .await
                .is_ok_and(|published| published.is_ok())
            });
        }
        let published = futures_util::future::join_all(publishes).await;
        let mut all = true;
        for (address, ok) in addresses.iter().zip(published) {
            if !ok {
                self.connections.remove(address);
                all = false;
            }
        }
        all.then(|| self.sent.iter().map(|(m, _)| m.clone()).collect())
    }

    /// A connection to the node `host:port`, with `endpoint`'s settings and timeouts.
    async fn connect(
        endpoint: &RedisConfig,
        (host, port): &(String, u16),
    ) -> Option<redis::aio::MultiplexedConnection> {
        let mut config = endpoint.clone();
        let scheme = config.url.split_once("://").map_or("rediss", |(s, _)| s);
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        config.url = format!("{scheme}://{host}:{port}");
        let client = client(&config).ok()?;
        client
            .get_multiplexed_async_connection_with_config(&connection_config(&config))
            .await
            .ok()
    }
}

/// Connects to one endpoint, subscribes, and opens the connection the heartbeats are published
/// on (bounded by the connect timeout).
async fn subscribe(
    endpoint: &RedisConfig,
    channel: &str,
) -> Option<(
    redis::aio::PubSubSink,
    redis::aio::PubSubStream,
    redis::aio::MultiplexedConnection,
)> {
    let client = client(endpoint).ok()?;
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let publisher = client
            .get_multiplexed_async_connection_with_config(&connection_config(endpoint))
            .await?;
        let (sink, stream) = pubsub.split();
        Ok::<_, redis::RedisError>((sink, stream, publisher))
    };
    match tokio::time::timeout(endpoint.connect_timeout, attempt).await {
        Ok(Ok(connected)) => Some(connected),
        Ok(Err(e)) => {
            tracing::debug!(target: "sealcache::cache", kind = ?e.kind(), "L1 invalidation subscription failed");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sealcache_monitor::NoopObserver;

    use super::{Change, Coherence, invalidation_channel};
    use crate::connect::RedisConfig;
    use crate::l1::{L1, Limits};

    fn l1() -> L1 {
        L1::new(Limits {
            entries: 100,
            bytes: 1 << 20,
            max_entry_bytes: 1 << 16,
            max_ttl: std::time::Duration::from_secs(60),
        })
        .expect("L1 on")
    }

    #[test]
    fn messages_remove_keys_and_prefixes_from_other_processes_only() {
        let a = Coherence::new(
            "ns",
            RedisConfig::new("redis://localhost"),
            Arc::new(NoopObserver),
        );
        let b = Coherence::new(
            "ns",
            RedisConfig::new("redis://localhost"),
            Arc::new(NoopObserver),
        );
        assert_eq!(a.channel(), invalidation_channel("ns"));
        assert_eq!(a.channel(), "sealcache:l1:ns");
        let cache = l1();
        let ttl = std::time::Duration::from_secs(30);
        for k in ["ns:kv:a", "ns:kv:b", "ns:ai:op:1"] {
            cache.put(k, bytes::Bytes::from_static(b"{}"), ttl);
        }
        // Its own message: ignored.
        b.apply(&cache, &b.message(&Change::Key("ns:kv:a")));
        assert_eq!(cache.len(), 3);
        b.apply(&cache, &a.message(&Change::Key("ns:kv:a")));
        assert_eq!(cache.len(), 2);
        b.apply(&cache, &a.message(&Change::Prefix("ns:ai:")));
        assert_eq!(cache.len(), 1);
        // Malformed: ignored.
        b.apply(&cache, b"garbage");
        b.apply(&cache, &[0xff, 0xfe]);
        assert_eq!(cache.len(), 1);
    }
}
