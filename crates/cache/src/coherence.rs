//! L1 coherence across processes: invalidations published on one Redis channel per namespace.
//!
//! Every overwrite, delete, invalidation and clear publishes what it changed on
//! `sealcache:l1:{namespace}` (classic pub/sub, which a Redis Cluster broadcasts to every node);
//! every process subscribes and drops its L1 copies. Messages hold Redis key names or prefixes
//! (HMAC-derived, already visible in Redis), never values, and can only remove entries.
//!
//! **Fail safe.** L1 is served only while the subscription is confirmed. When it drops (or before
//! it is first confirmed), L1 is flushed and bypassed, the loss is counted and shown in the
//! security status; after re-subscribing, L1 is flushed once more (messages sent while away are
//! lost) before it is served again.
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

use crate::connect::{RedisConfig, client};
use crate::l1::L1;

/// The channel of `namespace`'s L1 invalidations (granted to `cache_app` by the generated ACL).
#[must_use]
pub fn invalidation_channel(namespace: &str) -> String {
    format!("sealcache:l1:{namespace}")
}

/// How often an idle subscription is checked with `PING`.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Longest wait between subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

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
        }
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
            self.config().connect_timeout + Duration::from_millis(500),
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

    /// A publish that failed: other processes may keep a stale copy until their L1 TTL.
    pub(crate) fn publish_failed(&self) {
        self.observer.security_event(
            SecurityEvent::new(SecurityEventType::ConfigWeak)
                .source(EventSource::Client)
                .outcome(Outcome::Allowed)
                .detail("L1 invalidation could not be published: other processes may serve their L1 copy until its TTL (l1_max_ttl)"),
        );
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
        self.observer.l1_entries(l1.len() as u64);
    }

    fn set_subscribed(&self, l1: &L1, now: bool) {
        // Flushed on both edges: entries filled while unsubscribed never existed (L1 was bypassed),
        // but a copy from before the loss may have missed its invalidation.
        l1.remove_prefix("");
        self.observer.l1_entries(l1.len() as u64);
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

/// The subscriber task: subscribe, apply messages, `PING` when idle, and start over on any failure,
/// until the cache is dropped.
async fn subscriber(weak: Weak<Coherence>, l1: Arc<L1>) {
    // Whatever ends this task (its runtime shut down, a panic), L1 is not served on a
    // subscription nobody listens to, and the next call starts a new subscriber.
    let _stopped = Stopped {
        weak: weak.clone(),
        l1: Arc::clone(&l1),
    };
    let mut backoff = Duration::from_millis(100);
    let mut next_endpoint = 0_usize;
    loop {
        let Some(this) = weak.upgrade() else { return };
        let endpoints = this.endpoints();
        let endpoint = &endpoints[next_endpoint % endpoints.len().max(1)];
        next_endpoint = next_endpoint.wrapping_add(1);
        let connected = subscribe(endpoint, &this.channel).await;
        let Some((mut sink, mut stream)) = connected else {
            this.first_attempt.send_replace(true);
            drop(this);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        backoff = Duration::from_millis(100);
        this.set_subscribed(&l1, true);
        this.first_attempt.send_replace(true);
        drop(this);
        loop {
            match tokio::time::timeout(PING_EVERY, stream.next()).await {
                Ok(Some(msg)) => {
                    let Some(this) = weak.upgrade() else { return };
                    this.apply(&l1, msg.get_payload_bytes());
                }
                Ok(None) => break,
                Err(_) => {
                    if weak.strong_count() == 0 {
                        return;
                    }
                    // RESP2 answers a subscribed PING with `["pong", ""]`: any reply will do.
                    let ping = tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        let Some(this) = weak.upgrade() else { return };
        this.set_subscribed(&l1, false);
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

/// Connects to one endpoint and subscribes (bounded by the connect timeout).
async fn subscribe(
    endpoint: &RedisConfig,
    channel: &str,
) -> Option<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let client = client(endpoint).ok()?;
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    };
    match tokio::time::timeout(endpoint.connect_timeout, attempt).await {
        Ok(Ok(split)) => Some(split),
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
