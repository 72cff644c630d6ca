//! What each Redis node of a running stack reports of itself (`ROLE`, `CLUSTER INFO`,
//! `INFO replication`, as `cache_admin`), for `status` and the cluster's formation checks.

use std::path::Path;

use sealcache_config_gen::cluster_dir::ClusterRecord;
use sealcache_config_gen::layout;

use super::targets::{Redis, admin};

/// One node as it reports itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct NodeView {
    /// Where it is: `127.0.0.1:PORT` (local) or `SERVICE:6379` (compose).
    pub address: String,
    /// `primary`, `replica`, or `down` (no answer as `cache_admin`).
    pub role: &'static str,
    /// It reports `cluster_state:ok`.
    #[serde(skip)]
    pub cluster_state_ok: bool,
    /// `cluster_known_nodes`.
    #[serde(skip)]
    pub known_nodes: u32,
    /// A replica whose link to its primary is up.
    #[serde(skip)]
    pub link_up: bool,
}

/// Where `redis` is, as a person reads it.
#[must_use]
pub fn address(redis: &Redis) -> String {
    match redis {
        Redis::Local { port } => format!("127.0.0.1:{port}"),
        Redis::Container { service, .. } => format!("{service}:{}", layout::REDIS_PORT),
        Redis::Network { host, port } => format!("{host}:{port}"),
    }
}

/// Asks `redis` (a node of the deployment in `dir`) what it is; a node that does not answer is
/// `down`.
#[must_use]
pub fn node_view(dir: &Path, redis: &Redis) -> NodeView {
    let text = admin(dir, redis, "ROLE\nCLUSTER INFO\nINFO replication").unwrap_or_default();
    view_of(address(redis), &text)
}

/// The view of a node's replies `text` (`ROLE`, then `CLUSTER INFO` and `INFO replication`).
fn view_of(address: String, text: &str) -> NodeView {
    let role = match text.lines().next().map(str::trim) {
        Some("master") => "primary",
        Some("slave") => "replica",
        _ => "down",
    };
    NodeView {
        address,
        role,
        cluster_state_ok: text.contains("cluster_state:ok"),
        known_nodes: text
            .lines()
            .find_map(|l| l.trim().strip_prefix("cluster_known_nodes:"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        link_up: role == "replica" && text.contains("master_link_status:up"),
    }
}

/// Every node reports `cluster_state:ok` and knows every other, each replica's link is up, and
/// there are as many primaries as `record` says.
#[must_use]
pub fn formed(views: &[NodeView], record: &ClusterRecord) -> bool {
    let total = u32::try_from(views.len()).unwrap_or(u32::MAX);
    views
        .iter()
        .all(|v| v.cluster_state_ok && v.known_nodes == total && (v.role == "primary" || v.link_up))
        && views.iter().filter(|v| v.role == "primary").count() == record.primaries()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_read_from_its_replies() {
        let replica = view_of(
            "redis-node-4:6379".to_owned(),
            "slave\n10.0.0.2\n6379\nconnected\n1\ncluster_state:ok\ncluster_known_nodes:6\nrole:slave\nmaster_link_status:up",
        );
        assert_eq!(
            (
                replica.role,
                replica.cluster_state_ok,
                replica.known_nodes,
                replica.link_up
            ),
            ("replica", true, 6, true)
        );
        let primary = view_of("127.0.0.1:7000".to_owned(), "master\n0\ncluster_state:fail");
        assert_eq!((primary.role, primary.cluster_state_ok), ("primary", false));
        assert_eq!(view_of("x".to_owned(), "").role, "down");
        assert_eq!(
            address(&Redis::Container {
                id: "abc".to_owned(),
                service: "redis-node-2".to_owned()
            }),
            "redis-node-2:6379"
        );
    }
}
