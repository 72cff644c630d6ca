//! Hardened Kubernetes manifests rendered from a deployment directory: a Kustomize `base/`, an
//! overlay per topology (`overlays/single` or `overlays/cluster`), and the Secret manifests in a
//! separate, git-ignored output (`secrets/`).
//!
//! # What is rendered
//!
//! * `base/`: the namespace (Pod Security Standards `restricted`, enforced at a pinned version),
//!   a default-deny NetworkPolicy for ingress and egress, the backend's Deployment (2 replicas),
//!   Service (`ClusterIP`), PodDisruptionBudget, NetworkPolicy and service account.
//! * `overlays/single`: Redis as a StatefulSet of one behind the Service `redis`, its
//!   `redis.conf` (the shipped file), its NetworkPolicy, the backend's settings (the directory's
//!   `.env`, adapted), the base and the Secrets.
//! * `overlays/cluster`: a Redis Cluster as a StatefulSet of N nodes behind a headless Service,
//!   one node per Kubernetes node (required pod anti-affinity and topology spread on
//!   `kubernetes.io/hostname`), a small volume per node for `nodes.conf`, each node announcing its
//!   pod DNS name, a PodDisruptionBudget, and the formation Job.
//! * `secrets/<topology>/`: one Secret per set of files a pod mounts, generated from the
//!   directory's files, mounted as directories (never `subPath`, so a rotated Secret reaches the
//!   running pods). The CA private key is in no Secret; `cache_admin`'s password only in the
//!   cluster's formation Secret.
//!
//! Every object is a serde value emitted by `serde-saphyr`: no text template ever sees a secret.
//! The cluster's node certificate must name every pod DNS name
//! (`redis-N.redis-cluster.<namespace>.svc.<domain>`): when the directory's does not, one is
//! issued from the directory's CA and kept in the secret output ([`ServerCertificate`]).

mod backend;
mod certs;
mod command;
mod formation;
mod kustomize;
mod names;
mod namespace;
mod network;
mod options;
mod plan;
mod pod;
mod redis;
mod secret_manifests;
mod source;
mod yaml;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use backend::DEFAULT_BACKENDS;
pub use certs::{RENEW_BEFORE_DAYS, ServerCertificate};
pub use command::render_command;
pub use formation::{FORMATION_SCRIPT, KEEP_FINISHED_SECONDS};
pub use kustomize::{
    BASE_DIR, GITIGNORE, GITIGNORE_TEXT, KUSTOMIZATION, OVERLAYS_DIR, SECRETS_DIR, SERVER_TLS_DIR,
};
pub use names::*;
pub use options::{
    DEFAULT_BACKEND_IMAGE, DEFAULT_CLUSTER_DOMAIN, DEFAULT_NAMESPACE, DEFAULT_REDIS_IMAGE,
    DEFAULT_RUN_AS, POD_SECURITY_VERSION, RenderOptions,
};
pub use plan::{PlannedFile, RenderPlan, RenderReport};
pub use redis::{NODE_STATE_SIZE, REDIS_CLUSTER_CONF, REDIS_CONF};

use crate::error::{Error, Result};
use secret_manifests::SecretManifest;
use source::{SecretFile, Source};

/// The default output directory, relative to the repository (`cargo xtask k8s render`).
pub const DEFAULT_OUT: &str = "deploy/k8s";

/// The two topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One Redis node.
    Single,
    /// A Redis Cluster (`config generate --cluster`).
    Cluster,
}

impl Topology {
    /// The overlay's (and the secret output's) directory name: `single` or `cluster`.
    #[must_use]
    pub fn dir_name(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Cluster => "cluster",
        }
    }
}

/// Renders `dir` into `out` (see the module documentation): [`plan`], then
/// [`RenderPlan::write`].
///
/// # Errors
/// As [`plan`] and [`RenderPlan::write`].
pub fn render(dir: &Path, out: &Path, options: &RenderOptions) -> Result<RenderReport> {
    plan(dir, out, options)?.write()
}

/// Everything a rendering of `dir` into `out` would write, without writing it. Reads `out` only
/// for a server certificate an earlier rendering issued.
///
/// # Errors
/// [`Error::InvalidOption`] for a bad option or a TLS-less directory, [`Error::NotADeployment`],
/// [`Error::TopologyMismatch`] when `options.cluster` disagrees with the directory,
/// [`Error::SecretInSettings`] when its `.env` carries a secret, I/O and certificate errors.
pub fn plan(dir: &Path, out: &Path, options: &RenderOptions) -> Result<RenderPlan> {
    options.check()?;
    let source = Source::read(dir)?;
    let topology = match (&source.cluster, options.cluster) {
        (None, false) => Topology::Single,
        (Some(_), true) => Topology::Cluster,
        (None, true) => {
            return Err(Error::TopologyMismatch {
                path: dir.to_path_buf(),
                directory: "single-node",
                asked: "cluster",
                hint: " (generate one with `cargo xtask config generate --cluster`, or leave out --cluster)",
            });
        }
        (Some(_), false) => {
            return Err(Error::TopologyMismatch {
                path: dir.to_path_buf(),
                directory: "cluster",
                asked: "single-node",
                hint: " (add --cluster)",
            });
        }
    };
    let t = topology.dir_name();
    let overlay = Path::new(OVERLAYS_DIR).join(t);
    let secrets = Path::new(SECRETS_DIR).join(t);
    let kept = out.join(&secrets).join(SERVER_TLS_DIR);
    let server = certs::server_tls(&source, options, &kept)?;
    let ns = options.namespace.as_str();

    let mut files = vec![PlannedFile::public(
        GITIGNORE,
        GITIGNORE_TEXT.as_bytes().to_vec(),
    )];
    let mut public = |dir: &Path, name: &str, objects: &[Value]| -> Result<()> {
        files.push(PlannedFile::public(
            dir.join(name),
            yaml::file(objects, name)?,
        ));
        Ok(())
    };

    // base/
    let base = Path::new(BASE_DIR);
    public(base, "namespace.yaml", &[namespace::namespace(ns)])?;
    public(
        base,
        "backend.yaml",
        &[
            namespace::service_account(BACKEND_ACCOUNT, ns, BACKEND_COMPONENT),
            backend::deployment(options),
            backend::service(ns),
            backend::disruption_budget(ns),
        ],
    )?;
    public(
        base,
        "network-policies.yaml",
        &[network::default_deny(ns), network::backend(ns)],
    )?;
    let base_resources = ["namespace.yaml", "backend.yaml", "network-policies.yaml"];
    public(
        base,
        KUSTOMIZATION,
        &[kustomize::kustomization(
            ns,
            &base_resources.map(str::to_owned),
            &[],
        )],
    )?;

    // overlays/<topology>/
    let shape = match &source.cluster {
        None => redis::Shape::Single,
        Some(record) => redis::Shape::Cluster {
            nodes: record.nodes.len(),
        },
    };
    let settings = backend::settings(&source, options)?;
    let settings_hash = backend::data_hash(&settings);
    let conf = match shape {
        redis::Shape::Single => REDIS_CONF,
        redis::Shape::Cluster { .. } => REDIS_CLUSTER_CONF,
    };
    let conf_hash = backend::data_hash(&[("redis.conf".to_owned(), conf.to_owned())].into());
    let mut redis_objects = vec![
        namespace::service_account(REDIS_ACCOUNT, ns, REDIS_COMPONENT),
        redis::config_map(shape, ns),
        redis::service(shape, ns),
        redis::stateful_set(shape, options, &conf_hash),
    ];
    let backends = match &source.cluster {
        None => DEFAULT_BACKENDS,
        Some(record) => {
            redis_objects.push(redis::disruption_budget(ns));
            record.backends
        }
    };
    public(&overlay, "redis.yaml", &redis_objects)?;
    public(
        &overlay,
        "settings.yaml",
        &[backend::settings_config_map(&settings, ns)],
    )?;
    let mut policies = vec![network::redis(ns, source.cluster.is_some())];
    let mut resources = vec![
        "../../base".to_owned(),
        "redis.yaml".to_owned(),
        "settings.yaml".to_owned(),
        "network-policies.yaml".to_owned(),
    ];
    if let Some(record) = &source.cluster {
        policies.push(network::formation(ns));
        public(
            &overlay,
            "formation.yaml",
            &[
                namespace::service_account(FORMATION_ACCOUNT, ns, FORMATION_COMPONENT),
                formation::config_map(ns),
                formation::job(options, record.nodes.len(), record.replicas_per_primary),
            ],
        )?;
        resources.push("formation.yaml".to_owned());
    }
    public(&overlay, "network-policies.yaml", &policies)?;
    public(
        &overlay,
        "backend-patch.yaml",
        &[backend::deployment_patch(backends, &settings_hash, ns)],
    )?;
    resources.push(format!("../../{SECRETS_DIR}/{t}"));
    public(
        &overlay,
        KUSTOMIZATION,
        &[kustomize::kustomization(
            ns,
            &resources,
            &["backend-patch.yaml"],
        )],
    )?;

    // secrets/<topology>/
    let manifests = secret_manifests(&source, &server, ns);
    files.push(PlannedFile::secret(
        secrets.join("secrets.yaml"),
        yaml::secret_file(&manifests)?,
    ));
    files.push(PlannedFile::secret(
        secrets.join(KUSTOMIZATION),
        zeroize::Zeroizing::new(yaml::file(
            &[kustomize::kustomization(
                ns,
                &["secrets.yaml".to_owned()],
                &[],
            )],
            KUSTOMIZATION,
        )?),
    ));
    if server.origin != ServerCertificate::FromDirectory {
        let kept: PathBuf = secrets.join(SERVER_TLS_DIR);
        for f in [&server.cert, &server.key] {
            files.push(PlannedFile::secret(kept.join(&f.name), f.contents.clone()));
        }
    }
    Ok(RenderPlan {
        out: out.to_path_buf(),
        topology,
        files,
        server_certificate: server.origin,
    })
}

/// The Secrets: one per set of files a pod mounts together.
fn secret_manifests(source: &Source, server: &certs::ServerTls, ns: &str) -> Vec<SecretManifest> {
    fn refs(files: &[SecretFile]) -> Vec<&SecretFile> {
        files.iter().collect()
    }
    let mut server_files = vec![&server.cert, &server.key];
    server_files.extend(&source.node_tls);
    let mut manifests = vec![
        SecretManifest::new(
            REDIS_SECRET,
            ns,
            REDIS_COMPONENT,
            &refs(&source.redis_files),
        ),
        SecretManifest::new(
            BACKEND_SECRET,
            ns,
            BACKEND_COMPONENT,
            &refs(&source.backend_files),
        ),
        SecretManifest::new(API_KEY_SECRET, ns, BACKEND_COMPONENT, &[&source.api_key]),
        SecretManifest::new(CA_SECRET, ns, "tls", &[&source.ca_cert]),
        SecretManifest::new(SERVER_TLS_SECRET, ns, REDIS_COMPONENT, &server_files),
        SecretManifest::new(
            CLIENT_TLS_SECRET,
            ns,
            BACKEND_COMPONENT,
            &refs(&source.client_tls),
        ),
    ];
    if let Some(admin) = &source.admin_password {
        manifests.push(SecretManifest::new(
            ADMIN_SECRET,
            ns,
            FORMATION_COMPONENT,
            &[admin],
        ));
    }
    manifests
}
