//! Docker, driven through argument arrays (no shell): the operations library's helpers
//! (`sealcache_ops::runtime::docker`), with xtask's error type.

pub use sealcache_ops::runtime::docker::engine_answers;

/// Runs `docker ARGS` and returns its output (non-zero exit is an error with stderr).
///
/// # Errors
/// `docker` cannot run or fails.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    Ok(sealcache_ops::runtime::docker::docker(args)?)
}

/// `docker inspect` of one object as JSON.
///
/// # Errors
/// `docker` fails or prints no object.
pub fn inspect(id: &str) -> anyhow::Result<serde_json::Value> {
    Ok(sealcache_ops::runtime::docker::inspect(id)?)
}
