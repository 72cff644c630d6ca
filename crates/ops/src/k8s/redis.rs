//! Redis: one node (a StatefulSet of one behind the Service `redis`) or a Redis Cluster (a
//! StatefulSet of N nodes behind the headless Service `redis-cluster`, one node per Kubernetes
//! node, a small volume for `nodes.conf` each).

use serde_json::{Value, json};

use super::names::{self, CLUSTER_SERVICE, REDIS, REDIS_COMPONENT};
use super::options::RenderOptions;
use super::pod;

/// The shipped single-node `redis.conf` (`deploy/redis/redis.conf`, through `templates/`).
pub const REDIS_CONF: &str = include_str!("../../templates/redis/redis.conf");
/// The shipped cluster node `redis.conf` (`deploy/redis/redis.cluster.conf`, through `templates/`).
pub const REDIS_CLUSTER_CONF: &str = include_str!("../../templates/redis/redis.cluster.conf");

/// Size of each cluster node's volume (it holds `nodes.conf` only: no persistence of data).
pub const NODE_STATE_SIZE: &str = "64Mi";

/// The shape of the Redis part.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// One node.
    Single,
    /// A cluster of `nodes` nodes.
    Cluster { nodes: usize },
}

/// The ConfigMap with `redis.conf` for `shape`.
pub(crate) fn config_map(shape: Shape, namespace: &str) -> Value {
    let text = match shape {
        Shape::Single => REDIS_CONF,
        Shape::Cluster { .. } => REDIS_CLUSTER_CONF,
    };
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names::metadata(names::REDIS_CONFIG, namespace, REDIS_COMPONENT),
        "data": { "redis.conf": text },
    })
}

/// The Service clients use: `redis` (`ClusterIP`) for one node, the headless `redis-cluster`
/// (per-pod DNS names, listed before they are ready so the nodes can meet) for a cluster.
pub(crate) fn service(shape: Shape, namespace: &str) -> Value {
    let tls = json!({ "name": "redis-tls", "port": names::REDIS_PORT, "targetPort": "redis-tls", "protocol": "TCP" });
    let spec = match shape {
        Shape::Single => json!({
            "type": "ClusterIP",
            "selector": names::selector(REDIS_COMPONENT),
            "ports": [tls],
        }),
        Shape::Cluster { .. } => json!({
            "type": "ClusterIP",
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": names::selector(REDIS_COMPONENT),
            "ports": [
                tls,
                { "name": "redis-bus", "port": names::BUS_PORT, "targetPort": "redis-bus", "protocol": "TCP" },
            ],
        }),
    };
    let name = match shape {
        Shape::Single => names::REDIS_SERVICE,
        Shape::Cluster { .. } => CLUSTER_SERVICE,
    };
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names::metadata(name, namespace, REDIS_COMPONENT),
        "spec": spec,
    })
}

/// The StatefulSet. `config_hash` is the SHA-256 of `redis.conf` (a changed file rolls the nodes;
/// a rotated Secret never does).
pub(crate) fn stateful_set(shape: Shape, options: &RenderOptions, config_hash: &str) -> Value {
    let ns = &options.namespace;
    let conf = format!("{}/redis.conf", names::REDIS_CONF_DIR);
    let mut ports =
        vec![json!({ "name": "redis-tls", "containerPort": names::REDIS_PORT, "protocol": "TCP" })];
    let mut container = serde_json::Map::new();
    container.insert("name".into(), json!("redis"));
    container.insert("image".into(), json!(options.redis_image));
    container.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    match shape {
        Shape::Single => {
            container.insert("command".into(), json!(["redis-server", conf]));
        }
        Shape::Cluster { .. } => {
            // The announced name is the pod's DNS name (the server certificate names it), from
            // the downward API: never a secret, and no shell.
            let announce = format!(
                "$(POD_NAME).{CLUSTER_SERVICE}.$(POD_NAMESPACE).svc.{}",
                options.cluster_domain
            );
            container.insert(
                "command".into(),
                json!([
                    "redis-server",
                    conf,
                    "--cluster-announce-hostname",
                    announce
                ]),
            );
            container.insert(
                "env".into(),
                json!([
                    { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                    { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                ]),
            );
            ports.push(
                json!({ "name": "redis-bus", "containerPort": names::BUS_PORT, "protocol": "TCP" }),
            );
        }
    }
    container.insert("ports".into(), json!(ports));
    container.insert(
        "volumeMounts".into(),
        json!([
            pod::mount("config", names::REDIS_CONF_DIR),
            pod::mount("redis-secrets", names::REDIS_SECRETS_PATH),
            pod::mount("tls", names::TLS_PATH),
            pod::mount_rw("data", "/data"),
            pod::mount_rw("tmp", "/tmp"),
        ]),
    );
    container.extend(pod::exec_probes(&pod::redis_ping_command()));
    container.insert("resources".into(), pod::resources("250m", "1", "256Mi"));
    container.insert(
        "securityContext".into(),
        pod::container_security(options.run_as),
    );

    let mut volumes = vec![
        json!({ "name": "config", "configMap": { "name": names::REDIS_CONFIG, "defaultMode": 0o444 } }),
        pod::secret_volume("redis-secrets", names::REDIS_SECRET),
        pod::projected_secrets(
            "tls",
            &[
                names::CA_SECRET,
                names::SERVER_TLS_SECRET,
                names::CLIENT_TLS_SECRET,
            ],
        ),
        pod::tmpfs("tmp", "8Mi"),
    ];
    let mut spec = pod::pod_spec_common(names::REDIS_ACCOUNT, options.run_as);
    spec.insert("terminationGracePeriodSeconds".into(), json!(30));
    let mut set = json!({
        "serviceName": names::REDIS_SERVICE,
        "replicas": 1,
        "selector": { "matchLabels": names::selector(REDIS_COMPONENT) },
    });
    match shape {
        Shape::Single => {
            // No persistence: the data directory is scratch (the compose stack's tmpfs).
            volumes.push(pod::tmpfs("data", "16Mi"));
        }
        Shape::Cluster { nodes } => {
            // One node per Kubernetes node: a primary and its replica can never share one,
            // whatever pairs the formation makes.
            let (affinity, spread) = pod::spread(REDIS_COMPONENT, true);
            spec.insert("affinity".into(), affinity);
            spec.insert("topologySpreadConstraints".into(), spread);
            if let Some(set) = set.as_object_mut() {
                set.insert("serviceName".into(), json!(CLUSTER_SERVICE));
                set.insert("replicas".into(), json!(nodes));
                set.insert("podManagementPolicy".into(), json!("Parallel"));
                set.insert(
                    "volumeClaimTemplates".into(),
                    json!([{
                        "metadata": { "name": "data", "labels": names::labels(REDIS_COMPONENT) },
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": { "requests": { "storage": NODE_STATE_SIZE } },
                        },
                    }]),
                );
            }
        }
    }
    spec.insert("containers".into(), json!([container]));
    spec.insert("volumes".into(), json!(volumes));
    if let Some(set) = set.as_object_mut() {
        set.insert("updateStrategy".into(), json!({ "type": "RollingUpdate" }));
        set.insert(
            "template".into(),
            json!({
                "metadata": {
                    "labels": names::labels(REDIS_COMPONENT),
                    "annotations": { names::SETTINGS_HASH_ANNOTATION: config_hash },
                },
                "spec": spec,
            }),
        );
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": names::metadata(REDIS, ns, REDIS_COMPONENT),
        "spec": set,
    })
}

/// A cluster loses at most one node at a time to voluntary disruptions (a primary's replica
/// takes over; two at once could take a primary and its replica).
pub(crate) fn disruption_budget(namespace: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": names::metadata(REDIS, namespace, REDIS_COMPONENT),
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": names::selector(REDIS_COMPONENT) },
        },
    })
}
