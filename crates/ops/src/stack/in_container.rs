//! The deployment as seen from inside its own backend container (`docker compose exec backend
//! sealcache config rotate --stage add`): the compose file mounts the deployment directory at
//! [`CONTAINER_DEPLOYMENT_DIR`] and marks the container with [`IN_CONTAINER_VARIABLE`]. There is
//! no Docker and no `redis-cli` in there, so the Redis is the backend's own (`REDIS_URL`'s host,
//! administered with redis-rs) and the backend is the `sealcache-server` process beside the
//! command (same user, same pid namespace: signalled directly).

use std::path::Path;

use super::record::ComposeRecord;
use super::targets::{Backend, Redis, Targets};
use crate::error::{Result, refuse};
use crate::runtime;
use sealcache_config_gen::{cluster_dir, layout};

/// Set by the compose file in the backend container (`backend`): the command runs inside it.
pub const IN_CONTAINER_VARIABLE: &str = "SEALCACHE_IN_CONTAINER";

/// Where the compose file mounts the deployment directory in the backend container.
pub const CONTAINER_DEPLOYMENT_DIR: &str = "/srv/sealcache";

/// The server's API port inside the container when `SEALCACHE_LISTEN` names none.
const CONTAINER_API_PORT: u16 = 8080;

/// The processes that use `dir` when this command runs inside the backend container and `dir`
/// is the deployment mounted there; `None` otherwise.
///
/// # Errors
/// [`crate::OpsError::Refused`] for a cluster deployment (its other nodes' and backends' reloads
/// need the host) or a record of more than one backend; [`crate::OpsError::Io`] and
/// [`crate::OpsError::Input`] for an unreadable `.env` or record.
pub(crate) fn targets(dir: &Path) -> Result<Option<Targets>> {
    let marker = std::env::var(IN_CONTAINER_VARIABLE).ok();
    let mounted = std::fs::canonicalize(CONTAINER_DEPLOYMENT_DIR).ok();
    targets_in(dir, marker.as_deref(), mounted.as_deref(), server_pid)
}

/// [`targets`] with what it learns from the process and the file system given: the marker's
/// value, where the deployment is mounted, and how to find the serving server's pid.
fn targets_in(
    dir: &Path,
    marker: Option<&str>,
    mounted: Option<&Path>,
    server_pid: impl FnOnce() -> Option<u32>,
) -> Result<Option<Targets>> {
    if marker != Some("backend") || mounted != Some(dir) {
        return Ok(None);
    }
    if cluster_dir::cluster_record(dir)?.is_some()
        || ComposeRecord::read(dir)?.is_some_and(|r| r.backends.len() > 1)
    {
        refuse!(
            "{} is a deployment with several backends or Redis nodes, which one backend container cannot reach: nothing was changed; run `sealcache` on the host, where `docker` answers",
            dir.display()
        );
    }
    let mut targets = Targets::default();
    targets.redis.push(redis_of(dir)?);
    match server_pid() {
        Some(pid) => targets.backends.push(Backend::Local {
            pid,
            port: api_port(),
        }),
        None => targets.down.push(
            "no sealcache-server runs in this container: let the container restart, then run again"
                .to_owned(),
        ),
    }
    Ok(Some(targets))
}

/// The Redis of the deployment's `REDIS_URL` (the backend's own).
fn redis_of(dir: &Path) -> Result<Redis> {
    let env = sealcache_config_gen::read_env_file(&dir.join(layout::ENV_FILE))?;
    let url = env
        .get("REDIS_URL")
        .and_then(|u| reqwest::Url::parse(u).ok());
    let Some((host, port)) = url.as_ref().and_then(|u| {
        Some((
            u.host_str()?.to_owned(),
            u.port().unwrap_or(layout::REDIS_PORT),
        ))
    }) else {
        refuse!(
            "{}'s .env names no Redis (REDIS_URL): nothing was changed",
            dir.display()
        );
    };
    Ok(Redis::Network { host, port })
}

/// The port of `SEALCACHE_LISTEN` (the image sets `0.0.0.0:8080`).
fn api_port() -> u16 {
    std::env::var("SEALCACHE_LISTEN")
        .ok()
        .and_then(|l| l.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .unwrap_or(CONTAINER_API_PORT)
}

/// The oldest process of this pid namespace whose program is `sealcache-server` serving (not
/// its `--healthcheck`, not the init that started it).
fn server_pid() -> Option<u32> {
    let mut servers: Vec<(std::time::SystemTime, u32)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_server(&runtime::cmdline(*pid)))
        .filter_map(|pid| Some((runtime::started_at(pid)?, pid)))
        .collect();
    servers.sort();
    servers.first().map(|(_, pid)| *pid)
}

/// Whether a command line (arguments joined by spaces) is the serving `sealcache-server`.
fn is_server(cmdline: &str) -> bool {
    let mut args = cmdline.split_whitespace();
    args.next()
        .is_some_and(|program| program.rsplit('/').next() == Some("sealcache-server"))
        && args.all(|a| a != "--healthcheck")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::path::PathBuf;

    use sealcache_config_gen::cluster_dir::{ClusterOptions, write_cluster_deployment};
    use sealcache_config_gen::{
        DeploymentOptions, EnvironmentDetector, FeatureContext, MapSource, SecureConfigGenerator,
        write_deployment,
    };

    use super::*;
    use crate::OpsError;

    fn deployment(cluster: bool) -> (tempfile::TempDir, PathBuf) {
        let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
            .detect(FeatureContext::SecurityEnforcement);
        let config = SecureConfigGenerator::generate_for_environment(&detected, None).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deployment");
        let options = DeploymentOptions::default();
        if cluster {
            write_cluster_deployment(&config, &dir, &options, &ClusterOptions::default()).unwrap();
        } else {
            write_deployment(&config, &dir, &options).unwrap();
        }
        (tmp, dir)
    }

    #[test]
    fn only_the_marked_container_with_this_directory_mounted_is_inside() {
        let (_tmp, dir) = deployment(false);
        let never = || panic!("looked for a server outside the container");
        assert!(targets_in(&dir, None, Some(&dir), never).unwrap().is_none());
        assert!(
            targets_in(&dir, Some("redis"), Some(&dir), never)
                .unwrap()
                .is_none()
        );
        let elsewhere = Path::new("/srv/another");
        assert!(
            targets_in(&dir, Some("backend"), Some(elsewhere), never)
                .unwrap()
                .is_none()
        );
        assert!(
            targets_in(&dir, Some("backend"), None, never)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn inside_the_redis_is_the_env_files_and_the_backend_the_server_beside() {
        let (_tmp, dir) = deployment(false);
        let targets = targets_in(&dir, Some("backend"), Some(&dir), || Some(77))
            .unwrap()
            .unwrap();
        assert!(
            matches!(&targets.redis[..], [Redis::Network { host, port }] if host == "redis" && *port == layout::REDIS_PORT),
            "{:?}",
            targets.redis
        );
        assert!(
            matches!(&targets.backends[..], [Backend::Local { pid: 77, .. }]),
            "{:?}",
            targets.backends
        );
        assert!(targets.down.is_empty());
        // No server running: nothing to reload, said as what is down.
        let targets = targets_in(&dir, Some("backend"), Some(&dir), || None)
            .unwrap()
            .unwrap();
        assert!(targets.backends.is_empty());
        assert_eq!(targets.down.len(), 1, "{:?}", targets.down);
    }

    #[test]
    fn a_cluster_or_a_directory_without_a_redis_url_is_refused_inside() {
        let (_tmp, dir) = deployment(true);
        let err = targets_in(&dir, Some("backend"), Some(&dir), || Some(77)).unwrap_err();
        assert!(matches!(err, OpsError::Refused { .. }), "{err}");

        let (_tmp, dir) = deployment(false);
        let env = dir.join(layout::ENV_FILE);
        let text = std::fs::read_to_string(&env).unwrap();
        let without: String = text
            .lines()
            .filter(|l| !l.starts_with("REDIS_URL="))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&env, without).unwrap();
        let err = targets_in(&dir, Some("backend"), Some(&dir), || Some(77)).unwrap_err();
        assert!(
            matches!(err, OpsError::Refused { .. }) && err.to_string().contains("REDIS_URL"),
            "{err}"
        );
    }

    #[test]
    fn only_the_serving_process_is_the_server() {
        assert!(is_server("sealcache-server "));
        assert!(is_server("/usr/local/bin/sealcache-server"));
        assert!(!is_server("sealcache-server --healthcheck "));
        assert!(!is_server("/sbin/docker-init -- sealcache-server "));
        assert!(!is_server("sealcache config rotate --stage add"));
        assert!(!is_server(""));
    }
}
