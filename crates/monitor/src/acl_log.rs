//! Server-side events: Redis `ACL LOG` entries become `auth_failed` / `acl_denied` events, every
//! failure counted exactly once (feature `acl-log`).
//!
//! # What Redis reports
//!
//! `ACL LOG 128` returns the newest entries first. Each has `count`, `reason` (`auth`, `command`,
//! `key`, `channel`), `context` (`toplevel`, `multi`, `lua`, `module`), `object`, `username`,
//! `age-seconds` and `client-info`; Redis 7.2+ adds `entry-id`, `timestamp-created` and
//! `timestamp-last-updated`. Redis folds a failure into an existing entry (count + 1, moved to the
//! head) when reason, context, object and username match and the entry was updated less than 60 s
//! before, looking at the 10 newest entries only; otherwise it adds an entry at the head and drops
//! the oldest beyond `acllog-max-len` (128 by default). `ACL LOG RESET` and a restart empty the
//! log; `ACL LOAD` keeps it (but disconnects the poller's connection).
//!
//! # How entries are recognised
//!
//! * **Redis 7.2+**: by `(entry-id, timestamp-created)`. The id alone is not enough: its counter
//!   starts again after a restart, but the creation time (ms) does not repeat. An entry seen before
//!   adds its count's increase; an entry never seen adds its whole count. This is exact across
//!   resets, restarts and trimming, with no guessing.
//! * **Older servers** (Debian's 7.0) give no entry id, and an entry's only time, `age-seconds`,
//!   moves on every update. The poller therefore sums the counts per identity
//!   `(reason, context, object, username)` and adds each identity's increase. Counts only grow,
//!   and the log only gets shorter through a reset, so the log **was reset** when
//!   - the server's `run_id` (from `INFO server`) changed: a restart, or
//!   - the log holds fewer entries than at the previous poll, or
//!   - it holds fewer than 128 entries (so Redis has trimmed nothing, with the default
//!     `acllog-max-len`) and an identity's total went down or an identity vanished.
//!
//!   After a reset every entry present is new and counts in full (not only what exceeds the
//!   old total). In a full log (128 entries) a lower total can also be trimming, so only that
//!   identity's entries count in full. Known limits: an `ACL LOG RESET` followed, before the next
//!   poll, by at least as many failures of every identity as before cannot be told from growth
//!   and counts only the increase (a restart is always detected while the monitor user may run
//!   `INFO`); with `acllog-max-len` lowered below 128, trimming can be taken for a reset and
//!   counted again. Both are inherent to what Redis < 7.2 reports.
//!
//! # Baseline, reconnects, records
//!
//! The first successful poll ever only sets the baseline: failures from before the poller started
//! are not replayed. The baseline lives in the poller, not in the connection, so a reconnect
//! neither re-baselines nor counts anything twice. Each poll records **one** event per identity
//! with the whole increase as its count ([`SecurityEvent::count()`]): a burst of 20 000 failed
//! logins adds 20 000 to the totals and writes one log record (`ACL LOG x20000 reason=auth ...`).
//! Key and channel names become a [`key_tag`]; usernames and other objects are reduced to 32
//! printable characters. No password ever reaches an event.
//!
//! Run it as the `cache_monitor` user, which may read `ACL LOG` and `INFO` and nothing else, with
//! [`AclLogPoller::run_with_client`]: it owns its connection, uses database 0 whatever the URL
//! says (the monitor user may not `SELECT`), bounds every connect and query with
//! [`AclLogPoller::QUERY_TIMEOUT`], and reconnects after any error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Value};

use crate::event::{EventSource, Outcome, SecurityEvent, SecurityEventType, key_tag};
use crate::observer::CacheObserver;

/// Entries requested per poll (Redis keeps 128 by default).
const LOG_LEN: usize = 128;

/// The poller's failure: connecting, or the `INFO` / `ACL LOG` query, failed or timed out.
#[derive(Debug)]
pub struct AclLogError(Failure);

#[derive(Debug)]
enum Failure {
    Redis(redis::RedisError),
    Timeout(Duration),
}

impl std::fmt::Display for AclLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Failure::Redis(e) => write!(f, "ACL LOG query failed ({:?})", e.kind()),
            Failure::Timeout(after) => write!(f, "ACL LOG query timed out after {after:?}"),
        }
    }
}

impl std::error::Error for AclLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Failure::Redis(e) => Some(e),
            Failure::Timeout(_) => None,
        }
    }
}

impl From<redis::RedisError> for AclLogError {
    fn from(e: redis::RedisError) -> Self {
        Self(Failure::Redis(e))
    }
}

/// What identifies an entry on every Redis version (and what Redis groups by).
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Identity {
    reason: String,
    context: String,
    object: String,
    username: String,
}

#[derive(Debug, Default)]
struct Entry {
    count: u64,
    identity: Identity,
    entry_id: Option<i64>,
    created: Option<i64>,
}

impl Entry {
    /// `(entry-id, timestamp-created)` on Redis 7.2+.
    fn key(&self) -> Option<(i64, i64)> {
        Some((self.entry_id?, self.created?))
    }
}

/// Polls `ACL LOG` and reports new failures, each counted once (see the module docs for how
/// entries are recognised, resets detected and the baseline kept).
#[derive(Debug, Default)]
pub struct AclLogPoller {
    baseline_done: bool,
    /// The server's `run_id` at the previous poll (a change is a restart).
    run_id: Option<String>,
    /// `INFO` was refused (an old ACL file): restarts are detected from the log alone.
    info_refused: bool,
    /// Entries in the log at the previous poll.
    entries_seen: usize,
    /// Redis 7.2+: count per `(entry-id, timestamp-created)`.
    by_key: HashMap<(i64, i64), u64>,
    /// Older servers: count per identity, summed over the log.
    by_identity: HashMap<Identity, u64>,
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        Value::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).parse().ok(),
    }
}

fn parse_entry(v: &Value) -> Option<Entry> {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        Value::Map(map) => map.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    let mut e = Entry::default();
    for (k, v) in pairs {
        match text(k).as_str() {
            "count" => e.count = number(v).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            "reason" => e.identity.reason = text(v),
            "context" => e.identity.context = text(v),
            "object" => e.identity.object = text(v),
            "username" => e.identity.username = text(v),
            "entry-id" => e.entry_id = number(v),
            "timestamp-created" => e.created = number(v),
            _ => {}
        }
    }
    Some(e)
}

/// The `run_id` line of an `INFO server` reply.
fn run_id(info: &Value) -> Option<String> {
    text(info)
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// The same client on database 0: the monitor user may not `SELECT`, and `ACL LOG` is
/// server-wide anyway.
fn on_database_zero(client: Client) -> Client {
    let info = client.get_connection_info();
    if info.redis_settings().db() == 0 {
        return client;
    }
    let settings = info.redis_settings().clone().set_db(0);
    // Opening a `ConnectionInfo` cannot fail; TLS parameters live in its address and are kept.
    Client::open(info.clone().set_redis_settings(settings)).unwrap_or(client)
}

impl AclLogPoller {
    /// How long connecting, and each poll's queries, may take before the connection is dropped
    /// and the poll counted as failed.
    pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

    /// A poller whose first poll sets the baseline.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queries `INFO server` (for the `run_id`) and `ACL LOG 128` on `conn`, reports every new
    /// failure to `sink` (one event per identity, carrying the count) and returns how many
    /// failures it reported. The first successful poll only sets the baseline and returns 0.
    ///
    /// Cancelling it (a timeout) leaves the poller as it was: its state changes only after both
    /// replies have arrived.
    ///
    /// # Errors
    /// [`AclLogError`] when a query fails (count it as unavailable; reconnect and try again).
    pub async fn poll<C: ConnectionLike + Send>(
        &mut self,
        conn: &mut C,
        sink: &dyn CacheObserver,
    ) -> Result<u64, AclLogError> {
        let run_id = self.query_run_id(conn).await?;
        let reply: Value = redis::cmd("ACL")
            .arg("LOG")
            .arg(LOG_LEN)
            .query_async(conn)
            .await?;
        let entries: Vec<Entry> = match &reply {
            Value::Array(items) => items.iter().filter_map(parse_entry).collect(),
            _ => Vec::new(),
        };
        let mut reported = 0;
        for (identity, count) in self.ingest(run_id, &entries) {
            sink.security_event(event_for(&identity, count));
            reported += count;
        }
        Ok(reported)
    }

    /// The server's `run_id`, or `None` when the monitor user may not run `INFO` (asked once).
    async fn query_run_id<C: ConnectionLike + Send>(
        &mut self,
        conn: &mut C,
    ) -> Result<Option<String>, AclLogError> {
        if self.info_refused {
            return Ok(None);
        }
        match redis::cmd("INFO")
            .arg("server")
            .query_async::<Value>(conn)
            .await
        {
            Ok(info) => Ok(run_id(&info)),
            Err(e) if e.code() == Some("NOPERM") => {
                self.info_refused = true;
                tracing::warn!(
                    target: "sealcache::security",
                    "the ACL LOG poller may not run INFO: Redis restarts are detected from the log alone"
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Compares `entries` with the previous poll and returns the increase per identity (only
    /// identities that increased), then makes `entries` the new reference.
    fn ingest(&mut self, run_id: Option<String>, entries: &[Entry]) -> BTreeMap<Identity, u64> {
        let restarted = matches!((&self.run_id, &run_id), (Some(old), Some(new)) if old != new);
        if run_id.is_some() {
            self.run_id = run_id;
        }
        let mut by_key = HashMap::new();
        let mut by_identity: HashMap<Identity, u64> = HashMap::new();
        for e in entries {
            match e.key() {
                Some(key) => {
                    by_key.insert(key, e.count);
                }
                None => {
                    let total = by_identity.entry(e.identity.clone()).or_insert(0);
                    *total = total.saturating_add(e.count);
                }
            }
        }
        let mut increases: BTreeMap<Identity, u64> = BTreeMap::new();
        if self.baseline_done {
            // Redis 7.2+: exact per entry, whatever happened to the log.
            for e in entries {
                if let Some(key) = e.key() {
                    let before = self.by_key.get(&key).copied().unwrap_or(0);
                    *increases.entry(e.identity.clone()).or_insert(0) +=
                        e.count.saturating_sub(before);
                }
            }
            // Older servers: per identity, with reset detection.
            let went_down = self
                .by_identity
                .iter()
                .any(|(id, before)| by_identity.get(id).is_none_or(|now| now < before));
            let reset = restarted
                || entries.len() < self.entries_seen
                || (entries.len() < LOG_LEN && went_down);
            if reset {
                tracing::info!(
                    target: "sealcache::security",
                    restarted,
                    "the ACL LOG was reset: every entry present counts as new"
                );
            }
            for (id, &total) in &by_identity {
                let increase = match self.by_identity.get(id) {
                    Some(&before) if !reset && total >= before => total - before,
                    // New identity, a reset, or (in a full log) this identity's entries trimmed
                    // or reset: what is present is new.
                    _ => total,
                };
                *increases.entry(id.clone()).or_insert(0) += increase;
            }
        }
        self.baseline_done = true;
        self.entries_seen = entries.len();
        self.by_key = by_key;
        self.by_identity = by_identity;
        increases.retain(|_, n| *n > 0);
        increases
    }

    /// Polls every `every` for as long as the task runs (drop or abort it to stop), reporting to
    /// `sink`. The poller owns its connection, made from `client`:
    ///
    /// * **database 0** whatever `client`'s URL says: the monitor user may not `SELECT`, and
    ///   `ACL LOG` is server-wide (TLS settings and credentials are kept);
    /// * connecting and each poll are bounded by [`AclLogPoller::QUERY_TIMEOUT`];
    /// * after **any** error (Redis restarted, `ACL LOAD` closed the connection, a network blip, a
    ///   timeout) the connection is dropped and a new one made at the next poll. The baseline
    ///   and the reference counts are the poller's, so a reconnect re-baselines nothing and counts
    ///   nothing twice; a restart is recognised by the server's `run_id` and what the log holds
    ///   then counts as new.
    ///
    /// The first failure after a success logs one warning, the recovery one info record.
    pub async fn run_with_client(
        mut self,
        client: Client,
        sink: Arc<dyn CacheObserver>,
        every: Duration,
    ) {
        let client = on_database_zero(client);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Self::QUERY_TIMEOUT))
            .set_response_timeout(Some(Self::QUERY_TIMEOUT));
        let mut conn: Option<MultiplexedConnection> = None;
        let mut failing = false;
        loop {
            match self
                .poll_connected(&client, &config, &mut conn, sink.as_ref())
                .await
            {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(target: "sealcache::security", "ACL LOG poller reconnected");
                }
                Ok(_) => {}
                Err(err) => {
                    conn = None;
                    if failing {
                        tracing::debug!(target: "sealcache::security", error = %err, "ACL LOG poll failed again");
                    } else {
                        failing = true;
                        tracing::warn!(target: "sealcache::security", error = %err, "ACL LOG poll failed; reconnecting");
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// One poll on `conn`, connecting first when there is none.
    async fn poll_connected(
        &mut self,
        client: &Client,
        config: &AsyncConnectionConfig,
        conn: &mut Option<MultiplexedConnection>,
        sink: &dyn CacheObserver,
    ) -> Result<u64, AclLogError> {
        let timeout = Self::QUERY_TIMEOUT;
        let conn = match conn {
            Some(conn) => conn,
            None => conn.insert(
                tokio::time::timeout(
                    timeout,
                    client.get_multiplexed_async_connection_with_config(config),
                )
                .await
                .map_err(|_| AclLogError(Failure::Timeout(timeout)))??,
            ),
        };
        tokio::time::timeout(timeout, self.poll(conn, sink))
            .await
            .map_err(|_| AclLogError(Failure::Timeout(timeout)))?
    }
}

/// Keeps `max` characters of `s` that pass `keep`.
fn sanitised(s: &str, keep: impl Fn(char) -> bool, max: usize) -> String {
    s.chars().filter(|c| keep(*c)).take(max).collect()
}

fn event_for(id: &Identity, count: u64) -> SecurityEvent {
    let kind = if id.reason == "auth" {
        SecurityEventType::AuthFailed
    } else {
        SecurityEventType::AclDenied
    };
    // `object` is a key or channel name for those reasons: tag it, never copy it.
    let object = match id.reason.as_str() {
        "key" | "channel" => format!("#{}", key_tag(&id.object)),
        _ => sanitised(&id.object, |c| c.is_ascii_alphanumeric() || c == '|', 32),
    };
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let user = sanitised(&id.username, |c| c.is_ascii_graphic(), 32);
    SecurityEvent::new(kind)
        .source(EventSource::RedisServer)
        .outcome(Outcome::Blocked)
        .count(count)
        .detail(format!(
            "ACL LOG x{count} reason={} context={} object={object} user={user}",
            sanitised(&id.reason, word, 16),
            sanitised(&id.context, word, 16),
        ))
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(user: &str, count: u64, key: Option<(i64, i64)>) -> Entry {
        Entry {
            count,
            identity: Identity {
                reason: "auth".into(),
                context: "toplevel".into(),
                object: "AUTH".into(),
                username: user.into(),
            },
            entry_id: key.map(|k| k.0),
            created: key.map(|k| k.1),
        }
    }

    fn total(increases: &BTreeMap<Identity, u64>) -> u64 {
        increases.values().sum()
    }

    #[test]
    fn keyed_entries_are_exact_across_a_reset() {
        let mut p = AclLogPoller::new();
        assert!(p.ingest(None, &[entry("a", 5, Some((0, 100)))]).is_empty());
        // Grows by 3.
        assert_eq!(total(&p.ingest(None, &[entry("a", 8, Some((0, 100)))])), 3);
        // Reset, then more failures than before: a new entry, counted whole.
        assert_eq!(total(&p.ingest(None, &[entry("a", 9, Some((1, 200)))])), 9);
        // A restart restarts the ids; the creation time tells the entries apart.
        let after = p.ingest(Some("r2".into()), &[entry("a", 9, Some((1, 300)))]);
        assert_eq!(total(&after), 9);
        // Nothing new.
        assert!(
            p.ingest(Some("r2".into()), &[entry("a", 9, Some((1, 300)))])
                .is_empty()
        );
    }

    #[test]
    fn unkeyed_totals_detect_resets_and_restarts() {
        let mut p = AclLogPoller::new();
        assert!(
            p.ingest(Some("r1".into()), &[entry("a", 5, None)])
                .is_empty()
        );
        assert_eq!(
            total(&p.ingest(Some("r1".into()), &[entry("a", 7, None)])),
            2
        );
        // Reset, fewer failures: a lower total counts whole.
        assert_eq!(
            total(&p.ingest(Some("r1".into()), &[entry("a", 3, None)])),
            3
        );
        // Restart, more failures than before: the run_id tells.
        assert_eq!(
            total(&p.ingest(Some("r2".into()), &[entry("a", 4, None)])),
            4
        );
        // Reset: "a" vanished, "b" appears with a total above a's old one: all of it is new.
        assert_eq!(
            total(&p.ingest(Some("r2".into()), &[entry("b", 6, None)])),
            6
        );
        // A new identity counts whole; a known one its increase (none).
        assert!(
            p.ingest(
                Some("r2".into()),
                &[entry("c", 2, None), entry("b", 6, None)]
            )
            .values()
            .eq([&2])
        );
        // The log got shorter: a reset, even though "c" kept its total.
        assert_eq!(
            total(&p.ingest(Some("r2".into()), &[entry("c", 2, None)])),
            2
        );
    }

    #[test]
    fn a_full_log_treats_a_lower_total_as_that_identity_only() {
        let mut p = AclLogPoller::new();
        let mut log: Vec<Entry> = (0..LOG_LEN as u64)
            .map(|i| entry(&format!("u{i}"), 1, None))
            .collect();
        assert!(p.ingest(None, &log).is_empty());
        // One new identity pushes the oldest out: only the new one counts.
        log.pop();
        log.insert(0, entry("new", 2, None));
        let increases = p.ingest(None, &log);
        assert_eq!(total(&increases), 2);
        assert_eq!(increases.keys().next().unwrap().username, "new");
    }

    #[test]
    fn details_hold_no_secret_and_carry_the_count() {
        let id = Identity {
            reason: "key".into(),
            context: "toplevel".into(),
            object: "ns:v1:llm:0123456789abcdef0123".into(),
            username: "cache app\npw".into(),
        };
        let e = event_for(&id, 20_000);
        assert_eq!(e.count, 20_000);
        assert_eq!(e.kind, SecurityEventType::AclDenied);
        assert!(
            e.detail.starts_with("ACL LOG x20000 reason=key"),
            "{}",
            e.detail
        );
        assert!(e.detail.contains("object=#0123456789ab"), "{}", e.detail);
        assert!(e.detail.contains("user=cacheapppw"), "{}", e.detail);
    }

    #[test]
    fn run_id_is_read_from_info() {
        let info =
            Value::BulkString(b"# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n".to_vec());
        assert_eq!(run_id(&info).as_deref(), Some("abc123"));
        assert_eq!(run_id(&Value::Nil), None);
    }
}
