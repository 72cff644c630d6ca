//! A Redis Cluster deployment directory: everything [`crate::write_deployment`] writes for one
//! node, adapted to a cluster of [`ClusterOptions::nodes`] nodes and [`ClusterOptions::backends`]
//! backend replicas.
//!
//! ```text
//! DIR/cluster.json                          the record that this is a cluster deployment (no secret)
//! DIR/.env                                  REDIS_CLUSTER_NODES=rediss://redis-node-1:6379,... (no REDIS_URL)
//! DIR/secrets/redis/users.acl               acl::render_with(.., Topology::Cluster): cluster grants
//!                                           and the replication user
//! DIR/secrets/redis/redis_replication_password  0600 (cache_replication, `masterauth`)
//! DIR/secrets/redis/cluster.conf            0600: redis_conf::directives (cluster-enabled, tls-cluster,
//!                                           tls-replication, masteruser/masterauth, node client cert),
//!                                           included by deploy/redis/redis.cluster.conf
//! DIR/secrets/tls/redis.crt                 server certificate naming redis-node-1..N (+ localhost)
//! DIR/secrets/tls/node.crt, node.key        the nodes' own client certificate (cluster bus, replication)
//! ```
//!
//! Per-node settings that are not secret (`cluster-announce-hostname`) are given to each node on
//! its command line by the compose file (or in the local stack's per-node file).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::acl::{self, AclOptions};
use crate::configuration::SecurityConfiguration;
use crate::deploy_dir::{DeploymentOptions, OutputFormat, WrittenDeployment, write_deployment};
use crate::error::{Error, Result, io};
use crate::layout::{self, container_path};
use crate::redis_conf::{self, ClusterNodeConf};
use crate::tls;

/// The record that a directory holds a cluster deployment (read by `status`, `down`, `rotate`).
pub const CLUSTER_RECORD: &str = "cluster.json";
/// `cache_replication`'s password (`masterauth`).
pub const REPLICATION_PASSWORD: &str = "secrets/redis/redis_replication_password";
/// The cluster directives of every node (holds `masterauth`: a secret file).
pub const CLUSTER_CONF: &str = "secrets/redis/cluster.conf";
/// The nodes' client certificate (cluster bus and replication; the server certificate is
/// serverAuth only).
pub const NODE_CERT: &str = "secrets/tls/node.crt";
/// Its key.
pub const NODE_KEY: &str = "secrets/tls/node.key";
/// The secret files a cluster deployment adds to [`layout::SECRET_FILES`] (leak checks search
/// their values too).
pub const CLUSTER_SECRET_FILES: &[&str] = &[REPLICATION_PASSWORD, CLUSTER_CONF, NODE_KEY];

/// Nodes of the default cluster (3 primaries, one replica each).
pub const DEFAULT_NODES: usize = 6;
/// Backend replicas of the default cluster stack.
pub const DEFAULT_BACKENDS: usize = 2;

/// The shape of a cluster deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Redis nodes (primaries and replicas), at least 3 primaries' worth.
    pub nodes: usize,
    /// Replicas per primary (`redis-cli --cluster create --cluster-replicas`).
    pub replicas_per_primary: usize,
    /// Backend replicas.
    pub backends: usize,
    /// `cluster-node-timeout` in milliseconds.
    pub node_timeout_ms: u32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: DEFAULT_NODES,
            replicas_per_primary: 1,
            backends: DEFAULT_BACKENDS,
            node_timeout_ms: redis_conf::DEFAULT_CLUSTER_NODE_TIMEOUT_MS,
        }
    }
}

/// What [`CLUSTER_RECORD`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// Always `cluster`.
    pub topology: String,
    /// The nodes' host names (`redis-node-1`, ...), as announced and named in the certificate.
    pub nodes: Vec<String>,
    /// Replicas per primary.
    pub replicas_per_primary: usize,
    /// Backend replicas.
    pub backends: usize,
    /// `cluster-node-timeout` in milliseconds.
    pub node_timeout_ms: u32,
}

impl ClusterRecord {
    /// Primaries of the cluster.
    #[must_use]
    pub fn primaries(&self) -> usize {
        self.nodes.len() / (self.replicas_per_primary + 1)
    }
}

/// `REDIS_CLUSTER_NODES` for `endpoints` (`host:port`): `rediss://host:port,...`.
#[must_use]
pub fn cluster_nodes_value<S: AsRef<str>>(endpoints: &[S]) -> String {
    endpoints
        .iter()
        .map(|e| format!("rediss://{}", e.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes `contents` to `dir/relative` with mode 0600, replacing it atomically, and lists
/// `relative` in `files` once.
fn secret_file(dir: &Path, relative: &str, contents: &[u8], files: &mut Vec<String>) -> Result<()> {
    crate::deploy_dir::write_secret(dir, relative, contents)?;
    if !files.iter().any(|f| f == relative) {
        files.push(relative.to_owned());
    }
    Ok(())
}

/// Writes a cluster deployment for `config` into `dir` (see the module documentation): the
/// single-node deployment of [`write_deployment`] with `opts`, then the cluster's ACL file,
/// certificates, replication password, node directives, `.env` and [`CLUSTER_RECORD`].
///
/// # Errors
/// [`Error::InvalidSetting`] for a flat env-file format, fewer than 3 primaries or a bad node
/// timeout; otherwise as [`write_deployment`].
pub fn write_cluster_deployment(
    config: &SecurityConfiguration,
    dir: &Path,
    opts: &DeploymentOptions,
    cluster: &ClusterOptions,
) -> Result<WrittenDeployment> {
    if opts.format != OutputFormat::Dir {
        return Err(Error::InvalidSetting {
            what: "format",
            reason: "a cluster deployment is a directory",
        });
    }
    if cluster.nodes / (cluster.replicas_per_primary + 1) < 3
        || !cluster
            .nodes
            .is_multiple_of(cluster.replicas_per_primary + 1)
    {
        return Err(Error::InvalidSetting {
            what: "cluster nodes",
            reason: "need at least 3 primaries, each with the same number of replicas",
        });
    }
    let names = tls::cluster_node_names(cluster.nodes);
    let first = names.first().cloned().unwrap_or_default();
    let single = DeploymentOptions {
        redis_host: first,
        ..opts.clone()
    };
    let mut written = write_deployment(config, dir, &single)?;
    let files = &mut written.files;

    let topology = config.cluster_topology();
    let passwords = config.acl_passwords();
    secret_file(
        dir,
        layout::USERS_ACL,
        acl::render_with(
            &opts.namespace,
            &passwords,
            &AclOptions {
                topology: topology.clone(),
            },
        )
        .as_bytes(),
        files,
    )?;
    secret_file(
        dir,
        REPLICATION_PASSWORD,
        config.redis_replication_password.expose_secret().as_bytes(),
        files,
    )?;

    let material = tls::generate_cluster(cluster.nodes, &opts.extra_server_names, acl::APP_USER)?;
    let m = &material.material;
    for (rel, text) in [
        (layout::CA_CERT, m.ca_cert.as_str()),
        (layout::SERVER_CERT, m.server_cert.as_str()),
        (layout::SERVER_KEY, m.server_key.expose_secret()),
        (layout::CLIENT_CERT, m.client_cert.as_str()),
        (layout::CLIENT_KEY, m.client_key.expose_secret()),
        (layout::CA_KEY, m.ca_key.expose_secret()),
        (NODE_CERT, material.node_client_cert.as_str()),
        (NODE_KEY, material.node_client_key.expose_secret()),
    ] {
        secret_file(dir, rel, text.as_bytes(), files)?;
    }

    let directives = redis_conf::directives(
        &topology,
        &ClusterNodeConf {
            node_timeout_ms: cluster.node_timeout_ms,
            announce_hostname: None,
            announce_ip: None,
            cluster_port: None,
            client_cert: Some((
                container_path(NODE_CERT).into(),
                container_path(NODE_KEY).into(),
            )),
        },
    )?;
    let conf = format!(
        "# Cluster directives of every node, generated by sealcache-config-gen (holds masterauth).\n{}",
        directives.expose_secret()
    );
    let conf = zeroize::Zeroizing::new(conf);
    secret_file(dir, CLUSTER_CONF, conf.as_bytes(), files)?;

    // `.env`: the cluster's seeds instead of `REDIS_URL` (setting both is a startup error).
    let env_path = dir.join(layout::ENV_FILE);
    let env = std::fs::read_to_string(&env_path).map_err(io("cannot read", &env_path))?;
    let seeds: Vec<String> = names
        .iter()
        .map(|n| format!("{n}:{}", layout::REDIS_PORT))
        .collect();
    let mut replaced = false;
    let mut out = String::with_capacity(env.len() + 128);
    for line in env.lines() {
        if line.starts_with("REDIS_URL=") {
            out.push_str("REDIS_CLUSTER_NODES=");
            out.push_str(&cluster_nodes_value(&seeds));
            replaced = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !replaced {
        return Err(Error::InvalidSetting {
            what: "REDIS_URL",
            reason: "the generated .env has no REDIS_URL line to replace",
        });
    }
    secret_file(dir, layout::ENV_FILE, out.as_bytes(), files)?;

    let record = ClusterRecord {
        topology: "cluster".to_owned(),
        nodes: names,
        replicas_per_primary: cluster.replicas_per_primary,
        backends: cluster.backends,
        node_timeout_ms: cluster.node_timeout_ms,
    };
    let text = serde_json::to_vec_pretty(&record).map_err(|_| Error::InvalidSetting {
        what: CLUSTER_RECORD,
        reason: "cannot be rendered",
    })?;
    secret_file(dir, CLUSTER_RECORD, &text, files)?;
    Ok(written)
}

/// The cluster record of `dir`, or `None` when `dir` holds no cluster deployment.
///
/// # Errors
/// [`Error::Io`] when the record exists but cannot be read, [`Error::InvalidSetting`] when it is
/// not a cluster record.
pub fn cluster_record(dir: &Path) -> Result<Option<ClusterRecord>> {
    let path = dir.join(CLUSTER_RECORD);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read(&path).map_err(io("cannot read", &path))?;
    let record: ClusterRecord =
        serde_json::from_slice(&text).map_err(|_| Error::InvalidSetting {
            what: CLUSTER_RECORD,
            reason: "is not a cluster record",
        })?;
    if record.topology != "cluster" {
        return Err(Error::InvalidSetting {
            what: CLUSTER_RECORD,
            reason: "records another topology",
        });
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_directory_has_the_cluster_files_and_seeds_instead_of_redis_url() {
        let config = crate::test_support::config_for("production");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let written = write_cluster_deployment(
            &config,
            &dir,
            &DeploymentOptions::default(),
            &ClusterOptions::default(),
        )
        .unwrap();
        for f in [
            REPLICATION_PASSWORD,
            CLUSTER_CONF,
            NODE_CERT,
            NODE_KEY,
            CLUSTER_RECORD,
        ] {
            assert!(written.files.iter().any(|w| w == f), "{f}");
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o600
            );
        }
        let env = crate::read_env_file(&dir.join(layout::ENV_FILE)).unwrap();
        assert!(!env.contains_key("REDIS_URL"));
        assert_eq!(
            env["REDIS_CLUSTER_NODES"],
            "rediss://redis-node-1:6379,rediss://redis-node-2:6379,rediss://redis-node-3:6379,\
             rediss://redis-node-4:6379,rediss://redis-node-5:6379,rediss://redis-node-6:6379"
        );
        let acl = std::fs::read_to_string(dir.join(layout::USERS_ACL)).unwrap();
        assert!(acl.contains(acl::REPLICATION_USER) && acl.contains("+cluster|slots"));
        let conf = std::fs::read_to_string(dir.join(CLUSTER_CONF)).unwrap();
        let facts = redis_conf::facts(&format!("port 0\ntls-port 6379\n{conf}"));
        assert!(facts.cluster_problems().is_empty(), "{facts:?}");
        assert!(conf.contains("tls-client-cert-file \"/run/secrets/tls/node.crt\""));
        let record = cluster_record(&dir).unwrap().unwrap();
        assert_eq!(record.nodes.len(), 6);
        assert_eq!(record.primaries(), 3);
        assert_eq!(record.backends, 2);
        assert!(cluster_record(tmp.path()).unwrap().is_none());
        let report = crate::validate_dir(&dir, None).unwrap();
        assert_eq!(
            report.recommendation,
            crate::Recommendation::Acceptable,
            "{:?}",
            report.issues
        );
        let too_small = ClusterOptions {
            nodes: 4,
            ..ClusterOptions::default()
        };
        assert!(
            write_cluster_deployment(
                &config,
                &tmp.path().join("d"),
                &DeploymentOptions::default(),
                &too_small
            )
            .is_err()
        );
    }
}
