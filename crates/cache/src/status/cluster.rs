//! A Redis Cluster's topology and per-node probes, and the checks they give.

use super::{Check, CheckName, Impact};

pub use sealcache_api::status::{ClusterStatus, NodeRole, NodeStatus};

/// The topology a cluster backend reports, before the per-node probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    pub(crate) cluster_state: Option<String>,
    pub(crate) nodes: Vec<NodeObservation>,
}

/// One node's address and role, and later its probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeObservation {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) role: NodeRole,
    pub(crate) tls_version: Option<String>,
    pub(crate) anonymous_refused: Option<bool>,
    pub(crate) cluster_state: Option<String>,
}

impl NodeObservation {
    pub(crate) fn new(host: String, port: u16, role: NodeRole) -> Self {
        Self {
            host,
            port,
            role,
            tls_version: None,
            anonymous_refused: None,
            cluster_state: None,
        }
    }
}

/// The cluster checks and status (`None`, `[]` for a single node).
pub(super) fn cluster_checks(topology: Option<Topology>) -> (Option<ClusterStatus>, Vec<Check>) {
    let Some(t) = topology else {
        return (None, Vec::new());
    };
    let state_check = match t.cluster_state.as_deref() {
        Some("ok") => Check::pass(CheckName::ClusterState, "cluster_state:ok"),
        Some(other) => Check::fail(
            CheckName::ClusterState,
            Impact::Degraded,
            format!("cluster_state:{other}"),
        ),
        None => Check::unobserved(CheckName::ClusterState, "CLUSTER INFO did not answer"),
    };
    let addresses = |weak: &dyn Fn(&NodeObservation) -> bool| -> Vec<String> {
        t.nodes
            .iter()
            .filter(|n| weak(n))
            .map(|n| format!("{}:{}", n.host, n.port))
            .collect()
    };
    // Observed open: a node answered an anonymous client. Not observed: a node that did not
    // answer (down, failing over) or did not complete a verified handshake.
    let open = addresses(&|n| n.anonymous_refused == Some(false));
    let weak = addresses(&|n| n.tls_version.is_none() || n.anonymous_refused != Some(true));
    let nodes_check = if t.nodes.is_empty() {
        Check::unobserved(CheckName::ClusterNodes, "CLUSTER SLOTS did not answer")
    } else if !open.is_empty() {
        Check::fail(
            CheckName::ClusterNodes,
            Impact::Insecure,
            format!("answering anonymous clients: {}", open.join(", ")),
        )
    } else if weak.is_empty() {
        Check::pass(
            CheckName::ClusterNodes,
            format!(
                "{} nodes: verified TLS, anonymous clients refused",
                t.nodes.len()
            ),
        )
    } else {
        Check::fail(
            CheckName::ClusterNodes,
            Impact::Degraded,
            format!(
                "no verified TLS session or no answer observed: {}",
                weak.join(", ")
            ),
        )
    };
    let nodes = t
        .nodes
        .into_iter()
        .map(|n| {
            let mut node = NodeStatus::new(format!("{}:{}", n.host, n.port), n.role);
            node.tls_version = n.tls_version;
            node.default_user_disabled = n.anonymous_refused;
            node.cluster_state = n.cluster_state;
            node
        })
        .collect();
    let status = ClusterStatus::new(t.cluster_state, nodes);
    (Some(status), vec![state_check, nodes_check])
}
