//! The checks of a stack's backends (through their HTTP API on 127.0.0.1) and of a cluster's
//! nodes (as they report themselves).

use std::path::Path;
use std::time::{Duration, Instant};

use sealcache_api::{CheckName, NodeRole, SecurityLevel, SecurityStatus};
use sealcache_config_gen::acl;

use super::{Check, check};
use crate::report::{Progress, ProgressExt as _};
use crate::runtime::request;
use crate::stack::NodeView;
use crate::status::{backend_status, failing_checks};

/// The operation the verification stores under: one no application uses (the cache's
/// per-operation TTLs, invalidations and dashboards never see it).
pub const VERIFY_OPERATION: &str = "sealcache-verify";
/// The verification entry's TTL: it expires by itself, so the check invalidates nothing (no
/// invalidation is counted) and leaves nothing in the cache.
const VERIFY_TTL_SECONDS: u64 = 2;
/// The operation of the cross-replica check (it invalidates it: nothing else is under it).
const COHERENCE_OPERATION: &str = "sealcache-verify-coherence";
/// Longest wait for a change made through one backend to be seen through another.
const COHERENCE_BOUND: Duration = Duration::from_secs(1);
/// How long backends that have just started may take to report the wanted level.
const SETTLE: Duration = Duration::from_secs(30);

/// What the stack's backends are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// The level every backend must report.
    pub(super) want: SecurityLevel,
    /// Local processes: what a compose stack's checks observe from outside (inspect, routes),
    /// the backends' own observations stand for.
    pub(super) local: bool,
    /// A Redis Cluster deployment.
    pub(super) cluster: bool,
}

/// `cluster_state_ok` and `replicas_linked`.
pub(super) fn node_checks(views: &[NodeView]) -> Vec<Check> {
    let ok = views.iter().filter(|v| v.cluster_state_ok).count();
    let primaries = views.iter().filter(|v| v.role == "primary").count();
    let replicas: Vec<&NodeView> = views.iter().filter(|v| v.role == "replica").collect();
    let linked = replicas.iter().filter(|v| v.link_up).count();
    vec![
        check(
            "cluster_state_ok",
            ok == views.len() && !views.is_empty(),
            format!(
                "{ok}/{} nodes report cluster_state:ok ({primaries} primaries, {} replicas)",
                views.len(),
                replicas.len()
            ),
        ),
        check(
            "replicas_linked",
            !replicas.is_empty() && linked == replicas.len() && primaries == replicas.len(),
            format!(
                "{linked}/{} replicas report master_link_status:up (replication over TLS as {})",
                replicas.len(),
                acl::REPLICATION_USER
            ),
        ),
    ]
}

/// Every backend's status, read again every 2 s for up to [`SETTLE`] until each reports
/// `want` (a backend that has just started may still be settling its first observations).
fn settled(
    ports: &[u16],
    key: &str,
    want: SecurityLevel,
    progress: &mut dyn Progress,
) -> Vec<(u16, Result<SecurityStatus, String>)> {
    let read = || -> Vec<(u16, Result<SecurityStatus, String>)> {
        ports
            .iter()
            .map(|p| (*p, backend_status(*p, key).map(|r| r.status)))
            .collect()
    };
    let ready =
        |s: &Result<SecurityStatus, String>| s.as_ref().is_ok_and(|s| s.security_level == want);
    let started = Instant::now();
    let mut statuses = read();
    let mut told = started;
    while started.elapsed() < SETTLE && !statuses.iter().all(|(_, s)| ready(s)) {
        if told.elapsed() >= Duration::from_secs(20) {
            told = Instant::now();
            progress.info(format!(
                "backends settling ({:.0}s): {}",
                started.elapsed().as_secs_f64(),
                statuses
                    .iter()
                    .map(|(p, s)| match s {
                        Ok(s) => format!(
                            ":{p} {}{}",
                            s.security_level,
                            failing_checks(s).chars().take(160).collect::<String>()
                        ),
                        Err(e) => format!(":{p} {e}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
        statuses = read();
    }
    statuses
}

/// The backends' checks: their status (and, for local processes, the status's transport and
/// identity checks), for a cluster their view of it and L1 coherence, end to end, and
/// cross-replica invalidation.
pub(super) fn checks(
    dir: &Path,
    ports: &[u16],
    shape: Shape,
    progress: &mut dyn Progress,
) -> Vec<Check> {
    let key = crate::runtime::api_key(dir);
    let mut checks = Vec::new();
    let statuses = settled(ports, &key, shape.want, progress);
    if let Some((port, Err(e))) = statuses.iter().find(|(_, s)| s.is_err()) {
        checks.push(check(
            "backend_security_status",
            false,
            format!("127.0.0.1:{port}: {e}"),
        ));
        return checks;
    }
    let statuses: Vec<(u16, SecurityStatus)> = statuses
        .into_iter()
        .filter_map(|(p, s)| s.ok().map(|s| (p, s)))
        .collect();
    if shape.local {
        for name in [
            CheckName::TlsNegotiated,
            CheckName::AclUser,
            CheckName::DefaultUserDisabled,
            CheckName::NetworkIsolated,
        ] {
            let mut passed = true;
            let mut details = Vec::new();
            for (port, s) in &statuses {
                let c = s.check(name);
                passed &= c.is_some_and(|c| c.passed);
                details.push(format!(
                    ":{port} {}",
                    c.map_or("not reported", |c| c.detail.as_str())
                ));
            }
            checks.push(check(name.as_str(), passed, details.join("; ")));
        }
    } else {
        let isolated = statuses
            .iter()
            .all(|(_, s)| s.network_isolated == Some(true));
        checks.push(check(
            "backend_reports_network_isolated",
            isolated,
            statuses
                .iter()
                .map(|(p, s)| {
                    format!(
                        ":{p} {}",
                        s.check(CheckName::NetworkIsolated)
                            .map_or("not reported", |c| c.detail.as_str())
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let levels: Vec<String> = statuses
        .iter()
        .map(|(p, s)| format!(":{p} {}{}", s.security_level, failing_checks(s)))
        .collect();
    checks.push(check(
        "backend_security_level",
        statuses.iter().all(|(_, s)| s.security_level == shape.want),
        format!("security_level {} (want {})", levels.join(", "), shape.want),
    ));
    if shape.cluster {
        checks.extend(cluster_views(&statuses));
    }
    if let Some(first) = ports.first() {
        checks.push(end_to_end(*first, &key));
    }
    if let [a, b, ..] = ports {
        checks.push(cross_replica_invalidation(*a, *b, &key));
    }
    checks
}

/// `backends_see_cluster` and `l1_coherence_subscribed`.
fn cluster_views(statuses: &[(u16, SecurityStatus)]) -> Vec<Check> {
    let mut sees = true;
    let mut detail = Vec::new();
    for (port, s) in statuses {
        let (state, nodes) = s.cluster.as_ref().map_or((None, &[][..]), |c| {
            (c.cluster_state.as_deref(), &c.nodes[..])
        });
        let tls = nodes.iter().all(|n| n.tls_version.is_some());
        let acl = nodes.iter().all(|n| n.default_user_disabled == Some(true));
        let primaries = nodes.iter().filter(|n| n.role == NodeRole::Primary).count();
        sees &= state == Some("ok") && !nodes.is_empty() && tls && acl;
        detail.push(format!(
            ":{port} cluster_state={} nodes={} (primaries {primaries}) tls={} default_user_disabled={}",
            state.unwrap_or("none"),
            nodes.len(),
            nodes
                .first()
                .and_then(|n| n.tls_version.as_deref())
                .unwrap_or("none"),
            acl
        ));
    }
    // Subscribed, and never lost since start: an idle subscription must stay confirmed.
    let subscribed = statuses.iter().all(|(_, s)| {
        s.l1_coherence
            .is_some_and(|c| c.subscribed && c.losses == 0)
    });
    vec![
        check("backends_see_cluster", sees, detail.join("; ")),
        check(
            "l1_coherence_subscribed",
            subscribed,
            statuses
                .iter()
                .map(|(p, s)| match s.l1_coherence {
                    Some(c) => format!(":{p} subscribed={} losses={}", c.subscribed, c.losses),
                    None => format!(":{p} no L1 coherence reported"),
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ]
}

/// A text no other run uses.
fn unique_text(what: &str) -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sealcache {what} {}-{nonce}", std::process::id())
}

/// Stores a throw-away entry through the API on 127.0.0.1:`port` (operation
/// [`VERIFY_OPERATION`], a text unique to this run, a TTL of 2 s), looks it up again, then waits
/// until it has expired: the check leaves nothing in the cache it verified and changes no counter
/// but lookups and stores.
#[must_use]
pub fn end_to_end(port: u16, key: &str) -> Check {
    let text = unique_text("verification");
    let store = serde_json::json!({
        "text": text,
        "operation": VERIFY_OPERATION,
        "response": {"answer": "ok"},
        "ttl_seconds": VERIFY_TTL_SECONDS,
    })
    .to_string();
    let lookup = serde_json::json!({"text": text, "operation": VERIFY_OPERATION}).to_string();
    let hit = |body: &str| body.contains("\"hit\":true");
    let stored = request(port, "PUT", "/v1/cache/entries", Some(key), Some(&store)).map(|(s, _)| s);
    let found = request(port, "POST", "/v1/cache/lookup", Some(key), Some(&lookup))
        .map(|(s, b)| s == 200 && hit(&b));
    let served = matches!(stored, Ok(201)) && matches!(found, Ok(true));
    // Then gone: every tier (L1 keeps an entry no longer than its Redis TTL) misses it.
    let deadline = Instant::now() + Duration::from_secs(VERIFY_TTL_SECONDS + 8);
    let mut gone = false;
    while served && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        if let Ok((200, body)) = request(port, "POST", "/v1/cache/lookup", Some(key), Some(&lookup))
            && !hit(&body)
        {
            gone = true;
            break;
        }
    }
    check(
        "store_and_lookup_end_to_end",
        served && gone,
        format!(
            "store {}, lookup hit {}; the entry (operation {VERIFY_OPERATION}, TTL {VERIFY_TTL_SECONDS} s) {}",
            shown(&stored),
            shown(&found),
            if gone {
                "expired: nothing left in the cache"
            } else {
                "did not expire"
            }
        ),
    )
}

/// A result as the check's detail shows it.
fn shown<T: std::fmt::Debug>(r: &crate::error::Result<T>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Through backend A: store v1; through B: read it (B's L1 now holds it); through A: overwrite
/// with v2, then invalidate the operation. B must serve v2, then a miss, each within
/// [`COHERENCE_BOUND`].
fn cross_replica_invalidation(a: u16, b: u16, key: &str) -> Check {
    match coherence(a, b, key) {
        Ok(detail) => check("cross_replica_invalidation", true, detail),
        Err(detail) => check("cross_replica_invalidation", false, detail),
    }
}

fn coherence(a: u16, b: u16, key: &str) -> Result<String, String> {
    let text = unique_text("cross-replica invalidation");
    let operation = COHERENCE_OPERATION;
    let store = |v: u32| -> Result<(), String> {
        let body = serde_json::json!({"text": text, "operation": operation, "response": {"v": v}})
            .to_string();
        match request(a, "PUT", "/v1/cache/entries", Some(key), Some(&body)) {
            Ok((201, _)) => Ok(()),
            Ok((status, _)) => Err(format!("store through :{a} answered {status}")),
            Err(e) => Err(e.to_string()),
        }
    };
    let lookup = || -> Result<String, String> {
        let body = serde_json::json!({"text": text, "operation": operation}).to_string();
        match request(b, "POST", "/v1/cache/lookup", Some(key), Some(&body)) {
            Ok((200, answer)) => Ok(answer),
            Ok((status, _)) => Err(format!("lookup through :{b} answered {status}")),
            Err(e) => Err(e.to_string()),
        }
    };
    let wait_for = |want: &str| -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            if lookup()?.contains(want) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > COHERENCE_BOUND {
                return Err(format!(
                    ":{b} still did not serve `{want}` {} ms after the change through :{a}",
                    COHERENCE_BOUND.as_millis()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    store(1)?;
    // Read twice through B: the second read is served from B's L1.
    for _ in 0..2 {
        if !lookup()?.contains(r#""v":1"#) {
            return Err(format!(":{b} does not serve the entry stored through :{a}"));
        }
    }
    store(2)?;
    let overwrite = wait_for(r#""v":2"#)?;
    let body = serde_json::json!({ "operation": operation }).to_string();
    match request(
        a,
        "POST",
        "/internal/cache/invalidate",
        Some(key),
        Some(&body),
    ) {
        Ok((200, _)) => {}
        Ok((status, answer)) => {
            return Err(format!(
                "invalidate through :{a} answered {status}: {answer}"
            ));
        }
        Err(e) => return Err(e.to_string()),
    }
    let invalidation = wait_for(r#""hit":false"#)?;
    Ok(format!(
        "stored through :{a}, read through :{b} (L1 filled); overwrite seen through :{b} after {} ms, invalidation after {} ms (bound {} ms)",
        overwrite.as_millis(),
        invalidation.as_millis(),
        COHERENCE_BOUND.as_millis()
    ))
}
