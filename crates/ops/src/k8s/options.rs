//! What a rendering is given besides the deployment directory.

use crate::error::{Error, Result};

/// The official Redis image the compose files use (`SEALCACHE_REDIS_IMAGE`'s default).
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7.2.5-bookworm";
/// The backend image the compose files use (`SEALCACHE_BACKEND_IMAGE`'s default).
pub const DEFAULT_BACKEND_IMAGE: &str = "sealcache-server:local";
/// The namespace the manifests go into.
pub const DEFAULT_NAMESPACE: &str = "sealcache";
/// The cluster's DNS domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// The user and group every container runs as: above 10000, so it matches no user of a node.
pub const DEFAULT_RUN_AS: u32 = 10_001;
/// The Pod Security Standards version the namespace pins (`enforce-version`): the oldest
/// Kubernetes release the manifests are validated for, so a newer release's stricter profile
/// never breaks a running deployment unannounced.
pub const POD_SECURITY_VERSION: &str = "v1.29";

/// Options of a rendering. `Default` gives the documented defaults; the setters check nothing,
/// [`crate::k8s::plan`] checks everything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// Render from a cluster directory (`config generate --cluster`); a mismatch with the
    /// directory is an error rather than a guess.
    pub cluster: bool,
    /// The namespace (a DNS label). The cluster's node certificate names it, so change it here,
    /// never with a Kustomize `namespace:` of your own.
    pub namespace: String,
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// The Redis image ([`DEFAULT_REDIS_IMAGE`]).
    pub redis_image: String,
    /// The backend image ([`DEFAULT_BACKEND_IMAGE`]).
    pub backend_image: String,
    /// The user and group id of every container ([`DEFAULT_RUN_AS`]).
    pub run_as: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            cluster: false,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            redis_image: DEFAULT_REDIS_IMAGE.to_owned(),
            backend_image: DEFAULT_BACKEND_IMAGE.to_owned(),
            run_as: DEFAULT_RUN_AS,
        }
    }
}

impl RenderOptions {
    /// The defaults for a single-node (`false`) or cluster (`true`) directory.
    #[must_use]
    pub fn new(cluster: bool) -> Self {
        Self {
            cluster,
            ..Self::default()
        }
    }

    /// Sets the namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the cluster's DNS domain.
    #[must_use]
    pub fn cluster_domain(mut self, domain: impl Into<String>) -> Self {
        self.cluster_domain = domain.into();
        self
    }

    /// Sets the Redis image.
    #[must_use]
    pub fn redis_image(mut self, image: impl Into<String>) -> Self {
        self.redis_image = image.into();
        self
    }

    /// Sets the backend image.
    #[must_use]
    pub fn backend_image(mut self, image: impl Into<String>) -> Self {
        self.backend_image = image.into();
        self
    }

    /// Sets the user and group id of every container.
    #[must_use]
    pub fn run_as(mut self, id: u32) -> Self {
        self.run_as = id;
        self
    }

    /// Checks every option.
    pub(crate) fn check(&self) -> Result<()> {
        if !is_dns_label(&self.namespace) {
            return Err(Error::InvalidOption {
                option: "namespace",
                reason: "must be a DNS label: 1 to 63 lowercase letters, digits and '-', starting and ending alphanumeric",
            });
        }
        if self.namespace.starts_with("kube-") || self.namespace == "default" {
            return Err(Error::InvalidOption {
                option: "namespace",
                reason: "must be a namespace of its own (not default or kube-*): the namespace gets a default-deny policy",
            });
        }
        if self.cluster_domain.len() > 253 || !self.cluster_domain.split('.').all(is_dns_label) {
            return Err(Error::InvalidOption {
                option: "cluster domain",
                reason: "must be a DNS name (dot-separated DNS labels)",
            });
        }
        for (option, image) in [
            ("redis image", &self.redis_image),
            ("backend image", &self.backend_image),
        ] {
            if image.is_empty()
                || image.len() > 512
                || !image.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':' | '@')
                })
            {
                return Err(Error::InvalidOption {
                    option,
                    reason: "must be an image reference (registry/name:tag or name@sha256:digest)",
                });
            }
        }
        if self.run_as == 0 {
            return Err(Error::InvalidOption {
                option: "run as",
                reason: "must not be root (0)",
            });
        }
        Ok(())
    }
}

/// A DNS label (RFC 1123): 1 to 63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert!(RenderOptions::default().check().is_ok());
        for bad in [
            RenderOptions::default().namespace("Sealcache"),
            RenderOptions::default().namespace("default"),
            RenderOptions::default().namespace("kube-system"),
            RenderOptions::default().namespace("-a"),
            RenderOptions::default().cluster_domain("cluster..local"),
            RenderOptions::default().redis_image("redis 7"),
            RenderOptions::default().backend_image(""),
            RenderOptions::default().run_as(0),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(
            RenderOptions::new(true)
                .redis_image("registry.example/redis@sha256:0123abcd")
                .check()
                .is_ok()
        );
    }
}
