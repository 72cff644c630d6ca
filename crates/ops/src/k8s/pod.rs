//! What every pod and container of the rendering shares: the restricted security contexts,
//! resources, volumes from Secrets (always whole directories, never `subPath`) and probes.

use serde_json::{Value, json};

use super::names::{self, TLS_PATH};

/// File mode of mounted Secret files: read for the owner and the pod's group (`fsGroup`), as
/// the compose stack's 0600 files owned by the container user.
pub(crate) const SECRET_MODE: u32 = 0o440;

/// The pod-level security context: non-root user and group, `fsGroup` so the mounted files are
/// readable, seccomp `RuntimeDefault`.
pub(crate) fn pod_security(run_as: u32) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": run_as,
        "runAsGroup": run_as,
        "fsGroup": run_as,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// The container-level security context (the Pod Security Standards' `restricted` profile and
/// more): no privilege escalation, every capability dropped, read-only root filesystem.
pub(crate) fn container_security(run_as: u32) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": run_as,
        "runAsGroup": run_as,
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// Requests and limits (memory request = limit: a cache is never overcommitted).
pub(crate) fn resources(cpu_request: &str, cpu_limit: &str, memory: &str) -> Value {
    json!({
        "requests": { "cpu": cpu_request, "memory": memory, "ephemeral-storage": "64Mi" },
        "limits": { "cpu": cpu_limit, "memory": memory, "ephemeral-storage": "256Mi" },
    })
}

/// The pod spec fields every pod shares: its own service account with no token, no service
/// environment variables, the security context.
pub(crate) fn pod_spec_common(account: &str, run_as: u32) -> serde_json::Map<String, Value> {
    let mut spec = serde_json::Map::new();
    spec.insert("serviceAccountName".into(), json!(account));
    spec.insert("automountServiceAccountToken".into(), json!(false));
    spec.insert("enableServiceLinks".into(), json!(false));
    spec.insert("securityContext".into(), pod_security(run_as));
    spec
}

/// A volume of one Secret, mounted as a directory (the kubelet replaces its files atomically when
/// the Secret changes: what a rotation relies on).
pub(crate) fn secret_volume(volume: &str, secret: &str) -> Value {
    json!({
        "name": volume,
        "secret": { "secretName": secret, "defaultMode": SECRET_MODE },
    })
}

/// A projected volume of several Secrets in one directory (the TLS files at their compose paths).
pub(crate) fn projected_secrets(volume: &str, secrets: &[&str]) -> Value {
    let sources: Vec<Value> = secrets
        .iter()
        .map(|s| json!({ "secret": { "name": s } }))
        .collect();
    json!({
        "name": volume,
        "projected": { "defaultMode": SECRET_MODE, "sources": sources },
    })
}

/// A memory-backed scratch directory of at most `size` (the compose stack's tmpfs).
pub(crate) fn tmpfs(volume: &str, size: &str) -> Value {
    json!({ "name": volume, "emptyDir": { "medium": "Memory", "sizeLimit": size } })
}

/// A read-only mount of a whole volume.
pub(crate) fn mount(volume: &str, path: &str) -> Value {
    json!({ "name": volume, "mountPath": path, "readOnly": true })
}

/// A writable mount.
pub(crate) fn mount_rw(volume: &str, path: &str) -> Value {
    json!({ "name": volume, "mountPath": path })
}

/// The TLS `PING` as `cache_health`, the compose health check: the password is read from its
/// mounted file into `REDISCLI_AUTH` (never an argument), the client certificate is presented.
pub(crate) fn redis_ping_command() -> Value {
    let script = format!(
        "REDISCLI_AUTH=\"$(cat {secrets}/{password})\" redis-cli --no-auth-warning --tls \
         --cacert {TLS_PATH}/ca.crt --cert {TLS_PATH}/client.crt --key {TLS_PATH}/client.key \
         -h 127.0.0.1 -p {port} --user {user} ping | grep -q PONG",
        secrets = names::REDIS_SECRETS_PATH,
        password = health_password_file(),
        port = names::REDIS_PORT,
        user = sealcache_config_gen::acl::HEALTH_USER,
    );
    json!(["sh", "-c", script])
}

/// The health password's file name (in `secrets/redis/`).
fn health_password_file() -> &'static str {
    let path = sealcache_config_gen::layout::HEALTH_PASSWORD;
    path.rsplit('/').next().unwrap_or(path)
}

/// Startup, readiness and liveness probes running `command` in the container.
pub(crate) fn exec_probes(command: &Value) -> serde_json::Map<String, Value> {
    let probe = |period: u32, failures: u32| {
        json!({
            "exec": { "command": command },
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        })
    };
    let mut probes = serde_json::Map::new();
    probes.insert("startupProbe".into(), probe(2, 30));
    probes.insert("readinessProbe".into(), probe(10, 3));
    probes.insert("livenessProbe".into(), probe(10, 5));
    probes
}

/// Keeps the pods of `component` on different nodes when possible, spreading them over nodes
/// (`kubernetes.io/hostname`) and zones.
pub(crate) fn spread(component: &str, required: bool) -> (Value, Value) {
    let selector = json!({ "matchLabels": names::selector(component) });
    let term = json!({ "labelSelector": selector, "topologyKey": "kubernetes.io/hostname" });
    let affinity = if required {
        json!({ "podAntiAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [term] } })
    } else {
        json!({ "podAntiAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [
            { "weight": 100, "podAffinityTerm": term }
        ] } })
    };
    let spread = json!([
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": if required { "DoNotSchedule" } else { "ScheduleAnyway" },
            "labelSelector": selector,
        },
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
        },
    ]);
    (affinity, spread)
}
