//! The distributed stack on the three hosts of [`super::net`]: a generated cluster deployment, two
//! Redis Cluster nodes and one `sealcache-server` per host.
//!
//! * The deployment is `config generate --cluster`'s ([`write_cluster_deployment`]): production,
//!   TLS with client certificates, the cluster ACL file, the replication user, 6 nodes, 3
//!   backends, with the hosts' addresses added to the server certificate (IP SANs: see
//!   `sealcache_config_gen::tls::generate`) and a short `cluster-node-timeout`.
//! * Host `h` runs node `a` (TLS 6379, bus 16379), a primary, and node `b` (TLS 6380, bus 16380),
//!   the replica of host `h + 1`'s primary: every host holds one primary and another shard's
//!   replica, so isolating a host always takes a primary away from its replica. Each node runs the
//!   containers' configuration (`deploy/redis/redis.cluster.conf` with the generated
//!   `cluster.conf` inlined), bound to its host's address, which it announces
//!   (`cluster-announce-ip`, `cluster-preferred-endpoint-type ip`).
//! * Each host's backend runs the release `sealcache-server` with the deployment's `.env`, its
//!   secret paths mapped to the directory, every node in `REDIS_CLUSTER_NODES` (its own host's
//!   first: the subscription's first seed is a node next to it), listening on the host's own
//!   `127.0.0.1:8080`: only that host's verifying client talks to it.
//!
//! Every process is a child of this one, started with `ip netns exec` (which execs: the child's
//! pid is the program's), and is killed by pid when [`Procs`] is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use sealcache_config_gen::cluster_dir::{self, ClusterOptions, write_cluster_deployment};
use sealcache_config_gen::{DeploymentOptions, SecureConfigGenerator, acl, layout};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext};

use super::net::{self, HOSTS, Net, host_ip};
use crate::contract::{SEALCACHE_LISTEN, SEALCACHE_LOG_FORMAT, host_path};
use crate::local::{host_value, quoted};

/// `cluster-node-timeout`: the generated default (5 s). Shorter would hide what is tested here:
/// until the node timeout the cluster keeps answering across a cut bus, so a lost invalidation
/// can be served from L1 beyond the 2 s coherence bound only if the timeout is longer than it; with
/// a 1 s timeout every backend's circuit breaker opens before the bound has passed.
pub(crate) const NODE_TIMEOUT_MS: u32 =
    sealcache_config_gen::redis_conf::DEFAULT_CLUSTER_NODE_TIMEOUT_MS;
/// The backends' API port, on each host's own loopback.
pub(crate) const API_PORT: u16 = 8080;
/// The containers' node configuration, which each node's is made from.
const REDIS_CLUSTER_CONF: &str = "deploy/redis/redis.cluster.conf";
/// `REDIS_CLUSTER_NODES`.
const REDIS_CLUSTER_NODES: &str = crate::contract::variable("REDIS_CLUSTER_NODES");

/// One of the two nodes of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeId {
    pub host: usize,
    /// 0: node `a` (formed as a primary), 1: node `b` (formed as the next host's replica).
    pub slot: usize,
}

impl NodeId {
    pub(crate) fn port(self) -> u16 {
        6379 + u16::try_from(self.slot).unwrap_or(0)
    }

    pub(crate) fn bus_port(self) -> u16 {
        self.port() + 10_000
    }

    pub(crate) fn address(self) -> String {
        format!("{}:{}", host_ip(self.host), self.port())
    }

    pub(crate) fn name(self) -> String {
        format!(
            "h{}{}",
            self.host + 1,
            if self.slot == 0 { 'a' } else { 'b' }
        )
    }

    /// Every node: 1a, 2a, 3a, 1b, 2b, 3b.
    pub(crate) fn all() -> Vec<NodeId> {
        (0..2)
            .flat_map(|slot| (0..HOSTS).map(move |host| NodeId { host, slot }))
            .collect()
    }

    /// The primary node `b` of `host` replicates when formed: the next host's node `a`.
    pub(crate) fn formed_primary_of_replica(host: usize) -> NodeId {
        NodeId {
            host: (host + 1) % HOSTS,
            slot: 0,
        }
    }
}

/// Processes started by the harness, killed (SIGKILL, by pid) and reaped when dropped.
#[derive(Debug, Default)]
pub(crate) struct Procs {
    children: Vec<(String, Child)>,
}

impl Procs {
    pub(crate) fn push(&mut self, name: String, child: Child) {
        self.children.push((name, child));
    }

    /// The pid of the running process `name`.
    pub(crate) fn pid(&mut self, name: &str) -> Option<u32> {
        self.children
            .iter_mut()
            .filter(|(n, _)| n == name)
            .find_map(|(_, c)| matches!(c.try_wait(), Ok(None)).then(|| c.id()))
    }

    /// Kills (SIGKILL) and reaps the process `name`.
    pub(crate) fn kill(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.children.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`Stop`, `Cont`) to the process `name`.
    pub(crate) fn signal(
        &mut self,
        name: &str,
        signal: rustix::process::Signal,
    ) -> anyhow::Result<()> {
        let pid = self
            .pid(name)
            .with_context(|| format!("{name} does not run"))?;
        crate::local::signal(pid, signal)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process too.
        for (_, child) in &mut self.children {
            let _ = child.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The generated deployment and the files the harness made from it.
#[derive(Debug)]
pub(crate) struct Stack {
    /// The deployment directory (0700, under the target directory).
    pub dir: PathBuf,
    /// Node state, logs, the agents' records.
    pub state: PathBuf,
    server: PathBuf,
}

impl Stack {
    /// Generates the deployment in `root/deploy` (removing an earlier one); the backends will run
    /// a copy of `server`.
    pub(crate) fn generate(root: &Path, server: &Path) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(root);
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(builder.recursive(true), 0o700);
        let state = root.join("state");
        builder
            .create(&state)
            .with_context(|| format!("cannot create {}", state.display()))?;
        let dir = root.join("deploy");
        let detected = EnvironmentDetector::default().detect(FeatureContext::SecurityEnforcement);
        let config = SecureConfigGenerator::generate_for_environment(
            &detected,
            Some(Environment::Production),
        )
        .context("cannot generate secrets")?;
        write_cluster_deployment(
            &config,
            &dir,
            &DeploymentOptions {
                // The nodes announce their addresses: clients verify the certificate against them.
                extra_server_names: (0..HOSTS).map(host_ip).collect(),
                ..DeploymentOptions::default()
            },
            &ClusterOptions {
                nodes: 2 * HOSTS,
                replicas_per_primary: 1,
                backends: HOSTS,
                node_timeout_ms: NODE_TIMEOUT_MS,
            },
        )
        .context("cannot write the cluster deployment")?;
        // A copy: the shared target directory's binary may be rebuilt while the scenarios run
        // (the last one starts a backend again).
        let copy = state.join("sealcache-server");
        std::fs::copy(server, &copy)
            .with_context(|| format!("cannot copy {}", server.display()))?;
        Ok(Self {
            dir,
            state,
            server: copy,
        })
    }

    /// The API key every verifying client uses (a file: never on a command line).
    pub(crate) fn api_key_file(&self) -> PathBuf {
        self.dir.join(layout::API_KEY)
    }

    fn node_conf(&self, node: NodeId, template: &str, cluster: &str) -> anyhow::Result<String> {
        let data = self.state.join(node.name());
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let mut out = format!(
            "# Generated by `cargo xtask partitions` from {REDIS_CLUSTER_CONF} and cluster.conf\n"
        );
        let meaningful = |l: &&str| !l.trim().is_empty() && !l.trim().starts_with('#');
        for line in template.lines().map(str::trim).filter(meaningful) {
            let directive = line.split_whitespace().next().unwrap_or("");
            let local = match directive {
                "bind" => format!("bind {}", host_ip(node.host)),
                "tls-port" => format!("tls-port {}", node.port()),
                "dir" => format!("dir {}", quoted(&data)?),
                "logfile" => format!(
                    "logfile {}",
                    quoted(&self.state.join(format!("{}.log", node.name())))?
                ),
                // Addresses are announced, not host names.
                "cluster-preferred-endpoint-type" => {
                    "cluster-preferred-endpoint-type ip".to_owned()
                }
                "include" => {
                    let mut inlined = Vec::new();
                    for l in cluster.lines().map(str::trim).filter(meaningful) {
                        inlined.push(self.map_line(l)?);
                    }
                    inlined.join("\n")
                }
                _ => self.map_line(line)?,
            };
            out.push_str(&local);
            out.push('\n');
        }
        out.push_str(&format!(
            "cluster-port {}\ncluster-announce-ip {}\n",
            node.bus_port(),
            host_ip(node.host)
        ));
        Ok(out)
    }

    /// A `redis.conf` line with a container secret path mapped to the deployment's file.
    fn map_line(&self, line: &str) -> anyhow::Result<String> {
        let (directive, args) = line.split_once(' ').unwrap_or((line, ""));
        let bare = args.trim().trim_matches('"');
        if bare.starts_with(layout::CONTAINER_SECRETS) {
            let path = host_path(&self.dir, bare)
                .with_context(|| format!("`{directive}` names {bare}, outside the layout"))?;
            return Ok(format!("{directive} {}", quoted(&path)?));
        }
        Ok(line.to_owned())
    }

    /// Starts the six nodes and forms the cluster: the three `a` nodes as primaries
    /// (`redis-cli --cluster create`), then each `b` node as the next host's replica
    /// (`--cluster add-node --cluster-slave --cluster-master-id`).
    pub(crate) fn start_cluster(&self, procs: &mut Procs) -> anyhow::Result<()> {
        let template_path = crate::progress::workspace_root().join(REDIS_CLUSTER_CONF);
        let template = std::fs::read_to_string(&template_path)
            .with_context(|| format!("cannot read {}", template_path.display()))?;
        let cluster_path = self.dir.join(cluster_dir::CLUSTER_CONF);
        // Holds `masterauth`: kept in this process's memory and in 0600 files only.
        let cluster = std::fs::read_to_string(&cluster_path)
            .with_context(|| format!("cannot read {}", cluster_path.display()))?;
        for node in NodeId::all() {
            let conf = self.node_conf(node, &template, &cluster)?;
            let path = self.state.join(format!("{}.conf", node.name()));
            write_private(&path, conf.as_bytes())?;
            let child = Net::exec(node.host, "redis-server")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start redis-server")?;
            procs.push(node.name(), child);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in NodeId::all() {
            while self
                .admin(node, &["PING"])
                .map_or(true, |r| r.trim() != "PONG")
            {
                ensure!(
                    Instant::now() < deadline,
                    "node {} does not answer; its log is {}",
                    node.name(),
                    self.state.join(format!("{}.log", node.name())).display()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let primaries: Vec<String> = (0..HOSTS)
            .map(|host| NodeId { host, slot: 0 }.address())
            .collect();
        let mut create = self.admin_cli(0, None);
        create.args(["--cluster", "create"]).args(&primaries).args([
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]);
        let text = net::run(&mut create).context("redis-cli --cluster create")?;
        ensure!(
            text.contains("All 16384 slots covered"),
            "redis-cli --cluster create: {text}"
        );
        for host in 0..HOSTS {
            let primary = NodeId::formed_primary_of_replica(host);
            let id = self.admin(primary, &["CLUSTER", "MYID"])?.trim().to_owned();
            let replica = NodeId { host, slot: 1 };
            let mut add = self.admin_cli(host, None);
            add.args(["--cluster", "add-node"])
                .arg(replica.address())
                .arg(primary.address())
                .args(["--cluster-slave", "--cluster-master-id", &id]);
            net::run(&mut add).with_context(|| format!("add {} as a replica", replica.name()))?;
        }
        self.wait_formed(Duration::from_secs(60))
    }

    /// `redis-cli` inside host `host` as `cache_admin` over TLS with the client certificate, the
    /// password in `REDISCLI_AUTH` (never on the command line); under `timeout SECS` when given.
    fn admin_cli(&self, host: usize, bound: Option<u32>) -> Command {
        let mut c = match bound {
            Some(secs) => {
                let mut c = Command::new("timeout");
                c.args([
                    &secs.to_string(),
                    "ip",
                    "netns",
                    "exec",
                    &net::host_ns(host),
                ]);
                c.arg("redis-cli");
                c
            }
            None => Net::exec(host, "redis-cli"),
        };
        c.arg("--tls")
            .arg("--cacert")
            .arg(self.dir.join(layout::CA_CERT))
            .arg("--cert")
            .arg(self.dir.join(layout::CLIENT_CERT))
            .arg("--key")
            .arg(self.dir.join(layout::CLIENT_KEY))
            .args(["--user", acl::ADMIN_USER, "--no-auth-warning"])
            .env("REDISCLI_HISTFILE", "/dev/null")
            .env(
                "REDISCLI_AUTH",
                std::fs::read_to_string(self.dir.join(layout::ADMIN_PASSWORD))
                    .unwrap_or_default()
                    .trim(),
            );
        c
    }

    /// Runs `args` on `node` as `cache_admin` (from inside the node's own host, which reaches it
    /// whatever is cut off), bounded by 3 s.
    pub(crate) fn admin(&self, node: NodeId, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = self.admin_cli(node.host, Some(3));
        cmd.args(["-h", &host_ip(node.host), "-p", &node.port().to_string()])
            .args(args);
        net::run(&mut cmd)
    }

    /// `ROLE` of `node`: `master`, `slave`, or `None` when it does not answer.
    pub(crate) fn role(&self, node: NodeId) -> Option<String> {
        let text = self.admin(node, &["ROLE"]).ok()?;
        text.lines().next().map(|l| l.trim().to_owned())
    }

    /// What is not right yet, empty once every node reports `cluster_state:ok` and knows all six,
    /// every `a` node is a primary, every `b` node a replica of the next host's `a` with its link
    /// up: the cluster as formed.
    pub(crate) fn formation_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut ids = Vec::new();
        for host in 0..HOSTS {
            ids.push(
                self.admin(NodeId { host, slot: 0 }, &["CLUSTER", "MYID"])
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default(),
            );
        }
        for node in NodeId::all() {
            let info = self.admin(node, &["CLUSTER", "INFO"]).unwrap_or_default();
            if !info.contains("cluster_state:ok") {
                problems.push(format!("{}: cluster_state not ok", node.name()));
            }
            if !info.contains(&format!("cluster_known_nodes:{}", 2 * HOSTS)) {
                problems.push(format!("{}: does not know every node", node.name()));
            }
            let repl = self
                .admin(node, &["INFO", "replication"])
                .unwrap_or_default();
            if node.slot == 0 {
                if !repl.contains("role:master") {
                    problems.push(format!("{}: not a primary", node.name()));
                }
            } else {
                let primary = NodeId::formed_primary_of_replica(node.host);
                let expected = format!("master_host:{}", host_ip(primary.host));
                if !repl.contains("role:slave")
                    || !repl.contains(&expected)
                    || !repl.contains("master_link_status:up")
                {
                    problems.push(format!(
                        "{}: not a linked replica of {}",
                        node.name(),
                        primary.name()
                    ));
                }
            }
        }
        if ids.iter().any(String::is_empty) {
            problems.push("a primary does not answer CLUSTER MYID".to_owned());
        }
        problems
    }

    /// Waits until [`Stack::formation_problems`] is empty.
    pub(crate) fn wait_formed(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let problems = self.formation_problems();
            if problems.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the cluster is not as formed after {timeout:?}: {problems:?}; logs in {}",
                    self.state.display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Gives every `a` node its primary role back after a failover (`CLUSTER FAILOVER` on the
    /// node, now a replica: a coordinated hand-over, no write lost), then waits until the cluster
    /// is as formed.
    pub(crate) fn restore_roles(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let mut demoted = 0;
            for host in 0..HOSTS {
                let node = NodeId { host, slot: 0 };
                if self.role(node).as_deref() == Some("slave") {
                    demoted += 1;
                    let linked = self
                        .admin(node, &["INFO", "replication"])
                        .is_ok_and(|r| r.contains("master_link_status:up"));
                    if linked {
                        let _ = self.admin(node, &["CLUSTER", "FAILOVER"]);
                    }
                }
            }
            if demoted == 0 && self.formation_problems().is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the primaries did not get their role back: {:?}",
                    self.formation_problems()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The backend `host`'s variables: the deployment's `.env` with host paths, every node in
    /// `REDIS_CLUSTER_NODES` (its own host's two first, as a backend placed next to its nodes
    /// would list them), the API on the host's 127.0.0.1:[`API_PORT`], JSON logs.
    fn backend_env(&self, host: usize) -> anyhow::Result<Vec<(String, String)>> {
        let vars = sealcache_config_gen::read_env_file(&self.dir.join(layout::ENV_FILE))?;
        let mut out = Vec::new();
        for (name, value) in vars {
            if name == crate::contract::REDIS_URL || name == REDIS_CLUSTER_NODES {
                continue;
            }
            let value = host_value(&self.dir, &name, value)?;
            out.push((name, value));
        }
        let mut nodes = NodeId::all();
        nodes.sort_by_key(|n| (n.host != host, n.host, n.slot));
        let seeds: Vec<String> = nodes.into_iter().map(NodeId::address).collect();
        out.push((
            REDIS_CLUSTER_NODES.to_owned(),
            cluster_dir::cluster_nodes_value(&seeds),
        ));
        out.push((SEALCACHE_LISTEN.to_owned(), format!("127.0.0.1:{API_PORT}")));
        out.push((SEALCACHE_LOG_FORMAT.to_owned(), "json".to_owned()));
        Ok(out)
    }

    /// The process name of host `host`'s backend.
    pub(crate) fn backend_name(host: usize) -> String {
        format!("backend-h{}", host + 1)
    }

    /// Starts host `host`'s backend (its log appended to `state/backend-hN.log`).
    pub(crate) fn start_backend(&self, procs: &mut Procs, host: usize) -> anyhow::Result<()> {
        let name = Self::backend_name(host);
        let log_path = self.state.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let child = Net::exec(host, &self.server)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.backend_env(host)?)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot reopen the backend log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.server.display()))?;
        procs.push(name, child);
        Ok(())
    }

    /// The backend log of `host`, for failure messages.
    pub(crate) fn backend_log(&self, host: usize) -> PathBuf {
        self.state.join(format!("{}.log", Self::backend_name(host)))
    }
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    Ok(sealcache_ops::up::write_private(path, contents)?)
}
