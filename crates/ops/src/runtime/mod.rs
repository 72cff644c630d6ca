//! How the operations reach the processes of a deployment: Docker (`docker` through argument
//! arrays), the local stacks' pid records, and the backend's HTTP API on 127.0.0.1.

pub mod compose;
mod confined;
pub mod docker;
pub(crate) use self::local::send_signal;
mod http;
mod local;

pub use self::confined::{
    as_owner_of, chown_below, chown_below_one, read_below, read_bytes_below,
    refuse_shared_directory,
};
pub use self::http::request;

pub use self::local::{
    LOCAL_CLUSTER_STATE_DIR, LOCAL_STATE_DIR, LocalBackend, LocalCluster, LocalNode, LocalPids,
    PIDS_FILE, acl_file_in_use, cmdline, local_cluster_running, local_cluster_state_dir,
    local_recorded, local_running, local_state_dir, recorded_process_runs, rewrite_masterauth,
    signal_server, started_at, terminate,
};

/// The deployment's API key (empty when it cannot be read, or is a link: see [`read_below`]).
#[must_use]
pub fn api_key(dir: &std::path::Path) -> String {
    read_below(dir, sealcache_config_gen::layout::API_KEY)
        .unwrap_or_default()
        .trim()
        .to_owned()
}
