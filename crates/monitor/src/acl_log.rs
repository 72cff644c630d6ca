//! Server-side events: Redis `ACL LOG` entries become `auth_failed` / `acl_denied` events, exactly
//! once each (feature `acl-log`).
//!
//! Redis groups repeated failures into one entry and raises its `count` (within 60 s); Redis 7.2+
//! also gives each entry an `entry-id`. The poller therefore counts **increments**: per `entry-id`
//! when present, otherwise per identity `(reason, context, object, username)` summed over the log.
//! The first poll only sets the baseline (entries from before the poller started are not
//! replayed; a restart does not count them twice). Run it as the `cache_monitor` user, which may
//! read `ACL LOG` and nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionLike;

use crate::event::{EventSource, Outcome, SecurityEvent, SecurityEventType, key_tag};
use crate::observer::CacheObserver;

/// Entries requested per poll (Redis keeps 128 by default).
const LOG_LEN: usize = 128;
/// Events emitted per poll at most (a flood still counts, bounded).
const MAX_EVENTS_PER_POLL: u64 = 10_000;

/// The poller's failure: the `ACL LOG` query failed.
#[derive(Debug)]
pub struct AclLogError(redis::RedisError);

impl std::fmt::Display for AclLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ACL LOG query failed ({:?})", self.0.kind())
    }
}

impl std::error::Error for AclLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[derive(Debug, Default)]
struct Entry {
    count: u64,
    reason: String,
    context: String,
    object: String,
    username: String,
    entry_id: Option<i64>,
}

type Identity = (String, String, String, String);

/// Polls `ACL LOG` and reports new entries.
#[derive(Debug, Default)]
pub struct AclLogPoller {
    baseline_done: bool,
    by_id: HashMap<i64, u64>,
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
            "reason" => e.reason = text(v),
            "context" => e.context = text(v),
            "object" => e.object = text(v),
            "username" => e.username = text(v),
            "entry-id" => e.entry_id = number(v),
            _ => {}
        }
    }
    Some(e)
}

impl AclLogPoller {
    /// A poller whose first poll sets the baseline.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queries `ACL LOG`, reports every new failure to `sink` and returns how many it reported.
    ///
    /// # Errors
    /// [`AclLogError`] when the query fails (count it as unavailable; try again later).
    pub async fn poll<C: ConnectionLike + Send>(
        &mut self,
        conn: &mut C,
        sink: &dyn CacheObserver,
    ) -> Result<u64, AclLogError> {
        let reply: Value = redis::cmd("ACL")
            .arg("LOG")
            .arg(LOG_LEN)
            .query_async(conn)
            .await
            .map_err(AclLogError)?;
        let entries: Vec<Entry> = match &reply {
            Value::Array(items) => items.iter().filter_map(parse_entry).collect(),
            _ => Vec::new(),
        };
        let mut new_events: Vec<(u64, &Entry)> = Vec::new();
        let mut identity_totals: HashMap<Identity, (u64, &Entry)> = HashMap::new();
        for e in &entries {
            if let Some(id) = e.entry_id {
                let before = self.by_id.insert(id, e.count).unwrap_or(0);
                new_events.push((e.count.saturating_sub(before), e));
            } else {
                let key = (
                    e.reason.clone(),
                    e.context.clone(),
                    e.object.clone(),
                    e.username.clone(),
                );
                identity_totals.entry(key).or_insert((0, e)).0 += e.count;
            }
        }
        for (key, (total, e)) in identity_totals {
            let before = self.by_identity.insert(key, total).unwrap_or(0);
            // Entries can fall off the end of the log; a lower total is not new activity.
            new_events.push((total.saturating_sub(before), e));
        }
        if !self.baseline_done {
            self.baseline_done = true;
            return Ok(0);
        }
        let mut reported = 0;
        for (delta, e) in new_events {
            for _ in 0..delta.min(MAX_EVENTS_PER_POLL - reported.min(MAX_EVENTS_PER_POLL)) {
                sink.security_event(event_for(e));
                reported += 1;
            }
        }
        Ok(reported)
    }

    /// Polls every `every` until the task is dropped, reporting query failures as warnings.
    pub async fn run<C: ConnectionLike + Send>(
        mut self,
        mut conn: C,
        sink: Arc<dyn CacheObserver>,
        every: Duration,
    ) {
        loop {
            if let Err(err) = self.poll(&mut conn, sink.as_ref()).await {
                tracing::warn!(target: "sealcache::security", error = %err, "ACL LOG poll failed");
            }
            tokio::time::sleep(every).await;
        }
    }
}

fn event_for(e: &Entry) -> SecurityEvent {
    let kind = if e.reason == "auth" {
        SecurityEventType::AuthFailed
    } else {
        SecurityEventType::AclDenied
    };
    // `object` is a key or channel name for those reasons: tag it, never copy it.
    let object = match e.reason.as_str() {
        "key" | "channel" => format!("#{}", key_tag(&e.object)),
        _ => e
            .object
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '|')
            .take(32)
            .collect(),
    };
    let user: String = e
        .username
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    SecurityEvent::new(kind)
        .source(EventSource::RedisServer)
        .outcome(Outcome::Blocked)
        .detail(format!(
            "ACL LOG reason={} context={} object={object} user={user}",
            e.reason, e.context
        ))
}
