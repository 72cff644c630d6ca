//! Prints this process's environment verdict as JSON.
//!
//! Run: `ENVIRONMENT=prod-us-east cargo run -p sealcache-env-detect --example detect`

// An example program prints what it shows.
#![allow(clippy::print_stdout)]

use sealcache_env_detect::{FeatureContext, detect};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let info = detect(FeatureContext::SecurityEnforcement);
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}
