//! The output's layout and its `kustomization.yaml` files.
//!
//! ```text
//! OUT/.gitignore                      /secrets/ (the secret output never reaches a repository)
//! OUT/base/                           namespace, backend, network policies (topology-free)
//! OUT/overlays/single|cluster/        Redis, settings, policies, formation Job; the base; the Secrets
//! OUT/secrets/single|cluster/         0700, files 0600: the Secret manifests (git-ignored)
//! OUT/secrets/cluster/server-tls/     a server certificate issued for the pod DNS names (kept)
//! ```

use serde_json::{Value, json};

/// The base's directory.
pub const BASE_DIR: &str = "base";
/// The overlays' directory.
pub const OVERLAYS_DIR: &str = "overlays";
/// The secret output's directory (git-ignored by the output's own `.gitignore`).
pub const SECRETS_DIR: &str = "secrets";
/// Where an issued server certificate is kept, under the topology's secret directory.
pub const SERVER_TLS_DIR: &str = "server-tls";
/// Every Kustomize directory's file.
pub const KUSTOMIZATION: &str = "kustomization.yaml";
/// The output's `.gitignore`.
pub const GITIGNORE: &str = ".gitignore";
/// What the output's `.gitignore` says.
pub const GITIGNORE_TEXT: &str =
    "# The Secret manifests rendered from a deployment directory: never commit them.\n/secrets/\n";

/// A `kustomization.yaml` with `resources`, and `patches` (files of strategic-merge patches).
pub(crate) fn kustomization(namespace: &str, resources: &[String], patches: &[&str]) -> Value {
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": resources,
    });
    if !patches.is_empty()
        && let Some(map) = k.as_object_mut()
    {
        let patches: Vec<Value> = patches.iter().map(|p| json!({ "path": p })).collect();
        map.insert("patches".into(), json!(patches));
    }
    k
}
