//! A real Redis Cluster for tests: 3 primaries and 3 replicas of `redis-server` on free loopback
//! ports, configured the way sealcache-config-gen generates a cluster.
//!
//! * TLS only (`port 0`, `tls-port`), client certificates required (`tls-auth-clients yes`),
//!   the cluster bus and replication over TLS (`tls-cluster yes`, `tls-replication yes`); nodes
//!   present their own client certificate to each other (`tls-client-cert-file`, from
//!   [`tls::generate_cluster`]);
//! * the ACL file of [`acl::render_with`] for
//!   [`Topology::Cluster`](sealcache_config_gen::Topology::Cluster) (`default` off, `cache_app`,
//!   `cache_health`, `cache_monitor`, `cache_admin`, `cache_replication`); replicas authenticate
//!   as `cache_replication` (`masteruser` / `masterauth`);
//! * `cluster-announce-ip 127.0.0.1`, and by default `cluster-announce-hostname localhost` with
//!   `cluster-preferred-endpoint-type hostname`, so that clients are redirected to `localhost`,
//!   the name the server certificate is verified against;
//! * a short `cluster-node-timeout` (1500 ms by default) so that failovers take seconds.
//!
//! The cluster is formed with `redis-cli --cluster create` as `cache_admin`. Every node is
//! killed when the [`RedisCluster`] is dropped. Passwords go through config files and
//! `REDISCLI_AUTH`, never through a command line, and never appear in `Debug`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sealcache_config_gen::acl::{self, AclOptions, AclPasswords};
use sealcache_config_gen::redis_conf::{self, ClusterNodeConf};
use sealcache_config_gen::{
    EnvironmentDetector, FeatureContext, MapSource, SecretString, SecureConfigGenerator, tls,
};

use crate::{CliAuth, RedisOptions, RedisServer, TlsFiles, free_port, output_text};

/// Primaries in a [`RedisCluster`] by default ([`ClusterOptions::primaries`]).
pub const PRIMARIES: usize = 3;
/// Nodes in a [`RedisCluster`] by default (each primary has one replica).
pub const NODES: usize = 2 * PRIMARIES;
/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How to start a [`RedisCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Cache namespace: the app user's keys `namespace:*` and its channel
    /// `sealcache:l1:namespace` (default: config-gen's default, `ai_cache`).
    pub namespace: String,
    /// `cluster-node-timeout` in milliseconds (default 1500).
    pub node_timeout_ms: u32,
    /// `cluster-announce-hostname` of every node (default `localhost`, with
    /// `cluster-preferred-endpoint-type hostname`); `None` announces the IP `127.0.0.1` only.
    pub announce_hostname: Option<String>,
    /// Extra `redis.conf` lines for every node.
    pub extra: Vec<String>,
    /// Primaries (default [`PRIMARIES`]); the hash slots are split evenly among them.
    pub primaries: usize,
    /// Replicas of each primary (default 1).
    pub replicas_per_primary: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            namespace: sealcache_config_gen::DEFAULT_NAMESPACE.to_owned(),
            node_timeout_ms: 1500,
            announce_hostname: Some("localhost".to_owned()),
            extra: Vec::new(),
            primaries: PRIMARIES,
            replicas_per_primary: 1,
        }
    }
}

/// A node's role, as the node itself reports it (`ROLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// A primary (`master`).
    Primary,
    /// A replica (`slave`).
    Replica,
    /// Killed, or not answering.
    Down,
}

/// One node of a [`RedisCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Index into the cluster's nodes (from 0, in start order; stable across kills and restarts).
    pub index: usize,
    /// The TLS port clients use.
    pub port: u16,
    /// The cluster bus port (`cluster-port`).
    pub cluster_port: u16,
    /// The process id while it runs.
    pub pid: Option<u32>,
    /// Its role now.
    pub role: NodeRole,
}

/// The cluster's view from one node's `CLUSTER NODES` line.
#[derive(Debug, Clone)]
struct ClusterNodesLine {
    port: u16,
    primary: bool,
    failed: bool,
    slots: Vec<(u16, u16)>,
}

fn parse_cluster_nodes(text: &str) -> Vec<ClusterNodesLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 8 {
            continue;
        }
        // ip:port@cport[,hostname]
        let Some(port) = words[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        let flags = words[2];
        let slots = words[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|x| (x, x)),
            })
            .collect();
        out.push(ClusterNodesLine {
            port,
            primary: flags.split(',').any(|f| f == "master"),
            failed: flags.split(',').any(|f| f == "fail" || f == "fail?"),
            slots,
        });
    }
    out
}

/// A running Redis Cluster of [`NODES`] TLS nodes; see the module documentation.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    primaries: usize,
    replicas_per_primary: usize,
    cluster_ports: Vec<u16>,
    namespace: String,
    passwords: AclPasswords,
    replication_password: SecretString,
    files: tempfile::TempDir,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field(
                "ports",
                &self.nodes.iter().map(RedisServer::port).collect::<Vec<_>>(),
            )
            .field("cluster_ports", &self.cluster_ports)
            .field("namespace", &self.namespace)
            .field("files", &self.files.path())
            .finish_non_exhaustive()
    }
}

const CA: &str = "ca.crt";
const SERVER_CERT: &str = "redis.crt";
const SERVER_KEY: &str = "redis.key";
const CLIENT_CERT: &str = "client.crt";
const CLIENT_KEY: &str = "client.key";
const NODE_CERT: &str = "node.crt";
const NODE_KEY: &str = "node.key";
const USERS_ACL: &str = "users.acl";

fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("create cluster file");
    file.write_all(contents.as_bytes())
        .expect("write cluster file");
    path
}

impl RedisCluster {
    /// Starts the nodes (by default [`NODES`]), forms the cluster (by default 3 primaries, 1
    /// replica each) and waits until
    /// every node reports `cluster_state:ok` and every replica's link to its primary is up.
    /// Panics with the nodes' logs when that does not happen within 60 s.
    #[must_use]
    pub fn start(options: ClusterOptions) -> Self {
        let detected = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "testing"))
            .detect(FeatureContext::SecurityEnforcement);
        let config = SecureConfigGenerator::generate_for_environment(&detected, None)
            .expect("generate configuration");
        let passwords = config.acl_passwords();
        let topology = config.cluster_topology();
        let replication_password = config.redis_replication_password.clone();

        let files = tempfile::tempdir().expect("temp dir");
        let dir = files.path();
        let count = options.primaries.max(1) * (1 + options.replicas_per_primary);
        let material = tls::generate_cluster(count, &[], acl::APP_USER).expect("TLS material");
        let m = &material.material;
        let ca = write_file(dir, CA, &m.ca_cert);
        let server_cert = write_file(dir, SERVER_CERT, &m.server_cert);
        let server_key = write_file(dir, SERVER_KEY, m.server_key.expose_secret());
        write_file(dir, CLIENT_CERT, &m.client_cert);
        write_file(dir, CLIENT_KEY, m.client_key.expose_secret());
        let node_cert = write_file(dir, NODE_CERT, &material.node_client_cert);
        let node_key = write_file(dir, NODE_KEY, material.node_client_key.expose_secret());
        let acl_text = acl::render_with(
            &options.namespace,
            &passwords,
            &AclOptions {
                topology: topology.clone(),
            },
        );
        let acl_file = write_file(dir, USERS_ACL, &acl_text);

        let mut nodes = Vec::with_capacity(count);
        let mut cluster_ports = Vec::with_capacity(count);
        for _ in 0..count {
            // The bus port is a free port too, and can be taken before the node binds it (the
            // node then fails on every client port tried): choose both again, three times.
            let mut last_log = String::new();
            let mut started = None;
            for _attempt in 0..3 {
                let cluster_port = free_port();
                let conf = ClusterNodeConf {
                    node_timeout_ms: options.node_timeout_ms,
                    announce_hostname: options.announce_hostname.clone(),
                    announce_ip: Some(IpAddr::from([127, 0, 0, 1])),
                    cluster_port: Some(cluster_port),
                    client_cert: Some((node_cert.clone(), node_key.clone())),
                };
                let directives =
                    redis_conf::directives(&topology, &conf).expect("cluster directives");
                let mut extra: Vec<String> = directives
                    .expose_secret()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                // Replicas sync at once (the default waits 5 s for more replicas to join).
                extra.push("repl-diskless-sync yes".to_owned());
                extra.push("repl-diskless-sync-delay 0".to_owned());
                extra.extend(options.extra.iter().cloned());
                let attempt = RedisServer::try_start(RedisOptions {
                    acl_file: Some(acl_file.clone()),
                    tls: Some(TlsFiles {
                        ca: ca.clone(),
                        cert: server_cert.clone(),
                        key: server_key.clone(),
                        require_client_certs: true,
                    }),
                    extra,
                    ..RedisOptions::default()
                })
                .map(|server| (server, cluster_port));
                match attempt {
                    Ok(node) => {
                        started = Some(node);
                        break;
                    }
                    Err(log) => last_log = log,
                }
            }
            let (server, cluster_port) =
                started.unwrap_or_else(|| panic!("a cluster node did not start:\n{last_log}"));
            nodes.push(server);
            cluster_ports.push(cluster_port);
        }
        let cluster = Self {
            nodes,
            primaries: options.primaries.max(1),
            replicas_per_primary: options.replicas_per_primary,
            cluster_ports,
            namespace: options.namespace,
            passwords,
            replication_password,
            files,
        };
        cluster.create();
        cluster.wait_until_healthy(Duration::from_secs(60));
        cluster
    }

    /// `redis-cli --cluster create` as `cache_admin`, retried after a `CLUSTER RESET HARD` of
    /// every node when it fails.
    fn create(&self) {
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                for i in 0..self.nodes.len() {
                    let _ = self.cli(i, &self.admin_auth(), &["CLUSTER", "RESET", "HARD"]);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            if self.primaries < 3 {
                // `redis-cli --cluster create` wants three primaries at least: fewer are formed
                // by hand (slots split, every node meets the first, replicas follow in order).
                match self.form_small() {
                    Ok(()) => return,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                }
            }
            let mut cmd = Command::new("redis-cli");
            self.admin_auth().apply(&mut cmd, true);
            cmd.arg("--cluster").arg("create");
            for node in &self.nodes {
                cmd.arg(format!("127.0.0.1:{}", node.port()));
            }
            cmd.args([
                "--cluster-replicas",
                &self.replicas_per_primary.to_string(),
                "--cluster-yes",
            ]);
            let out = cmd
                .stdin(Stdio::null())
                .output()
                .expect("redis-cli (package redis-tools) must be installed");
            let text = output_text(&out);
            if out.status.success() && text.contains("All 16384 slots covered") {
                return;
            }
            last = text;
        }
        panic!(
            "redis-cli --cluster create failed:\n{last}\n{}",
            self.logs()
        );
    }

    /// Forms a cluster of fewer than three primaries: `CLUSTER ADDSLOTSRANGE` on each primary
    /// (nodes `0..primaries`), `CLUSTER MEET` of every other node with node 0, then each replica
    /// `CLUSTER REPLICATE`s its primary (node `i % primaries`).
    fn form_small(&self) -> Result<(), String> {
        let auth = self.admin_auth();
        let run = |i: usize, args: &[&str]| -> Result<String, String> {
            let out = self.cli(i, &auth, args);
            let text = output_text(&out);
            if out.status.success() && !text.contains("ERR") {
                Ok(text)
            } else {
                Err(format!("node {i} {args:?}: {text}"))
            }
        };
        let per = u32::from(SLOTS) / self.primaries as u32;
        for p in 0..self.primaries {
            let first = p as u32 * per;
            let last = if p + 1 == self.primaries {
                u32::from(SLOTS) - 1
            } else {
                first + per - 1
            };
            run(
                p,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ],
            )?;
        }
        let (port, bus) = (
            self.nodes[0].port().to_string(),
            self.cluster_ports[0].to_string(),
        );
        for i in 1..self.nodes.len() {
            run(i, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus])?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in self.primaries..self.nodes.len() {
            let primary = run(i % self.primaries, &["CLUSTER", "MYID"])?;
            loop {
                match run(i, &["CLUSTER", "REPLICATE", primary.trim()]) {
                    Ok(_) => break,
                    // The node learns of its primary through the bus first.
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        Ok(())
    }

    /// Every node's log, for panic messages.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {i} (port {}) ---\n{}", n.port(), n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].pid().is_some())
            .collect()
    }

    fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port() == port)
    }

    fn admin_text(&self, node: usize, args: &[&str]) -> String {
        output_text(&self.cli(node, &self.admin_auth(), args))
    }

    /// Everything that is not yet right, empty when the cluster is healthy: a live node not
    /// reporting `cluster_state:ok`, a slot owner that is down, or a replica whose link is down.
    fn health_problems(&self, check_replicas: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let live: BTreeSet<u16> = self
            .live()
            .into_iter()
            .map(|i| self.nodes[i].port())
            .collect();
        for i in self.live() {
            let info = self.admin_text(i, &["CLUSTER", "INFO"]);
            if !info.contains("cluster_state:ok") {
                problems.push(format!("node {i}: cluster_state not ok"));
                continue;
            }
            let view = parse_cluster_nodes(&self.admin_text(i, &["CLUSTER", "NODES"]));
            let mut covered = 0u32;
            for line in view.iter().filter(|l| l.primary && !l.slots.is_empty()) {
                if line.failed || !live.contains(&line.port) {
                    problems.push(format!("node {i}: slots owned by dead port {}", line.port));
                }
                covered += line
                    .slots
                    .iter()
                    .map(|(a, b)| u32::from(b - a) + 1)
                    .sum::<u32>();
            }
            if covered != u32::from(SLOTS) {
                problems.push(format!("node {i}: {covered} slots covered"));
            }
            if check_replicas && self.role(i) == NodeRole::Replica {
                let repl = self.admin_text(i, &["INFO", "replication"]);
                if !repl.contains("master_link_status:up") {
                    problems.push(format!("node {i}: replica link not up"));
                }
            }
        }
        problems
    }

    fn wait_for(&self, what: &str, timeout: Duration, check_replicas: bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let problems = self.health_problems(check_replicas);
            if problems.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not healthy after {timeout:?}: {problems:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every live node reports `cluster_state:ok`, every slot is served by a live
    /// primary, and every live replica's link to its primary is up; panics after `timeout`.
    pub fn wait_until_healthy(&self, timeout: Duration) {
        self.wait_for("cluster", timeout, true);
    }

    /// After a primary was killed: waits (up to 30 s) until one of its replicas took over its
    /// slots and every live node reports `cluster_state:ok` again.
    pub fn wait_for_failover(&self) {
        self.wait_for("failover", Duration::from_secs(30), false);
    }

    /// Every node, with its role as the node reports it now.
    #[must_use]
    pub fn nodes(&self) -> Vec<NodeInfo> {
        (0..self.nodes.len())
            .map(|i| NodeInfo {
                index: i,
                port: self.nodes[i].port(),
                cluster_port: self.cluster_ports[i],
                pid: self.nodes[i].pid(),
                role: self.role(i),
            })
            .collect()
    }

    /// Node `index`'s role (`ROLE`, as `cache_admin`).
    #[must_use]
    pub fn role(&self, index: usize) -> NodeRole {
        if self.nodes[index].pid().is_none() {
            return NodeRole::Down;
        }
        let out = self.admin_text(index, &["ROLE"]);
        match out.lines().next().map(str::trim) {
            Some("master") => NodeRole::Primary,
            Some("slave") => NodeRole::Replica,
            _ => NodeRole::Down,
        }
    }

    /// The index of the live primary serving `slot`, as a live node sees it now.
    #[must_use]
    pub fn primary_of_slot(&self, slot: u16) -> usize {
        for i in self.live() {
            let view = parse_cluster_nodes(&self.admin_text(i, &["CLUSTER", "NODES"]));
            if let Some(index) = view
                .iter()
                .filter(|l| l.primary && !l.failed)
                .find(|l| l.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
                .and_then(|l| self.index_of_port(l.port))
            {
                return index;
            }
        }
        panic!("no live node knows the primary of slot {slot}");
    }

    /// Kills (SIGKILL) the primary serving `slot` and returns its index; follow with
    /// [`RedisCluster::wait_for_failover`].
    pub fn kill_primary_of_slot(&mut self, slot: u16) -> usize {
        let index = self.primary_of_slot(slot);
        self.kill(index);
        index
    }

    /// Kills (SIGKILL) node `index`, as a crash would.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Restarts a killed node on its port with its `nodes.conf`: it rejoins the cluster (a former
    /// primary whose replica took over comes back as a replica). Follow with
    /// [`RedisCluster::wait_until_healthy`].
    pub fn restart(&mut self, index: usize) {
        self.nodes[index].restart();
    }

    /// The node `index` as a [`RedisServer`] (port, log, directory).
    #[must_use]
    pub fn node(&self, index: usize) -> &RedisServer {
        &self.nodes[index]
    }

    /// Runs `redis-cli` against node `index` over TLS with `auth` (pass `-c` as the first
    /// argument to follow `MOVED`/`ASK` redirects).
    #[must_use]
    pub fn cli(&self, index: usize, auth: &CliAuth, args: &[&str]) -> Output {
        self.nodes[index].cli(auth, args)
    }

    /// `rediss://localhost:PORT` of every node (the server certificate verifies `localhost`).
    #[must_use]
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("rediss://localhost:{}", n.port()))
            .collect()
    }

    /// The cache namespace of the ACL file.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The channel `cache_app` may publish and subscribe on: `sealcache:l1:{namespace}`.
    #[must_use]
    pub fn invalidation_channel(&self) -> String {
        acl::invalidation_channel(&self.namespace)
    }

    /// The application's ACL user, `cache_app`.
    #[must_use]
    pub fn app_user(&self) -> &'static str {
        acl::APP_USER
    }

    /// `cache_app`'s password.
    #[must_use]
    pub fn app_password(&self) -> &str {
        self.passwords.app.expose_secret()
    }

    /// `cache_health`'s password.
    #[must_use]
    pub fn health_password(&self) -> &str {
        self.passwords.health.expose_secret()
    }

    /// `cache_monitor`'s password.
    #[must_use]
    pub fn monitor_password(&self) -> &str {
        self.passwords.monitor.expose_secret()
    }

    /// `cache_admin`'s password.
    #[must_use]
    pub fn admin_password(&self) -> &str {
        self.passwords.admin.expose_secret()
    }

    /// `cache_replication`'s password.
    #[must_use]
    pub fn replication_password(&self) -> &str {
        self.replication_password.expose_secret()
    }

    /// The CA certificate clients verify the nodes with.
    #[must_use]
    pub fn ca_cert(&self) -> PathBuf {
        self.files.path().join(CA)
    }

    /// The application's client certificate (common name `cache_app`).
    #[must_use]
    pub fn client_cert(&self) -> PathBuf {
        self.files.path().join(CLIENT_CERT)
    }

    /// Its key.
    #[must_use]
    pub fn client_key(&self) -> PathBuf {
        self.files.path().join(CLIENT_KEY)
    }

    /// The ACL file every node loaded.
    #[must_use]
    pub fn acl_file(&self) -> PathBuf {
        self.files.path().join(USERS_ACL)
    }

    /// [`CliAuth`] for `user` with `password`, the CA and the client certificate.
    #[must_use]
    pub fn auth(&self, user: &str, password: &str) -> CliAuth {
        CliAuth {
            user: Some(user.to_owned()),
            password: Some(password.to_owned()),
            ca: Some(self.ca_cert()),
            client_cert: Some((self.client_cert(), self.client_key())),
        }
    }

    /// [`CliAuth`] for `cache_app`.
    #[must_use]
    pub fn app_auth(&self) -> CliAuth {
        self.auth(acl::APP_USER, self.app_password())
    }

    /// [`CliAuth`] for `cache_health`.
    #[must_use]
    pub fn health_auth(&self) -> CliAuth {
        self.auth(acl::HEALTH_USER, self.health_password())
    }

    /// [`CliAuth`] for `cache_monitor`.
    #[must_use]
    pub fn monitor_auth(&self) -> CliAuth {
        self.auth(acl::MONITOR_USER, self.monitor_password())
    }

    /// [`CliAuth`] for `cache_admin`.
    #[must_use]
    pub fn admin_auth(&self) -> CliAuth {
        self.auth(acl::ADMIN_USER, self.admin_password())
    }

    /// A redis-rs cluster client as `cache_app` over mutual TLS, seeded with every node
    /// ([`RedisCluster::seed_urls`]), trusting only the cluster's CA.
    #[must_use]
    pub fn app_cluster_client(&self) -> redis::cluster::ClusterClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        redis::cluster::ClusterClientBuilder::new(self.seed_urls())
            .username(acl::APP_USER)
            .password(self.app_password())
            .certs(redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: std::fs::read(self.client_cert()).expect("client certificate"),
                    client_key: std::fs::read(self.client_key()).expect("client key"),
                }),
                root_cert: Some(std::fs::read(self.ca_cert()).expect("CA certificate")),
            })
            .build()
            .expect("cluster client")
    }

    /// A redis-rs client for node `index` as `cache_app` (a single-node connection, no
    /// redirects; see [`crate::tls_client`]).
    #[must_use]
    pub fn app_client(&self, index: usize) -> redis::Client {
        crate::tls_client(
            self.nodes[index].port(),
            acl::APP_USER,
            self.app_password(),
            &self.ca_cert(),
            &self.client_cert(),
            &self.client_key(),
        )
    }
}

/// The hash slot of a key, as Redis Cluster computes it (CRC16/XMODEM of the key, or of its `{hash tag}`, mod 16384).
pub fn key_slot(bytes: &[u8]) -> u16 {
    let tagged = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            bytes[open + 1..]
                .iter()
                .position(|&b| b == b'}')
                .filter(|&len| len > 0)
                .map(|len| &bytes[open + 1..open + 1 + len])
        })
        .unwrap_or(bytes);
    let mut crc: u16 = 0;
    for &b in tagged {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_match_redis() {
        // CLUSTER KEYSLOT answers: foo 12182, bar 5061; a hash tag hashes only the tag.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{}foo"), key_slot(b"{}foo"));
    }

    #[test]
    fn parses_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@31004,localhost slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002,localhost master - 0 1426238316232 2 connected 5461-10922
e7d1 127.0.0.1:30001@31001,localhost myself,master - 0 0 1 connected 0-5460 [5461->-67ed]
292f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923 10924-16383
";
        let v = parse_cluster_nodes(text);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].port, 30004);
        assert!(!v[0].primary);
        assert_eq!(v[1].slots, vec![(5461, 10922)]);
        assert!(v[2].primary && !v[2].failed);
        assert_eq!(v[2].slots, vec![(0, 5460)]);
        assert!(v[3].failed);
        assert_eq!(v[3].slots, vec![(10923, 10923), (10924, 16383)]);
    }
}
