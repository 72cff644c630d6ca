//! `secure-up --local --cluster`: the cluster stack as local processes, without Docker. The
//! bring-up is the operations library's ([`sealcache_ops::up::local_cluster`]); what this adds
//! is the developer's part: the release server built from this checkout.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sealcache_config_gen::cluster_dir::{self, ClusterRecord};

use sealcache_ops::stack::NodeView;

use crate::local::build_server;
use crate::progress::{Printer, on_path};

/// The local cluster stack's state directory in `dir` (pid record, node files, logs).
pub fn state_dir(dir: &Path) -> PathBuf {
    sealcache_ops::runtime::local_cluster_state_dir(dir)
}

/// The local cluster stack of `dir` while any of its processes runs.
pub use sealcache_ops::runtime::local_cluster_running as running;
pub use sealcache_ops::runtime::{LocalBackend, LocalCluster, LocalNode};

/// The cluster record of `dir`, or an error saying how to make one.
pub fn record(dir: &Path) -> anyhow::Result<ClusterRecord> {
    cluster_dir::cluster_record(dir)?.with_context(|| {
        format!(
            "{} holds no cluster deployment ({} missing): generate it with `cargo xtask config generate --cluster --out {}`",
            dir.display(),
            cluster_dir::CLUSTER_RECORD,
            dir.display()
        )
    })
}

/// Builds the release server, then starts the nodes, forms the cluster and starts the backends
/// on `port`, `port + 1`, ... ([`sealcache_ops::up::local_cluster`]); returns the backends'
/// ports.
pub fn start(dir: &Path, port: u16) -> anyhow::Result<Vec<u16>> {
    for program in ["redis-server", "redis-cli"] {
        if !on_path(program) {
            bail!(
                "{program} is not installed: apt-get install redis-server redis-tools (or use the compose stack)"
            );
        }
    }
    let binary = build_server()?;
    let options = sealcache_ops::up::LocalOptions::new(port, binary);
    let cluster = sealcache_ops::up::local_cluster(dir, &options, &mut Printer)
        .with_context(|| format!("cannot start {} as local processes", dir.display()))?;
    Ok(cluster.backends.iter().map(|b| b.port).collect())
}

/// What each node of the local `cluster` of `dir` says it is.
pub fn views(dir: &Path, cluster: &LocalCluster) -> Vec<NodeView> {
    sealcache_ops::up::local_cluster_views(dir, cluster)
}
