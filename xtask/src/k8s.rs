//! `cargo xtask k8s render`: hardened Kubernetes manifests from a deployment directory, through
//! `sealcache_ops::k8s` (the checks of `cargo xtask test` are in `k8s_check.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use sealcache_ops::k8s::{self, RenderOptions};

use crate::progress::{Printer, workspace_root};

/// `k8s` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum K8sCommand {
    /// Render a Kustomize base/ and overlays/single (or overlays/cluster) from a deployment
    /// directory, with the Secret manifests in a separate, git-ignored OUT/secrets/.
    Render(RenderArgs),
    /// Render both topologies from fresh directories and run the offline checks (kubectl
    /// kustomize, kubernetes-validate, checkov, yamllint): the step of `cargo xtask test`.
    Check,
}

impl K8sCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            K8sCommand::Render(args) => args.run(),
            K8sCommand::Check => {
                crate::k8s_check::test_manifests()?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Options of `k8s render`.
#[derive(Debug, clap::Args)]
pub(crate) struct RenderArgs {
    /// The deployment directory [default: deploy/generated, or deploy/generated-cluster with
    /// --cluster].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Render a Redis Cluster (from a `config generate --cluster` directory).
    #[arg(long)]
    cluster: bool,
    /// Output directory [default: deploy/k8s].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Namespace (the cluster's node certificate names it: change it here, not in an overlay).
    #[arg(long, default_value = k8s::DEFAULT_NAMESPACE)]
    namespace: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = k8s::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// Redis image [default: $SEALCACHE_REDIS_IMAGE, else the compose files' official image].
    #[arg(long)]
    redis_image: Option<String>,
    /// Backend image [default: $SEALCACHE_BACKEND_IMAGE, else sealcache-server:local].
    #[arg(long)]
    backend_image: Option<String>,
    /// List what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl RenderArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let dir = self.dir.clone().unwrap_or_else(|| {
            if self.cluster {
                crate::progress::default_cluster_dir()
            } else {
                crate::progress::default_dir()
            }
        });
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| workspace_root().join(k8s::DEFAULT_OUT));
        let image = |flag: &Option<String>, var: &str, default: &str| {
            flag.clone()
                .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
                .unwrap_or_else(|| default.to_owned())
        };
        let options = RenderOptions::new(self.cluster)
            .namespace(self.namespace.clone())
            .cluster_domain(self.cluster_domain.clone())
            .redis_image(image(
                &self.redis_image,
                "SEALCACHE_REDIS_IMAGE",
                k8s::DEFAULT_REDIS_IMAGE,
            ))
            .backend_image(image(
                &self.backend_image,
                "SEALCACHE_BACKEND_IMAGE",
                k8s::DEFAULT_BACKEND_IMAGE,
            ));
        k8s::render_command(&dir, &out, &options, self.dry_run, &mut Printer)?;
        Ok(ExitCode::SUCCESS)
    }
}
