//! The cluster formation Job: `redis-cli --cluster create` over TLS as `cache_admin` once every
//! node answers, or, on a formed cluster, re-introducing nodes with new addresses (see the
//! script). The only pod that mounts `cache_admin`'s password.

use serde_json::{Value, json};

use super::names::{self, FORMATION, FORMATION_COMPONENT};
use super::options::RenderOptions;
use super::pod;

/// The formation script (POSIX `sh`, run by the Redis image's `redis-cli`).
pub const FORMATION_SCRIPT: &str = include_str!("../../templates/form-cluster.sh");

/// Seconds a finished Job is kept: after that, applying the overlay again runs it again (a check
/// that changes nothing on a healthy cluster).
pub const KEEP_FINISHED_SECONDS: u32 = 3600;

/// The ConfigMap with the script.
pub(crate) fn config_map(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names::metadata(names::FORMATION_CONFIG, namespace, FORMATION_COMPONENT),
        "data": { names::FORMATION_SCRIPT_FILE: FORMATION_SCRIPT },
    })
}

/// The Job for a cluster of `nodes` nodes with `replicas` replicas per primary.
pub(crate) fn job(options: &RenderOptions, nodes: usize, replicas: usize) -> Value {
    let env = [
        ("NODES", nodes.to_string()),
        ("REPLICAS", replicas.to_string()),
        ("SERVICE", names::CLUSTER_SERVICE.to_owned()),
        ("NAMESPACE", options.namespace.clone()),
        ("DOMAIN", options.cluster_domain.clone()),
        ("PORT", names::REDIS_PORT.to_string()),
    ];
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    let mut container = serde_json::Map::new();
    container.insert("name".into(), json!("form"));
    container.insert("image".into(), json!(options.redis_image));
    container.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    container.insert(
        "command".into(),
        json!([
            "sh",
            format!("{}/{}", names::FORMATION_DIR, names::FORMATION_SCRIPT_FILE)
        ]),
    );
    container.insert("env".into(), json!(env));
    container.insert(
        "volumeMounts".into(),
        json!([
            pod::mount("script", names::FORMATION_DIR),
            pod::mount("admin", names::ADMIN_PATH),
            pod::mount("tls", names::TLS_PATH),
            pod::mount_rw("tmp", "/tmp"),
        ]),
    );
    container.insert("resources".into(), pod::resources("50m", "500m", "64Mi"));
    container.insert(
        "securityContext".into(),
        pod::container_security(options.run_as),
    );
    let mut spec = pod::pod_spec_common(names::FORMATION_ACCOUNT, options.run_as);
    spec.insert("restartPolicy".into(), json!("Never"));
    spec.insert("containers".into(), json!([container]));
    spec.insert(
        "volumes".into(),
        json!([
            { "name": "script", "configMap": { "name": names::FORMATION_CONFIG, "defaultMode": 0o444 } },
            pod::secret_volume("admin", names::ADMIN_SECRET),
            pod::projected_secrets("tls", &[names::CA_SECRET, names::CLIENT_TLS_SECRET]),
            pod::tmpfs("tmp", "8Mi"),
        ]),
    );
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": names::metadata(FORMATION, &options.namespace, FORMATION_COMPONENT),
        "spec": {
            "backoffLimit": 4,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": KEEP_FINISHED_SECONDS,
            "template": {
                "metadata": { "labels": names::labels(FORMATION_COMPONENT) },
                "spec": spec,
            },
        },
    })
}
