//! Generates a production deployment into a temporary directory, validates it, breaks one thing
//! and validates again. No secret is printed.
//!
//! Run: `cargo run -p sealcache-config-gen --example generate_and_validate`

// An example program prints what it shows.
#![allow(clippy::print_stdout)]

use std::os::unix::fs::PermissionsExt as _;

use sealcache_config_gen::{
    DeploymentOptions, SecureConfigGenerator, layout, validate_dir, write_deployment,
};
use sealcache_env_detect::{EnvironmentDetector, FeatureContext, MapSource};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
        .detect(FeatureContext::SecurityEnforcement);
    let config = SecureConfigGenerator::generate_for_environment(&detected, None)?;
    println!("{}", serde_json::to_string_pretty(&config.summary())?);

    let dir = tempfile::tempdir()?;
    let written = write_deployment(&config, dir.path(), &DeploymentOptions::default())?;
    println!("wrote {} files", written.files.len());
    let report = validate_dir(dir.path(), None)?;
    println!(
        "fresh: score {} ({:?})",
        report.security_score, report.recommendation
    );

    std::fs::set_permissions(
        dir.path().join(layout::API_KEY),
        std::fs::Permissions::from_mode(0o644),
    )?;
    let report = validate_dir(dir.path(), None)?;
    println!(
        "after chmod 644 on the API key: {}",
        serde_json::to_string_pretty(&report)?
    );
    Ok(())
}
