//! Object names, labels, ports and paths of the rendered manifests (one place, so that selectors,
//! policies and tests agree).

use serde_json::{Value, json};

/// The label every object carries: `app.kubernetes.io/name: sealcache`.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label that tells the parts apart (`redis`, `backend`, `cluster-formation`).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The value of [`NAME_LABEL`].
pub const APP: &str = "sealcache";
/// [`COMPONENT_LABEL`] of the Redis pods.
pub const REDIS_COMPONENT: &str = "redis";
/// [`COMPONENT_LABEL`] of the backend pods.
pub const BACKEND_COMPONENT: &str = "backend";
/// [`COMPONENT_LABEL`] of the cluster formation Job's pod.
pub const FORMATION_COMPONENT: &str = "cluster-formation";
/// The label a pod (in any namespace) carries to be let through to the backend's API port.
pub const API_CLIENT_LABEL: &str = "sealcache/api-client";
/// The annotation on a pod template that carries the SHA-256 of the non-secret settings it reads
/// (a changed setting rolls the pods; a rotated Secret never does).
pub const SETTINGS_HASH_ANNOTATION: &str = "sealcache/settings-sha256";

/// The Redis StatefulSet (both topologies).
pub const REDIS: &str = "redis";
/// The Service the backend connects to in the single-node topology (`REDIS_URL` names it).
pub const REDIS_SERVICE: &str = "redis";
/// The cluster's headless Service (per-pod DNS names, the cluster bus).
pub const CLUSTER_SERVICE: &str = "redis-cluster";
/// The backend Deployment and its Service.
pub const BACKEND: &str = "backend";
/// The cluster formation Job.
pub const FORMATION: &str = "redis-cluster-formation";

/// The Secret with the Redis pods' rotating files (`secrets/redis/`).
pub const REDIS_SECRET: &str = "sealcache-redis";
/// The Secret with the backend's rotating files (`secrets/backend/`).
pub const BACKEND_SECRET: &str = "sealcache-backend";
/// The Secret with the HTTP API key.
pub const API_KEY_SECRET: &str = "sealcache-api-key";
/// The Secret with the CA certificate (public, kept beside the other TLS material).
pub const CA_SECRET: &str = "sealcache-tls-ca";
/// The Secret with the Redis server certificate and key (and, in a cluster, the nodes' client
/// certificate): mounted by the Redis pods only.
pub const SERVER_TLS_SECRET: &str = "sealcache-tls-server";
/// The Secret with the application's client certificate and key.
pub const CLIENT_TLS_SECRET: &str = "sealcache-tls-client";
/// The Secret with `cache_admin`'s password: a cluster's formation Job mounts it, nothing else.
pub const ADMIN_SECRET: &str = "sealcache-cluster-admin";

/// The ConfigMap with the backend's non-secret settings (the directory's `.env`).
pub const SETTINGS_CONFIG: &str = "sealcache-settings";
/// The ConfigMap with `redis.conf`.
pub const REDIS_CONFIG: &str = "sealcache-redis-conf";
/// The ConfigMap with the formation script.
pub const FORMATION_CONFIG: &str = "sealcache-cluster-formation";

/// The Redis pods' service account.
pub const REDIS_ACCOUNT: &str = "sealcache-redis";
/// The backend pods' service account.
pub const BACKEND_ACCOUNT: &str = "sealcache-backend";
/// The formation Job's service account.
pub const FORMATION_ACCOUNT: &str = "sealcache-cluster-formation";

/// Redis's TLS port (the only client port: `port 0`).
pub const REDIS_PORT: u16 = sealcache_config_gen::layout::REDIS_PORT;
/// The cluster bus port (TLS port + 10000).
pub const BUS_PORT: u16 = REDIS_PORT + 10_000;
/// The backend's HTTP port inside its pod.
pub const API_PORT: u16 = 8080;
/// DNS.
pub const DNS_PORT: u16 = 53;

/// Where `redis.conf` is mounted (the directory; the file is `redis.conf`).
pub const REDIS_CONF_DIR: &str = "/etc/sealcache";
/// Where the formation script is mounted.
pub const FORMATION_DIR: &str = "/opt/sealcache";
/// The formation script's file name.
pub const FORMATION_SCRIPT_FILE: &str = "form-cluster.sh";
/// Where the Redis pods' rotating secrets are mounted (the compose path).
pub const REDIS_SECRETS_PATH: &str = "/run/secrets/redis";
/// Where the backend's rotating secrets are mounted (the compose path).
pub const BACKEND_SECRETS_PATH: &str = "/run/secrets/backend";
/// Where the TLS files are mounted (the compose path of each file).
pub const TLS_PATH: &str = "/run/secrets/tls";
/// Where the API key's Secret is mounted: a directory of its own (no `subPath`), so `API_KEY_FILE`
/// changes from the compose path `/run/secrets/api_key`.
pub const API_KEY_PATH: &str = "/run/secrets/api";
/// Where the formation Job finds `cache_admin`'s password.
pub const ADMIN_PATH: &str = "/run/secrets/admin";
/// The API key file inside [`API_KEY_SECRET`] (and its name in the directory).
pub const API_KEY_FILE_NAME: &str = "api_key";
/// The admin password file inside [`ADMIN_SECRET`].
pub const ADMIN_FILE_NAME: &str = "redis_admin_password";

/// The labels of every object of `component`.
pub(crate) fn labels(component: &str) -> Value {
    json!({
        NAME_LABEL: APP,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": APP,
        "app.kubernetes.io/managed-by": "sealcache-ops",
    })
}

/// The selector of `component`'s pods.
pub(crate) fn selector(component: &str) -> Value {
    json!({ NAME_LABEL: APP, COMPONENT_LABEL: component })
}

/// `metadata` of a namespaced object.
pub(crate) fn metadata(name: &str, namespace: &str, component: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels(component) })
}

/// The DNS name of cluster node `index` (pod `redis-<index>` of the headless Service).
#[must_use]
pub fn cluster_node_host(index: usize, namespace: &str, cluster_domain: &str) -> String {
    format!("{REDIS}-{index}.{CLUSTER_SERVICE}.{namespace}.svc.{cluster_domain}")
}
