//! NetworkPolicies: everything in the namespace denied (ingress and egress), then exactly the
//! flows sealcache needs.
//!
//! | from | to | port |
//! |---|---|---|
//! | pods labelled `sealcache/api-client: "true"` (any namespace) | backend | 8080 |
//! | backend | Redis | 6379 (TLS) |
//! | Redis (cluster) | Redis | 6379 (replication) and 16379 (cluster bus) |
//! | formation Job (cluster) | Redis | 6379 |
//! | backend, formation Job | cluster DNS (`kube-system`, `k8s-app: kube-dns`) | 53 UDP/TCP |

use serde_json::{Value, json};

use super::names::{
    self, API_CLIENT_LABEL, BACKEND_COMPONENT, FORMATION_COMPONENT, REDIS_COMPONENT,
};

fn policy(name: &str, namespace: &str, component: &str, spec: Value) -> Value {
    let mut policy = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names::metadata(name, namespace, component),
    });
    policy["spec"] = spec;
    policy
}

fn pods(component: &str) -> Value {
    json!({ "podSelector": { "matchLabels": names::selector(component) } })
}

fn tcp(ports: &[u16]) -> Value {
    json!(
        ports
            .iter()
            .map(|p| json!({ "protocol": "TCP", "port": p }))
            .collect::<Vec<_>>()
    )
}

/// Egress to the cluster's DNS.
fn dns() -> Value {
    json!({
        "to": [{
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
            "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
        }],
        "ports": [
            { "protocol": "UDP", "port": names::DNS_PORT },
            { "protocol": "TCP", "port": names::DNS_PORT },
        ],
    })
}

/// Every pod of the namespace: no ingress, no egress, unless a policy below allows it.
pub(crate) fn default_deny(namespace: &str) -> Value {
    policy(
        "default-deny",
        namespace,
        "network-policy",
        json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }),
    )
}

/// The backend: its API port from API clients; out to Redis's TLS port and DNS only.
pub(crate) fn backend(namespace: &str) -> Value {
    policy(
        names::BACKEND,
        namespace,
        BACKEND_COMPONENT,
        json!({
            "podSelector": { "matchLabels": names::selector(BACKEND_COMPONENT) },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{
                    "namespaceSelector": {},
                    "podSelector": { "matchLabels": { API_CLIENT_LABEL: "true" } },
                }],
                "ports": tcp(&[names::API_PORT]),
            }],
            "egress": [
                { "to": [pods(REDIS_COMPONENT)], "ports": tcp(&[names::REDIS_PORT]) },
                dns(),
            ],
        }),
    )
}

/// Redis: its TLS port from the backend (and in a cluster from the other nodes and the
/// formation Job), the bus port from the other nodes only; out to the other nodes only (a single
/// node sends nothing).
pub(crate) fn redis(namespace: &str, cluster: bool) -> Value {
    let mut ingress = vec![json!({
        "from": [pods(BACKEND_COMPONENT)],
        "ports": tcp(&[names::REDIS_PORT]),
    })];
    let mut egress = Vec::new();
    if cluster {
        ingress.push(json!({
            "from": [pods(REDIS_COMPONENT)],
            "ports": tcp(&[names::REDIS_PORT, names::BUS_PORT]),
        }));
        ingress.push(json!({
            "from": [pods(FORMATION_COMPONENT)],
            "ports": tcp(&[names::REDIS_PORT]),
        }));
        egress.push(json!({
            "to": [pods(REDIS_COMPONENT)],
            "ports": tcp(&[names::REDIS_PORT, names::BUS_PORT]),
        }));
    }
    policy(
        names::REDIS,
        namespace,
        REDIS_COMPONENT,
        json!({
            "podSelector": { "matchLabels": names::selector(REDIS_COMPONENT) },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        }),
    )
}

/// The formation Job: nothing in; out to Redis's TLS port and DNS.
pub(crate) fn formation(namespace: &str) -> Value {
    policy(
        names::FORMATION,
        namespace,
        FORMATION_COMPONENT,
        json!({
            "podSelector": { "matchLabels": names::selector(FORMATION_COMPONENT) },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                { "to": [pods(REDIS_COMPONENT)], "ports": tcp(&[names::REDIS_PORT]) },
                dns(),
            ],
        }),
    )
}
