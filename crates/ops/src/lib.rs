//! Operations on a sealcache deployment directory: what an operator runs in production, as a
//! library that the `sealcache` binary (crates/cli) and `cargo xtask` call.
//!
//! # Brief overview
//!
//! * [`config`]: [`config::generate`] a deployment (or, with `dry_run`, plan it in a scratch
//!   directory), [`config::validate_input`] and [`config::report_verdict`] (exit codes 0/1/2),
//!   [`config::train_dictionary`].
//! * [`rotate`]: [`rotate::rotate`] runs a rotation stage on the files and on every running process
//!   that uses the directory; [`rotate::plan_stage`] is its dry run.
//! * [`stack`]: what runs from a directory, whatever its runtime and topology
//!   ([`stack::discover`]), administered, observed and stopped ([`stack::down`]), each written once.
//! * [`up`]: [`up::compose`] and [`up::compose_cluster`] bring a compose stack up from the
//!   embedded compose files ([`templates`]); [`verify::verify`] checks every hardening item of
//!   whatever runs.
//! * [`status`]: [`status::status`], the stack's security status compared with the directory.
//! * [`report`]: progress as typed lines ([`Progress`], [`Report`], [`Line`], [`Mark`]); nothing
//!   in this crate prints. Errors are [`OpsError`] variants by kind.
//! * [`runtime`]: the local stacks' pid records and signals (Docker and HTTP stay internal).
//! * [`k8s::render`] reads a deployment directory (`cargo xtask config generate [--cluster]`) and
//!   writes a Kustomize `base/`, `overlays/single` or `overlays/cluster`, and the Secret
//!   manifests in a separate, git-ignored `secrets/` output. [`k8s::plan`] does the same without
//!   writing ([`k8s::RenderPlan`]: every file, then [`k8s::RenderPlan::write`]).
//! * [`k8s::RenderOptions`] holds the namespace, the cluster's DNS domain, the images and the
//!   container user; its defaults match the compose files.
//!
//! The operator commands (`sealcache ...`, `cargo xtask ...`) are thin callers of this crate.
//!
//! # Example
//!
//! ```
//! use sealcache_config_gen::{
//!     DeploymentOptions, EnvironmentDetector, FeatureContext, MapSource, SecureConfigGenerator,
//!     write_deployment,
//! };
//! use sealcache_ops::k8s::{self, RenderOptions, ServerCertificate, Topology};
//!
//! let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
//!     .detect(FeatureContext::SecurityEnforcement);
//! let config = SecureConfigGenerator::generate_for_environment(&detected, None)?;
//! let tmp = tempfile::tempdir()?;
//! let dir = tmp.path().join("deployment");
//! write_deployment(&config, &dir, &DeploymentOptions::default())?;
//!
//! let out = tmp.path().join("k8s");
//! let report = k8s::render(&dir, &out, &RenderOptions::default())?;
//! assert_eq!(report.topology, Topology::Single);
//! assert!(report.overlay.join("kustomization.yaml").is_file());
//! // The single node's certificate already names the Service `redis`: no CA key was read.
//! assert_eq!(report.server_certificate, ServerCertificate::FromDirectory);
//! // No password reaches a manifest outside the git-ignored secret output.
//! let password = std::fs::read_to_string(dir.join("secrets/backend/redis_app_password"))?;
//! let deployment = std::fs::read_to_string(out.join("base/backend.yaml"))?;
//! assert!(!deployment.contains(password.trim()));
//! assert_eq!(std::fs::read_to_string(out.join(".gitignore"))?, k8s::GITIGNORE_TEXT);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Runnable: `cargo run -p sealcache-ops --example render`.
//!
//! # Feature flags
//!
//! None. YAML is written by `serde-saphyr` (pure Rust); certificates are read with `x509-parser`
//! and issued by `sealcache-config-gen` (rcgen on `ring`).
//!
//! # Security
//!
//! Secrets go only into Secret manifests, written 0600 under a 0700 `secrets/` that the output's
//! own `.gitignore` excludes; they never appear in a ConfigMap, an environment variable or any
//! other object, and a `.env` that carries one is refused. The CA private key is read only to
//! issue a server certificate for the pod DNS names and goes into no Secret. Left to the
//! operator: the Kubernetes parts a manifest cannot give (encryption of Secrets at rest in etcd,
//! a CNI that enforces NetworkPolicies, who may read Secrets); see `docs/deployment.md`
//! ("Kubernetes").

pub mod config;
pub mod k8s;
pub mod report;
pub mod rotate;
pub mod runtime;
pub mod stack;
pub mod status;
pub mod templates;
pub mod up;
pub mod verify;

mod error;
mod scratch;

pub use error::{Error, OpsError, Result};
pub use report::{Line, Mark, Progress, Report};
// What the public API takes, so that a caller (the `sealcache` binary) needs this crate alone.
/// The security levels a backend reports (`verify` expects one of them).
pub use sealcache_api::SecurityLevel;
/// Scoped API keys: the keys file and minting (`api-key`), from `sealcache-config-gen`.
pub use sealcache_config_gen::api_keys;
pub use sealcache_config_gen::{Environment, ValidationInput, ValidationReport};

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
