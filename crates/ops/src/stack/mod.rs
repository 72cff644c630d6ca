//! The running deployment of a directory, whatever its runtime (local processes, compose) and
//! topology (one node, a cluster): how its processes are found ([`discover`]), administered
//! ([`redis_cli`]), signalled ([`Backend::signal`]), observed ([`node_view`]) and stopped
//! ([`down`]). Each stage is written once against these, never once per stack.

mod down;
mod formation;
mod in_container;
mod network;
mod nodes;
mod record;
mod targets;

pub use self::down::{
    DownOptions, DownReport, StoppedProcess, down, down_lines, project_lines, remove_project,
    stop_local,
};
pub use self::formation::form_cluster;
pub use self::in_container::{CONTAINER_DEPLOYMENT_DIR, IN_CONTAINER_VARIABLE};
pub use self::nodes::{NodeView, address, formed, node_view};
pub use self::record::{COMPOSE_RECORD, ComposeRecord};
pub use self::targets::{
    Backend, Redis, Targets, admin, after_auth, container_cli, discover, local_cli, read_secret,
    redis_cli,
};
pub use crate::runtime::docker::ProjectRemoved;

pub(crate) use self::down::project_runs_from;
pub(crate) use self::targets::containers_using;
pub(crate) use self::targets::{apply_acl, set_masterauth};

/// The first of `dirs` from which a backend runs with a published port (the default deployment
/// directories, when no `--dir` was given), else the first of them.
#[must_use]
pub fn first_running(dirs: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    dirs.iter()
        .find(|d| discover(d).is_ok_and(|t| t.backends.iter().any(|b| b.port().is_some())))
        .or_else(|| dirs.first())
        .cloned()
}
