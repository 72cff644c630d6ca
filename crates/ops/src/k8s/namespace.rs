//! The namespace (Pod Security Standards `restricted`, its version pinned) and the service
//! accounts (one per component, no token mounted).

use serde_json::{Value, json};

use super::names;
use super::options::POD_SECURITY_VERSION;

/// The Pod Security admission labels: `restricted` enforced (and audited and warned), each at
/// [`POD_SECURITY_VERSION`].
pub(crate) fn namespace(name: &str) -> Value {
    let mut labels = names::labels("namespace");
    if let Some(map) = labels.as_object_mut() {
        for mode in ["enforce", "audit", "warn"] {
            map.insert(
                format!("pod-security.kubernetes.io/{mode}"),
                json!("restricted"),
            );
            map.insert(
                format!("pod-security.kubernetes.io/{mode}-version"),
                json!(POD_SECURITY_VERSION),
            );
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": labels },
    })
}

/// A service account whose token is never mounted (no pod of sealcache talks to the API server).
pub(crate) fn service_account(name: &str, namespace: &str, component: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": names::metadata(name, namespace, component),
        "automountServiceAccountToken": false,
    })
}
