//! `secure-up --local`: the same topology as local processes, without Docker. The bring-up is
//! the operations library's ([`sealcache_ops::up::local`]); what this adds is the developer's
//! part: the release server built from this checkout.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::progress::{Printer, cargo, on_path, step};

/// What `down` needs to stop a local stack (and a rotation to reach it): the ops library's record.
pub use sealcache_ops::runtime::LocalPids as Pids;
pub use sealcache_ops::runtime::{cmdline, local_recorded as recorded, local_running as running};
pub use sealcache_ops::up::{host_value, quoted, spawn_redis, spawn_server};

/// A local TCP port free at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(sealcache_ops::up::free_port()?)
}

/// Builds the release server (with the operator binary: the same package set as the backend
/// image's build, so the two share every artefact; built alone, feature unification differs and
/// the whole release tree was built twice, 80 s warm); returns the server's binary.
pub fn build_server() -> anyhow::Result<PathBuf> {
    step(
        "cargo build --release -p sealcache-server -p sealcache-cli",
        cargo().args(RELEASE_BUILD),
    )?;
    Ok(crate::progress::target_dir().join("release/sealcache-server"))
}

/// The one release build of every stack, the image and the partition hosts: the server and the
/// operator command together (built alone, feature unification differs and the whole release
/// tree is built again).
pub const RELEASE_BUILD: &[&str] = &[
    "build",
    "--release",
    "--locked",
    "-p",
    "sealcache-server",
    "-p",
    "sealcache-cli",
];

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: rustix::process::Signal) -> anyhow::Result<()> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .with_context(|| format!("{pid} is not a process id"))?;
    rustix::process::kill_process(target, sig)?;
    Ok(())
}

/// Builds the release server, then starts Redis and the server from `dir` as local processes
/// ([`sealcache_ops::up::local`]); returns the API port.
pub fn start(dir: &Path, port: u16) -> anyhow::Result<u16> {
    if !on_path("redis-server") {
        bail!(
            "neither a Docker engine nor redis-server is available: install docker.io and docker-compose, or redis-server (apt-get install redis-server)"
        );
    }
    let binary = build_server()?;
    let options = sealcache_ops::up::LocalOptions::new(port, binary);
    let pids = sealcache_ops::up::local(dir, &options, &mut Printer)
        .with_context(|| format!("cannot start {} as local processes", dir.display()))?;
    Ok(pids.port)
}

/// Stops the local processes that run from `dir` (`sealcache_ops::stack::stop_local`, the local
/// part of the `down` every stack shares). Returns how many it stopped.
pub fn stop(dir: &Path) -> anyhow::Result<usize> {
    Ok(sealcache_ops::stack::stop_local(dir)?.len())
}

/// The deployment the tests of this crate write.
#[cfg(test)]
pub mod tests {
    use std::path::Path;

    /// A production deployment directory written to `dir` (also used by the tests of rotate/).
    pub fn write_production_deployment(dir: &Path) {
        let detected = sealcache_env_detect::EnvironmentDetector::new(
            sealcache_env_detect::MapSource::new().var("ENVIRONMENT", "production"),
        )
        .detect(sealcache_env_detect::FeatureContext::SecurityEnforcement);
        let config =
            sealcache_config_gen::SecureConfigGenerator::generate_for_environment(&detected, None)
                .unwrap();
        sealcache_config_gen::write_deployment(
            &config,
            dir,
            &sealcache_config_gen::DeploymentOptions::default(),
        )
        .unwrap();
    }
}
