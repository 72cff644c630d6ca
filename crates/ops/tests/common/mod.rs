//! What the tests of this crate share: a freshly generated deployment directory.

use std::path::PathBuf;

use sealcache_config_gen::cluster_dir::{ClusterOptions, write_cluster_deployment};
use sealcache_config_gen::{
    DeploymentOptions, EnvironmentDetector, FeatureContext, MapSource, SecureConfigGenerator,
    write_deployment,
};

/// A production deployment (a cluster one with `cluster`) generated into a new temporary
/// directory's `deployment`: the temporary directory (kept alive by the caller) and its path.
#[must_use]
pub(crate) fn deployment(cluster: bool) -> (tempfile::TempDir, PathBuf) {
    let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
        .detect(FeatureContext::SecurityEnforcement);
    let config = SecureConfigGenerator::generate_for_environment(&detected, None)
        .expect("generate a production configuration");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("deployment");
    let options = DeploymentOptions::default();
    if cluster {
        write_cluster_deployment(&config, &dir, &options, &ClusterOptions::default())
            .expect("write a cluster deployment");
    } else {
        write_deployment(&config, &dir, &options).expect("write a deployment");
    }
    (tmp, dir)
}
