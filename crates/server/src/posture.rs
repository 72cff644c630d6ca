//! The live ACL, observed: `ACL LIST` as the monitor user, compared with what the generator
//! grants ([`sealcache_config_gen::audit_acl`]), as two checks of the security status.
//!
//! * `acl_users`: the users are exactly the generated ones (an extra user that can log in, any
//!   user with `nopass`, or `user default on` is `insecure`; an extra user that is `off`, a
//!   missing generated user or an unreadable line is `degraded`).
//! * `acl_rights`: no generated user may do more than its grant (`+@all`, a category, a command,
//!   key or channel pattern not granted, a selector: `insecure`; a rule this server does not know:
//!   `degraded`). `cache_admin` holds `~* &* +@all` by design.
//!
//! When the ACL was read, `default_user_disabled` comes from `user default off` rather than from
//! the anonymous `PING` (a `default` user that is `on` with a password refuses that `PING`, yet
//! anyone with the password logs in as it).
//!
//! The probe runs as `REDIS_MONITOR_USERNAME` (`cache_monitor`, which may run `ACL LIST` but not
//! `CONFIG GET`, see `docs/security-model.md`), on database 0 whatever `REDIS_URL` says (the
//! monitor user may not `SELECT`), on the node or on every cluster seed (each node has its own
//! ACL). Without monitor credentials both checks are reported unobserved, which makes a strict
//! environment `degraded`. A result is reused for [`PROBE_INTERVAL`] and one probe at a time runs,
//! shared by every caller that waits for it: the status endpoint polled hard opens at most one
//! connection per node per interval.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sealcache::{Check, CheckName, Impact, SecurityStatus};
use sealcache_config_gen::{AclAudit, TopologyKind, audit_acl};
use sealcache_settings::SecuritySettings;

/// How long an `ACL LIST` result is reused.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How long one node may take to connect and answer `ACL LIST`.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// Deviations quoted in a check's detail before "and N more".
const MAX_QUOTED_DEVIATIONS: usize = 6;

/// The posture probe: what it connects to, and its last result. Shared by the status endpoint
/// (through [`crate::AppState`]) and the reloader (which gives it new monitor credentials).
#[derive(Debug, Default)]
pub struct AclPosture {
    probe: Mutex<Arc<Probe>>,
}

/// One configuration of the probe (replaced as a whole by [`AclPosture::reconfigure`]).
#[derive(Debug)]
struct Probe {
    /// The nodes to read, or why none is read.
    targets: Result<Vec<Target>, String>,
    namespace: String,
    topology: TopologyKind,
    /// The last result and when it was taken; held while a probe runs.
    last: tokio::sync::Mutex<Option<(Instant, Arc<Vec<NodeAcl>>)>>,
}

/// One node and a client for it as the monitor user.
#[derive(Debug)]
struct Target {
    /// `host:port`.
    label: String,
    client: redis::Client,
}

/// What one node showed.
#[derive(Debug)]
struct NodeAcl {
    label: String,
    result: Result<AclAudit, String>,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            targets: Err(NO_CREDENTIALS.to_owned()),
            namespace: String::new(),
            topology: TopologyKind::SingleNode,
            last: tokio::sync::Mutex::new(None),
        }
    }
}

const NO_CREDENTIALS: &str = "no monitor credentials (REDIS_MONITOR_USERNAME and REDIS_MONITOR_PASSWORD_FILE): the live ACL is not read";

/// The `RedisConfig` of the monitor user for `url`: the monitor's credentials and the cache's TLS
/// material (`None`: no monitor credentials configured). The ACL LOG poller and the posture probe
/// both connect with it.
#[must_use]
pub fn monitor_config(settings: &SecuritySettings, url: &str) -> Option<sealcache::RedisConfig> {
    let (Some(user), Some(password)) = (
        &settings.redis_monitor_username,
        &settings.redis_monitor_password,
    ) else {
        return None;
    };
    let mut config =
        sealcache::RedisConfig::new(url).acl_user(user.clone(), password.expose_secret());
    config.ca_path = settings.redis_tls_ca_path.clone();
    config.client_cert_path = settings.redis_tls_cert_path.clone();
    config.client_key_path = settings.redis_tls_key_path.clone();
    Some(config)
}

/// The URLs of the nodes a server-side probe reads: `REDIS_URL`, or every cluster seed.
#[must_use]
pub fn node_urls(settings: &SecuritySettings) -> Vec<String> {
    if settings.redis_cluster_nodes.is_empty() {
        vec![settings.redis_url.clone()]
    } else {
        settings.redis_cluster_nodes.clone()
    }
}

/// `client` on database 0: the monitor user may not `SELECT`, and the ACL is server-wide.
fn on_database_zero(client: redis::Client) -> redis::Client {
    let info = client.get_connection_info();
    if info.redis_settings().db() == 0 {
        return client;
    }
    let settings = info.redis_settings().clone().set_db(0);
    // Opening a `ConnectionInfo` does not fail; its address keeps the TLS parameters.
    redis::Client::open(info.clone().set_redis_settings(settings)).unwrap_or(client)
}

impl Probe {
    fn from_settings(settings: &SecuritySettings) -> Self {
        let topology = if settings.redis_cluster_nodes.is_empty() {
            TopologyKind::SingleNode
        } else {
            TopologyKind::Cluster
        };
        let targets = node_urls(settings)
            .into_iter()
            .map(|url| {
                let config = monitor_config(settings, &url).ok_or(NO_CREDENTIALS)?;
                let label = config
                    .host_and_port()
                    .map_or_else(|| "redis".to_owned(), |(h, p)| format!("{h}:{p}"));
                let client = config
                    .client()
                    .map_err(|e| format!("monitor client for {label} not built: {e}"))?;
                Ok(Target {
                    label,
                    client: on_database_zero(client),
                })
            })
            .collect::<Result<Vec<_>, String>>();
        Self {
            targets,
            namespace: settings.cache_namespace.clone(),
            topology,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The result of the last [`PROBE_INTERVAL`], or a new one (one probe at a time: callers that
    /// arrive while it runs wait for it and share it).
    async fn observe(&self, targets: &[Target]) -> Arc<Vec<NodeAcl>> {
        let mut last = self.last.lock().await;
        if let Some((at, nodes)) = last.as_ref()
            && at.elapsed() < PROBE_INTERVAL
        {
            return Arc::clone(nodes);
        }
        let mut reads = tokio::task::JoinSet::new();
        for (i, target) in targets.iter().enumerate() {
            let client = target.client.clone();
            let namespace = self.namespace.clone();
            let topology = self.topology;
            reads.spawn(async move { (i, read_acl(client, &namespace, topology).await) });
        }
        let mut results: Vec<Option<Result<AclAudit, String>>> =
            targets.iter().map(|_| None).collect();
        while let Some(joined) = reads.join_next().await {
            if let Ok((i, result)) = joined
                && let Some(slot) = results.get_mut(i)
            {
                *slot = Some(result);
            }
        }
        let nodes: Vec<NodeAcl> = targets
            .iter()
            .zip(results)
            .map(|(t, r)| NodeAcl {
                label: t.label.clone(),
                result: r.unwrap_or_else(|| Err("the probe task failed".to_owned())),
            })
            .collect();
        let nodes = Arc::new(nodes);
        *last = Some((Instant::now(), Arc::clone(&nodes)));
        nodes
    }
}

/// `ACL LIST` on one node as the monitor user, compared with the grants.
async fn read_acl(
    client: redis::Client,
    namespace: &str,
    topology: TopologyKind,
) -> Result<AclAudit, String> {
    let query = async {
        // Bounded by `NODE_TIMEOUT` as a whole, not by redis-rs's 1 s connect default.
        let within = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(NODE_TIMEOUT))
            .set_response_timeout(Some(NODE_TIMEOUT));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&within)
            .await?;
        redis::cmd("ACL")
            .arg("LIST")
            .query_async::<Vec<String>>(&mut conn)
            .await
    };
    match tokio::time::timeout(NODE_TIMEOUT, query).await {
        Ok(Ok(lines)) => Ok(audit_acl(&lines, namespace, topology)),
        Ok(Err(e)) => Err(match e.code() {
            Some("NOPERM") => "the monitor user may not run ACL LIST (NOPERM): regenerate users.acl, which grants it acl|list".to_owned(),
            Some(code @ ("WRONGPASS" | "NOAUTH")) => {
                format!("the monitor credentials were refused ({code})")
            }
            // The kind only: a redis-rs error text may quote the server's reply.
            _ => format!("ACL LIST failed ({:?})", e.kind()),
        }),
        Err(_) => Err(format!(
            "ACL LIST unanswered within {} s",
            NODE_TIMEOUT.as_secs()
        )),
    }
}

impl AclPosture {
    /// A probe for `settings`: the monitor user on `REDIS_URL` or every cluster seed, compared
    /// with the grants for `CACHE_NAMESPACE` (unobserved checks when no monitor credentials are
    /// configured).
    #[must_use]
    pub fn new(settings: &SecuritySettings) -> Self {
        Self {
            probe: Mutex::new(Arc::new(Probe::from_settings(settings))),
        }
    }

    /// Takes new settings (after a reload that changed the monitor credentials); the next status
    /// probes with them.
    pub fn reconfigure(&self, settings: &SecuritySettings) {
        let probe = Arc::new(Probe::from_settings(settings));
        *self.probe.lock().unwrap_or_else(PoisonError::into_inner) = probe;
    }

    /// Adds the `acl_users` and `acl_rights` checks to `status` and, when every node's ACL was
    /// read, sets `default_user_disabled` from it.
    pub async fn apply(&self, status: &mut SecurityStatus) {
        let probe = Arc::clone(&self.probe.lock().unwrap_or_else(PoisonError::into_inner));
        let targets = match &probe.targets {
            Ok(targets) => targets,
            Err(why) => {
                status.add_check(Check::unobserved(CheckName::AclUsers, why.clone()));
                status.add_check(Check::unobserved(CheckName::AclRights, why.clone()));
                return;
            }
        };
        let nodes = probe.observe(targets).await;
        record(status, &nodes);
    }
}

/// The checks for what the nodes showed.
fn record(status: &mut SecurityStatus, nodes: &[NodeAcl]) {
    let several = nodes.len() > 1;
    let mut users = Vec::new();
    let mut rights = Vec::new();
    let mut unread = Vec::new();
    let mut read = 0_usize;
    let mut default_on = Vec::new();
    let mut default_off = 0_usize;
    for node in nodes {
        let audit = match &node.result {
            Ok(audit) => audit,
            Err(why) => {
                unread.push(format!("{}: {why}", node.label));
                continue;
            }
        };
        read += 1;
        match audit.default_user_disabled {
            Some(true) => default_off += 1,
            Some(false) => default_on.push(node.label.clone()),
            None => {}
        }
        for d in &audit.deviations {
            let text = if several {
                format!("{}: {d}", node.label)
            } else {
                d.to_string()
            };
            let list = if d.is_about_users() {
                &mut users
            } else {
                &mut rights
            };
            list.push((d.weakens(), text));
        }
    }
    let where_ = if several {
        format!("{read} of {} nodes", nodes.len())
    } else {
        "the node".to_owned()
    };
    status.add_check(check(
        CheckName::AclUsers,
        &users,
        &unread,
        &format!("ACL LIST on {where_}: only the generated users, none nopass, default off"),
    ));
    status.add_check(check(
        CheckName::AclRights,
        &rights,
        &unread,
        &format!("ACL LIST on {where_}: every generated user within its grant"),
    ));
    if !default_on.is_empty() {
        let detail = if several {
            format!("ACL LIST: user default on ({})", default_on.join(", "))
        } else {
            "ACL LIST: user default on".to_owned()
        };
        status.record_default_user_from_acl(false, &detail);
    } else if unread.is_empty() && default_off == nodes.len() && !nodes.is_empty() {
        status.record_default_user_from_acl(true, "ACL LIST: user default off");
    }
}

/// One check from its deviations (`(weakens, text)`) and the nodes that could not be read.
fn check(name: CheckName, deviations: &[(bool, String)], unread: &[String], pass: &str) -> Check {
    let quote = |items: &[&String]| -> String {
        let shown: Vec<&str> = items
            .iter()
            .take(MAX_QUOTED_DEVIATIONS)
            .map(|s| s.as_str())
            .collect();
        let more = items.len().saturating_sub(MAX_QUOTED_DEVIATIONS);
        if more > 0 {
            format!("{}; and {more} more", shown.join("; "))
        } else {
            shown.join("; ")
        }
    };
    let weakening: Vec<&String> = deviations.iter().filter(|d| d.0).map(|d| &d.1).collect();
    if !weakening.is_empty() {
        return Check::fail(name, Impact::Insecure, quote(&weakening));
    }
    let other: Vec<&String> = deviations.iter().map(|d| &d.1).collect();
    if !other.is_empty() {
        return Check::fail(name, Impact::Degraded, quote(&other));
    }
    if !unread.is_empty() {
        let unread: Vec<&String> = unread.iter().collect();
        return Check::unobserved(name, quote(&unread));
    }
    Check::pass(name, pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weakening_makes_the_check_insecure_and_unread_nodes_unobserved() {
        let weak = vec![
            (false, "user r3 is not generated (off)".to_owned()),
            (true, "user intruder has nopass".to_owned()),
        ];
        let c = check(CheckName::AclUsers, &weak, &[], "ok");
        assert_eq!(
            (c.passed, c.observed, c.impact),
            (false, true, Impact::Insecure)
        );
        assert_eq!(c.detail, "user intruder has nopass");
        let c = check(CheckName::AclUsers, &weak[..1], &[], "ok");
        assert_eq!((c.passed, c.impact), (false, Impact::Degraded));
        let unread = vec!["redis:6379: ACL LIST unanswered within 3 s".to_owned()];
        let c = check(CheckName::AclRights, &[], &unread, "ok");
        assert_eq!((c.passed, c.observed), (false, false));
        assert!(check(CheckName::AclRights, &[], &[], "ok").passed);
        let many: Vec<(bool, String)> = (0..9).map(|i| (true, format!("d{i}"))).collect();
        assert!(
            check(CheckName::AclUsers, &many, &[], "ok")
                .detail
                .ends_with("d5; and 3 more")
        );
    }

    #[test]
    fn without_monitor_credentials_nothing_is_probed() {
        let probe = Probe::default();
        assert_eq!(
            probe.targets.as_ref().err().map(String::as_str),
            Some(NO_CREDENTIALS)
        );
    }
}
