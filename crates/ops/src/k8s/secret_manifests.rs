//! Secret manifests from the directory's files: one Secret per set of files a pod mounts
//! together, each file a key (base64 in `data`). The CA key is in none of them; `cache_admin`'s
//! password only in the cluster's formation Secret.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::names;
use super::source::SecretFile;

/// A Secret object. `data` values are base64 text in zeroized memory.
#[derive(Serialize)]
pub(crate) struct SecretManifest {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: Value,
    #[serde(rename = "type")]
    kind_of_secret: &'static str,
    data: BTreeMap<String, Base64>,
}

impl std::fmt::Debug for SecretManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManifest")
            .field("metadata", &self.metadata)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Base64 text of a secret file.
struct Base64(Zeroizing<String>);

impl Serialize for Base64 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl SecretManifest {
    /// The Secret `name` holding `files`, for `component`.
    pub(crate) fn new(name: &str, namespace: &str, component: &str, files: &[&SecretFile]) -> Self {
        let data = files
            .iter()
            .map(|f| {
                // Sized up front: a growing buffer would leave unzeroized copies behind.
                let mut text =
                    Zeroizing::new(String::with_capacity(f.contents.len().div_ceil(3) * 4));
                STANDARD.encode_string(f.contents.as_slice(), &mut text);
                (f.name.clone(), Base64(text))
            })
            .collect();
        Self {
            api_version: "v1",
            kind: "Secret",
            metadata: names::metadata(name, namespace, component),
            kind_of_secret: "Opaque",
            data,
        }
    }
}
