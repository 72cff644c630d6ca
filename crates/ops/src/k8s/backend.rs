//! The backend (`sealcache-server`): its settings ConfigMap (from the directory's `.env`), the
//! Deployment, its Service (cluster-internal only) and PodDisruptionBudget.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::names::{self, BACKEND, BACKEND_COMPONENT};
use super::options::RenderOptions;
use super::pod;
use super::source::Source;
use crate::error::{Error, Result};

/// Replicas of the single-node topology's backend (a cluster directory records its own).
pub const DEFAULT_BACKENDS: usize = 2;

/// The backend's settings: the directory's `.env` with what differs on Kubernetes (the Redis
/// address, the API key's mount).
pub(crate) fn settings(
    source: &Source,
    options: &RenderOptions,
) -> Result<BTreeMap<String, String>> {
    let mut vars = source.settings.clone();
    if vars.get("REDIS_TLS_ENABLED").map(String::as_str) != Some("true") {
        return Err(Error::InvalidOption {
            option: "directory",
            reason: "its .env turns Redis TLS off (a development directory): the manifests are TLS-only",
        });
    }
    match &source.cluster {
        None => {
            vars.insert(
                "REDIS_URL".into(),
                format!("rediss://{}:{}/0", names::REDIS_SERVICE, names::REDIS_PORT),
            );
        }
        Some(record) => {
            vars.remove("REDIS_URL");
            let seeds: Vec<String> = (0..record.nodes.len())
                .map(|i| {
                    format!(
                        "rediss://{}:{}",
                        names::cluster_node_host(i, &options.namespace, &options.cluster_domain),
                        names::REDIS_PORT
                    )
                })
                .collect();
            vars.insert("REDIS_CLUSTER_NODES".into(), seeds.join(","));
        }
    }
    vars.insert(
        "API_KEY_FILE".into(),
        format!("{}/{}", names::API_KEY_PATH, names::API_KEY_FILE_NAME),
    );
    vars.insert(
        "SEALCACHE_LISTEN".into(),
        format!("0.0.0.0:{}", names::API_PORT),
    );
    Ok(vars)
}

/// The settings ConfigMap.
pub(crate) fn settings_config_map(vars: &BTreeMap<String, String>, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names::metadata(names::SETTINGS_CONFIG, namespace, BACKEND_COMPONENT),
        "data": vars,
    })
}

/// The hex SHA-256 of a ConfigMap's data (the pod-template annotation that rolls the pods when a
/// setting changes).
pub(crate) fn data_hash(data: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (k, v) in data {
        hasher.update((k.len() as u64).to_be_bytes());
        hasher.update(k.as_bytes());
        hasher.update((v.len() as u64).to_be_bytes());
        hasher.update(v.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Deployment (2 replicas; an overlay sets the directory's count and the settings hash).
pub(crate) fn deployment(options: &RenderOptions) -> Value {
    let ns = &options.namespace;
    let (affinity, spread) = pod::spread(BACKEND_COMPONENT, false);
    let mut container = serde_json::Map::new();
    container.insert("name".into(), json!(BACKEND));
    container.insert("image".into(), json!(options.backend_image));
    container.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    container.insert("command".into(), json!(["sealcache-server"]));
    container.insert(
        "ports".into(),
        json!([{ "name": "http", "containerPort": names::API_PORT, "protocol": "TCP" }]),
    );
    container.insert(
        "envFrom".into(),
        json!([{ "configMapRef": { "name": names::SETTINGS_CONFIG } }]),
    );
    container.insert(
        "env".into(),
        json!([
            { "name": "SEALCACHE_LOG_FORMAT", "value": "json" },
            { "name": "OTEL_SERVICE_NAME", "value": "sealcache-server" },
        ]),
    );
    container.insert(
        "volumeMounts".into(),
        json!([
            pod::mount("backend-secrets", names::BACKEND_SECRETS_PATH),
            pod::mount("api-key", names::API_KEY_PATH),
            pod::mount("tls", names::TLS_PATH),
            pod::mount_rw("tmp", "/tmp"),
        ]),
    );
    container.extend(pod::exec_probes(&json!([
        "sealcache-server",
        "--healthcheck"
    ])));
    container.insert("resources".into(), pod::resources("100m", "1", "256Mi"));
    container.insert(
        "securityContext".into(),
        pod::container_security(options.run_as),
    );

    let mut spec = pod::pod_spec_common(names::BACKEND_ACCOUNT, options.run_as);
    spec.insert("terminationGracePeriodSeconds".into(), json!(30));
    spec.insert("affinity".into(), affinity);
    spec.insert("topologySpreadConstraints".into(), spread);
    spec.insert("containers".into(), json!([container]));
    spec.insert(
        "volumes".into(),
        json!([
            pod::secret_volume("backend-secrets", names::BACKEND_SECRET),
            pod::secret_volume("api-key", names::API_KEY_SECRET),
            pod::projected_secrets("tls", &[names::CA_SECRET, names::CLIENT_TLS_SECRET]),
            pod::tmpfs("tmp", "8Mi"),
        ]),
    );
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names::metadata(BACKEND, ns, BACKEND_COMPONENT),
        "spec": {
            "replicas": DEFAULT_BACKENDS,
            "revisionHistoryLimit": 3,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 },
            },
            "selector": { "matchLabels": names::selector(BACKEND_COMPONENT) },
            "template": {
                "metadata": { "labels": names::labels(BACKEND_COMPONENT) },
                "spec": spec,
            },
        },
    })
}

/// The overlay's patch of the Deployment: the directory's backend count and the settings hash.
pub(crate) fn deployment_patch(replicas: usize, settings_hash: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": BACKEND, "namespace": namespace },
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": { "annotations": { names::SETTINGS_HASH_ANNOTATION: settings_hash } },
            },
        },
    })
}

/// The API's Service: `ClusterIP` only (exposing it is the operator's choice, through an ingress
/// of their own, never a NodePort or LoadBalancer rendered here).
pub(crate) fn service(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names::metadata(BACKEND, namespace, BACKEND_COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": names::selector(BACKEND_COMPONENT),
            "ports": [{ "name": "http", "port": names::API_PORT, "targetPort": "http", "protocol": "TCP" }],
        },
    })
}

/// At least one backend stays up through voluntary disruptions (node drains).
pub(crate) fn disruption_budget(namespace: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": names::metadata(BACKEND, namespace, BACKEND_COMPONENT),
        "spec": {
            "minAvailable": 1,
            "selector": { "matchLabels": names::selector(BACKEND_COMPONENT) },
        },
    })
}
