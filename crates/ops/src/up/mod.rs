//! `up` of a deployment directory: as a compose stack ([`compose`], [`compose_cluster`]) with
//! the embedded compose files ([`crate::templates`]), or as local processes without Docker
//! ([`local`], [`local_cluster`]): no checkout needed. Images are given (or the compose files' defaults,
//! `SEALCACHE_REDIS_IMAGE` and `SEALCACHE_BACKEND_IMAGE` from the environment); building them is
//! a developer task (`cargo xtask secure-up` builds them, then calls this).
//!
//! `up` never harms what it deploys: a healthy stack of the same project and directory is left
//! as it runs ([`UpOutcome::AlreadyRunning`]). Otherwise the secrets are handed to the
//! containers' user (as root), the templates written, the project (re)created, recorded
//! ([`crate::stack::ComposeRecord`]) and waited for until every container is healthy. Verify
//! it with [`crate::verify::verify`].

mod cluster;
mod local;
mod local_cluster;

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, Instant};

use sealcache_config_gen::layout;

use crate::error::{OpsError, Result, io};
use crate::report::{Progress, ProgressExt as _};
use crate::runtime::compose::Compose;
use crate::runtime::docker::{docker, inspect};
use crate::stack::ComposeRecord;

pub use self::cluster::{CLUSTER_COMPOSE_FILE, CLUSTER_STATE_DIR, compose_cluster};
pub use self::local::{
    LocalOptions, default_server_binary, free_port, free_ports, host_path, host_value, local,
    on_path, quoted, spawn_redis, spawn_server,
};
pub use self::local_cluster::{local_cluster, views as local_cluster_views, write_private};
pub use crate::runtime::refuse_shared_directory;

/// The compose project `up` creates unless told another.
pub const DEFAULT_PROJECT: &str = "sealcache";
/// The host port (127.0.0.1) of the API unless told another.
pub const DEFAULT_PORT: u16 = 8080;
/// The user and group every container runs as.
pub const CONTAINER_UID: u32 = 999;
/// Longest wait for the containers to become healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(120);

/// What to bring up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpOptions {
    /// The compose project name.
    pub project: String,
    /// The API's host port on 127.0.0.1.
    pub port: u16,
    /// The development stack (`docker-compose.dev.yml`: plaintext Redis) instead of the hardened
    /// one.
    pub development: bool,
    /// Also the observability profile (OpenTelemetry collector, Prometheus, Grafana).
    pub observability: bool,
    /// The Redis image (`None`: `SEALCACHE_REDIS_IMAGE`, else the compose file's default).
    pub redis_image: Option<String>,
    /// The backend image (`None`: `SEALCACHE_BACKEND_IMAGE`, else `sealcache-server:local`).
    pub backend_image: Option<String>,
    /// The internal network's subnet (`None`: the compose file's, `172.30.231.0/24` for one node,
    /// `172.30.232.0/24` for a cluster).
    pub internal_subnet: Option<String>,
}

impl UpOptions {
    /// The hardened stack of project `project` with its API on 127.0.0.1:`port`.
    #[must_use]
    pub fn new(project: impl Into<String>, port: u16) -> Self {
        Self {
            project: project.into(),
            port,
            development: false,
            observability: false,
            redis_image: None,
            backend_image: None,
            internal_subnet: None,
        }
    }

    /// The development stack instead.
    #[must_use]
    pub fn development(mut self, development: bool) -> Self {
        self.development = development;
        self
    }

    /// With the observability profile.
    #[must_use]
    pub fn observability(mut self, observability: bool) -> Self {
        self.observability = observability;
        self
    }

    /// With these images (`None`: the environment's, else the compose files' defaults).
    #[must_use]
    pub fn images(mut self, redis: Option<String>, backend: Option<String>) -> Self {
        self.redis_image = redis;
        self.backend_image = backend;
        self
    }

    /// With this internal subnet.
    #[must_use]
    pub fn internal_subnet(mut self, subnet: Option<String>) -> Self {
        self.internal_subnet = subnet;
        self
    }
}

/// What `up` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UpOutcome {
    /// A healthy stack of the project already ran from the directory: nothing was changed.
    AlreadyRunning,
    /// The stack was created and every container is healthy.
    Started,
}

/// Brings up the compose stack of `dir` (a generated deployment directory).
///
/// # Errors
/// [`OpsError::NotADeployment`] when `dir` holds none; [`OpsError::Command`] when compose fails;
/// [`OpsError::Unhealthy`] when a container is not healthy within 120 s (the stack is left
/// running for inspection); [`OpsError::Io`] for the secrets' hand-over or the templates.
pub fn compose(dir: &Path, options: &UpOptions, progress: &mut dyn Progress) -> Result<UpOutcome> {
    let dir = std::fs::canonicalize(dir).map_err(io("open", dir))?;
    crate::runtime::refuse_shared_directory(&dir)?;
    if !dir.join(layout::ENV_FILE).is_file() {
        return Err(OpsError::NotADeployment {
            path: dir.clone(),
            missing: layout::ENV_FILE,
        });
    }
    check_project_name(&options.project)?;
    if healthy_stack(&options.project, &dir) {
        progress.ok(already_running(&dir, options)?);
        return Ok(UpOutcome::AlreadyRunning);
    }
    before_creating(&dir, options)?;
    hand_secrets_to_containers(&dir, progress)?;
    let compose = project(&dir, options)?;
    let _ = compose.run(&["down", "--remove-orphans"]);
    ports_free(&[options.port])?;
    // Recorded before anything is created, so that `down --dir` finds whatever a failure leaves.
    ComposeRecord::new(options.project.clone(), vec![options.port]).write(&dir)?;
    let created = if options.observability {
        compose.run(&["--profile", "observability", "up", "-d"])
    } else {
        compose.run(&["up", "-d"])
    };
    created_or_removed(&compose, created)?;
    if options.observability {
        progress.ok(
            "Observability: Prometheus http://127.0.0.1:9090, Grafana http://127.0.0.1:3000 (dashboard `sealcache`; admin password = the API key)",
        );
    }
    progress.ok(format!(
        "Networks: redis_internal (internal: true, no host address), frontend; via {}",
        compose.name()
    ));
    wait_healthy(&compose, &["redis", "backend"], progress)?;
    progress.ok("Containers healthy");
    Ok(UpOutcome::Started)
}

/// A compose project name compose keeps as given: lower-case letters, digits, `-` and `_`,
/// starting with a letter or digit (docker-compose v1 lower-cases other names, so a check by
/// label would miss the project it creates).
///
/// # Errors
/// [`OpsError::InvalidOption`] for any other name.
pub fn check_project_name(project: &str) -> Result<()> {
    let valid = project
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(OpsError::InvalidOption {
            option: "--project",
            reason: "a compose project name is lower-case letters, digits, '-' and '_', starting with a letter or digit",
        })
    }
}

/// The line of a stack that already runs healthy: nothing changed, and where it answers.
fn already_running(dir: &Path, options: &UpOptions) -> Result<String> {
    let ports = ComposeRecord::read(dir)?
        .map(|r| r.backends)
        .unwrap_or_default();
    let answers = match ports.first() {
        Some(port) if *port != options.port => {
            format!("; it answers on 127.0.0.1:{port} (--port is not applied to a running stack)")
        }
        _ => String::new(),
    };
    Ok(format!(
        "Stack {} already runs healthy from {}: nothing changed (no container recreated; `down` first to redeploy{}){answers}",
        options.project,
        dir.display(),
        if options.observability {
            ", --observability is not applied to a running stack"
        } else {
            ""
        }
    ))
}

/// What must hold before a project is (re)created from `dir`: its containers are this
/// directory's, and the directory runs under no other project.
///
/// # Errors
/// [`OpsError::Refused`] naming what to do; nothing was changed.
fn before_creating(dir: &Path, options: &UpOptions) -> Result<()> {
    refuse_foreign_project(&options.project, dir)?;
    let others: std::collections::BTreeSet<String> = crate::stack::containers_using(dir, false)?
        .iter()
        .filter_map(|v| v["Config"]["Labels"]["com.docker.compose.project"].as_str())
        .filter(|p| *p != options.project)
        .map(str::to_owned)
        .collect();
    if let Some(other) = others.first() {
        return Err(OpsError::Refused {
            reason: format!(
                "{} already runs as compose project {other}: nothing was changed; one directory runs one stack (`sealcache down --dir {}` first, or `--project {other}`)",
                dir.display(),
                dir.display()
            ),
        });
    }
    Ok(())
}

/// Every API port is free (checked once the project's own earlier containers are gone).
///
/// # Errors
/// [`OpsError::Refused`] naming the port.
fn ports_free(ports: &[u16]) -> Result<()> {
    for port in ports {
        if std::net::TcpListener::bind(("127.0.0.1", *port)).is_err() {
            return Err(OpsError::Refused {
                reason: format!("127.0.0.1:{port} is in use: choose another --port"),
            });
        }
    }
    Ok(())
}

/// `compose up -d`'s outcome: on a failure, what it created is removed (its networks too, which
/// would block the next attempt), and the error says what to try.
fn created_or_removed(compose: &Compose, created: Result<String>) -> Result<()> {
    let Err(err) = created else {
        return Ok(());
    };
    let _ = compose.run(&["down", "--remove-orphans"]);
    let text = err.to_string();
    let hint = if text.contains("overlaps") {
        " (the internal network's subnet is taken: pass --internal-subnet with a free /24)"
    } else if text.contains("pull") || text.contains("not found") || text.contains("no such host") {
        " (an image is missing: build it, or pass --redis-image / --backend-image)"
    } else {
        ""
    };
    Err(err.in_step(format!(
        "compose project {} could not be created; what it created was removed{hint}",
        compose.project()
    )))
}

/// What `dir` was generated for: its environment, and whether it is a cluster deployment.
///
/// # Errors
/// [`OpsError::Deployment`] when the directory's records cannot be read.
pub fn deployment_of(dir: &Path) -> Result<(sealcache_config_gen::Environment, bool)> {
    if !dir.join(layout::ENV_FILE).is_file() {
        return Err(OpsError::NotADeployment {
            path: dir.to_path_buf(),
            missing: layout::ENV_FILE,
        });
    }
    let environment = sealcache_config_gen::rotation::recorded_environment(dir)?;
    let cluster = sealcache_config_gen::cluster_dir::cluster_record(dir)?.is_some();
    Ok((environment, cluster))
}

/// The compose project of `dir` (canonical) for `options`: the embedded compose file, and the
/// directory, the templates, the images, the API port and the containers' user set for
/// interpolation.
///
/// # Errors
/// [`OpsError::Io`] when the templates cannot be written; as [`Compose::detect`].
pub fn project(dir: &Path, options: &UpOptions) -> Result<Compose> {
    let file = if options.development {
        "docker-compose.dev.yml"
    } else {
        "docker-compose.secure.yml"
    };
    project_of(dir, options, file)
}

/// [`project`] of the embedded compose file `file` (a template's name,
/// `docker-compose.cluster.yml` for a cluster).
///
/// # Errors
/// As [`project`].
pub fn project_of(dir: &Path, options: &UpOptions, file: &str) -> Result<Compose> {
    let templates = crate::templates::write(dir)?;
    let uid = CONTAINER_UID.to_string();
    let mut compose = Compose::detect(&options.project)?
        .file(&templates.join(file))
        .var("SEALCACHE_DIR", dir.to_string_lossy())
        .var("SEALCACHE_DEPLOY", templates.to_string_lossy())
        .var("SEALCACHE_PORT", options.port.to_string())
        .var("SEALCACHE_UID", uid.clone())
        .var("SEALCACHE_GID", uid);
    if let Some(image) = &options.redis_image {
        compose = compose.var("SEALCACHE_REDIS_IMAGE", image.clone());
    }
    if let Some(image) = &options.backend_image {
        compose = compose.var("SEALCACHE_BACKEND_IMAGE", image.clone());
    }
    if let Some(subnet) = &options.internal_subnet {
        compose = compose.var("SEALCACHE_INTERNAL_SUBNET", subnet.clone());
    }
    if options.observability {
        compose = compose.var("SEALCACHE_OTLP_ENDPOINT", "http://otel-collector:4318");
    }
    Ok(compose)
}

/// Whether compose project `project` runs healthy from `dir`: its `redis` and `backend` one
/// container each, healthy, mounting the directory's secrets.
#[must_use]
pub fn healthy_stack(project: &str, dir: &Path) -> bool {
    healthy_services(project, dir, &["redis", "backend"])
}

/// Whether each of `services` of compose project `project` runs as one healthy container that
/// mounts `dir`'s secrets.
#[must_use]
pub fn healthy_services(project: &str, dir: &Path, services: &[&str]) -> bool {
    let secrets = dir.join(layout::SECRETS_DIR);
    services.iter().all(|service| {
        let filters = [
            format!("label=com.docker.compose.project={project}"),
            format!("label=com.docker.compose.service={service}"),
        ];
        let Ok(ids) = docker(&["ps", "-q", "--filter", &filters[0], "--filter", &filters[1]])
        else {
            return false;
        };
        let mut ids = ids.split_whitespace();
        let (Some(id), None) = (ids.next(), ids.next()) else {
            return false;
        };
        inspect(id).is_ok_and(|c| {
            c["State"]["Health"]["Status"] == "healthy"
                && c["Mounts"].as_array().is_some_and(|m| {
                    m.iter().any(|m| {
                        m["Source"]
                            .as_str()
                            .is_some_and(|s| Path::new(s).starts_with(&secrets))
                    })
                })
        })
    })
}

/// Refuses to (re)create compose project `project` from `dir` while any of its containers runs
/// from another directory: `up` would remove another deployment's stack.
///
/// # Errors
/// [`OpsError::Refused`]; as `docker` when the containers cannot be listed.
pub(crate) fn refuse_foreign_project(project: &str, dir: &Path) -> Result<()> {
    if crate::stack::project_runs_from(project, dir)? {
        return Ok(());
    }
    Err(OpsError::Refused {
        reason: format!(
            "compose project {project} runs containers that are not from {}: nothing was changed; choose another --project, or remove that stack first (`sealcache down --project {project}`)",
            dir.display()
        ),
    })
}

/// Gives the containers' user the secret files (0600 stays 0600; the CA key stays outside
/// `secrets/`), as root; otherwise says that the containers read them as their owner. For a
/// rotation run inside the backend container, also `rotation.json` (created when missing; the
/// compose file mounts it, and the secrets, writable there) and read access to `.env` (root's,
/// group 999, 0640). The directory itself, `ca/`, `compose/` and the records stay root's, so the
/// container can replace none of them.
fn hand_secrets_to_containers(dir: &Path, progress: &mut dyn Progress) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        progress.warn(format!(
            "not root: the containers read the secrets as their owner; run as root to hand them to uid {CONTAINER_UID}"
        ));
        return Ok(());
    }
    hand_over_secrets(dir, CONTAINER_UID, CONTAINER_UID)?;
    let record = dir.join(layout::ROTATION_FILE);
    if std::fs::symlink_metadata(&record).is_err() {
        sealcache_config_gen::rotation::write_record(
            dir,
            &sealcache_config_gen::rotation::RotationRecord::default(),
        )?;
    }
    crate::runtime::chown_below(dir, layout::ROTATION_FILE, CONTAINER_UID, CONTAINER_UID)?;
    crate::runtime::chown_below(dir, layout::ENV_FILE, 0, CONTAINER_UID)?;
    let env = dir.join(layout::ENV_FILE);
    std::fs::set_permissions(&env, std::os::unix::fs::PermissionsExt::from_mode(0o640))
        .map_err(io("set the mode of", &env))
}

/// Hands `dir`'s `secrets/` to the containers' user `uid`:`gid` so that a container may write
/// only inside its leaf directories: every file and the leaf directories (`backend/`, `redis/`,
/// `pending/`, created when missing) become theirs, while `secrets/` and `secrets/tls/` stay
/// root's (group `gid`, 0750). So no entry a mount names (`secrets/api_key`, `secrets/backend`,
/// a TLS file) can be swapped for a link that Docker would follow when it mounts it again; the
/// files at those levels are rewritten in place. By file descriptor, never entering a link.
///
/// # Errors
/// [`OpsError::Io`] naming the path that could not be handed over.
pub fn hand_over_secrets(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    let pending = dir.join(layout::PENDING_DIR);
    if std::fs::symlink_metadata(&pending).is_err() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&pending)
            .map_err(io("create", &pending))?;
    }
    // The two root-held levels first, so that no moment leaves them to the containers' user;
    // then what they hold.
    for rel in [layout::SECRETS_DIR, layout::TLS_DIR] {
        let path = dir.join(rel);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        crate::runtime::chown_below_one(dir, rel, 0, gid)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o750))
            .map_err(io("set the mode of", &path))?;
    }
    for rel in [layout::SECRETS_DIR, layout::TLS_DIR] {
        let path = dir.join(rel);
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries {
            let name = entry.map_err(io("read", &path))?.file_name();
            let child = format!("{rel}/{}", name.to_string_lossy());
            if child != layout::TLS_DIR {
                crate::runtime::chown_below(dir, &child, uid, gid)?;
            }
        }
    }
    Ok(())
}

/// `chown -R` to the containers' user of each of `dir`'s subdirectories `subs`, by file
/// descriptor (no link followed: [`crate::runtime::chown_below`]).
///
/// # Errors
/// [`OpsError::Io`] naming the path that could not be handed over.
pub fn chown_to_containers(dir: &Path, subs: &[&str]) -> Result<()> {
    for sub in subs {
        crate::runtime::chown_below(dir, sub, CONTAINER_UID, CONTAINER_UID)?;
    }
    Ok(())
}

/// The health of `service`'s container: `healthy`, `starting`, ..., `none` without a health
/// check, `missing` when it cannot be inspected.
#[must_use]
pub fn health(compose: &Compose, service: &str) -> String {
    compose
        .container(service)
        .and_then(|id| inspect(&id))
        .map(|v| {
            v["State"]["Health"]["Status"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .unwrap_or_else(|_| "missing".to_owned())
}

/// Waits until every one of `services` is healthy, reporting each change of their states.
///
/// # Errors
/// [`OpsError::Unhealthy`] with the last states when they are not all healthy within 120 s.
pub fn wait_healthy(
    compose: &Compose,
    services: &[&str],
    progress: &mut dyn Progress,
) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < HEALTHY_WITHIN {
        let states: Vec<(&str, String)> =
            services.iter().map(|s| (*s, health(compose, s))).collect();
        let line = states
            .iter()
            .map(|(s, h)| format!("{s} {h}"))
            .collect::<Vec<_>>()
            .join(", ");
        if line != last {
            progress.info(format!("{line} ({:.0}s)", started.elapsed().as_secs_f64()));
            last = line;
        }
        if states.iter().all(|(_, h)| h == "healthy") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(OpsError::Unhealthy {
        target: format!("compose project {}", compose.project()),
        detail: format!(
            "not healthy within {} s ({last}); left running for inspection",
            HEALTHY_WITHIN.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_name_is_kept_as_given_or_refused() {
        for good in ["sealcache", "sealcache-test", "a_1", "9x"] {
            assert!(check_project_name(good).is_ok(), "{good}");
        }
        // docker-compose v1 lower-cases `Breakit-X`: a label check would miss the project.
        for bad in ["Breakit-X", "", "-x", "_x", "a b", "a.b", "ä"] {
            assert!(
                matches!(check_project_name(bad), Err(OpsError::InvalidOption { .. })),
                "{bad}"
            );
        }
    }
}
