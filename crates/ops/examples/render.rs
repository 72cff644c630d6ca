//! Renders the Kubernetes manifests of a freshly generated deployment directory (offline, in a
//! temporary directory) and lists what was written.
//!
//! `cargo run -p sealcache-ops --example render`

// An example program prints what it did.
#![allow(clippy::print_stdout)]

use sealcache_config_gen::{
    DeploymentOptions, EnvironmentDetector, FeatureContext, MapSource, SecureConfigGenerator,
    write_deployment,
};
use sealcache_ops::k8s::{self, RenderOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
        .detect(FeatureContext::SecurityEnforcement);
    let config = SecureConfigGenerator::generate_for_environment(&detected, None)?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("deployment");
    write_deployment(&config, &dir, &DeploymentOptions::default())?;

    let report = k8s::render(&dir, &tmp.path().join("k8s"), &RenderOptions::default())?;
    for file in &report.written {
        println!("{}", file.display());
    }
    println!(
        "kubectl apply -k {} (server certificate: {:?})",
        report.overlay.display(),
        report.server_certificate
    );
    Ok(())
}
