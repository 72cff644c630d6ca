//! `redis.conf` directives that depend on the [`Topology`], and the facts a validator checks in a
//! `redis.conf`.
//!
//! The single-node `redis.conf` is the shipped `deploy/redis/redis.conf`; for
//! [`Topology::SingleNode`], [`directives`] adds nothing. For [`Topology::Cluster`] it adds, to be
//! appended to that file on every node:
//!
//! ```text
//! cluster-enabled yes
//! cluster-config-file nodes.conf
//! cluster-node-timeout 5000
//! tls-cluster yes                       # the cluster bus over TLS
//! tls-replication yes                   # replication over TLS
//! masteruser cache_replication          # replicas authenticate as the replication user
//! masterauth "<password>"
//! cluster-announce-hostname redis-node-1      # when given (per node)
//! cluster-preferred-endpoint-type hostname    # when a host name is announced
//! cluster-announce-ip 10.0.0.5                # when given (per node)
//! cluster-port 16379                          # when given
//! tls-client-cert-file "/run/secrets/tls/node.crt"  # when given: the nodes' client certificate
//! tls-client-key-file "/run/secrets/tls/node.key"
//! ```
//!
//! The text holds the replication password (`masterauth`), so it is returned as a
//! [`SecretString`]: write it only to a 0600 file.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::acl::REPLICATION_USER;
pub use crate::acl::Topology;
use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The default `cluster-node-timeout`, in milliseconds.
pub const DEFAULT_CLUSTER_NODE_TIMEOUT_MS: u32 = 5000;
/// The file each node keeps its view of the cluster in (`cluster-config-file`, under `dir`).
pub const CLUSTER_CONFIG_FILE: &str = "nodes.conf";

/// Per-node cluster settings for [`directives`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNodeConf {
    /// `cluster-node-timeout` in milliseconds (at least 1; default
    /// [`DEFAULT_CLUSTER_NODE_TIMEOUT_MS`]).
    pub node_timeout_ms: u32,
    /// `cluster-announce-hostname` (letters, digits, `-` and `.`); when set,
    /// `cluster-preferred-endpoint-type hostname` too, so clients connect by name and verify the
    /// certificate against it (see [`crate::tls::cluster_node_names`]).
    pub announce_hostname: Option<String>,
    /// `cluster-announce-ip`.
    pub announce_ip: Option<IpAddr>,
    /// `cluster-port` (the cluster bus; Redis's default is the TLS port + 10000).
    pub cluster_port: Option<u16>,
    /// `tls-client-cert-file` and `tls-client-key-file`: the certificate a node presents to the
    /// others (see [`crate::tls::generate_cluster`]).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for ClusterNodeConf {
    fn default() -> Self {
        Self {
            node_timeout_ms: DEFAULT_CLUSTER_NODE_TIMEOUT_MS,
            announce_hostname: None,
            announce_ip: None,
            cluster_port: None,
            client_cert: None,
        }
    }
}

/// A `redis.conf` argument in double quotes, with `"`, `\` and control characters escaped the way
/// Redis's argument parser reads them.
pub(crate) fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Redis accepts only letters, digits, `-` and `.` in `cluster-announce-hostname`.
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The directives `topology` adds to `redis.conf` (nothing for [`Topology::SingleNode`]); see the
/// module documentation. `node` is ignored for a single node.
///
/// # Errors
/// [`Error::InvalidSetting`] for a zero node timeout or a host name Redis would refuse.
pub fn directives(topology: &Topology, node: &ClusterNodeConf) -> Result<SecretString> {
    let Topology::Cluster {
        replication_password,
    } = topology
    else {
        return Ok(SecretString::default());
    };
    if node.node_timeout_ms == 0 {
        return Err(Error::InvalidSetting {
            what: "cluster-node-timeout",
            reason: "must be at least 1 ms",
        });
    }
    let mut lines = vec![
        "cluster-enabled yes".to_owned(),
        format!("cluster-config-file {CLUSTER_CONFIG_FILE}"),
        format!("cluster-node-timeout {}", node.node_timeout_ms),
        "tls-cluster yes".to_owned(),
        "tls-replication yes".to_owned(),
        format!("masteruser {REPLICATION_USER}"),
        format!(
            "masterauth {}",
            quoted(replication_password.expose_secret())
        ),
    ];
    if let Some(hostname) = &node.announce_hostname {
        if !valid_hostname(hostname) {
            return Err(Error::InvalidSetting {
                what: "cluster-announce-hostname",
                reason: "expected 1 to 253 letters, digits, `-` or `.`",
            });
        }
        lines.push(format!("cluster-announce-hostname {hostname}"));
        lines.push("cluster-preferred-endpoint-type hostname".to_owned());
    }
    if let Some(ip) = node.announce_ip {
        lines.push(format!("cluster-announce-ip {ip}"));
    }
    if let Some(port) = node.cluster_port {
        lines.push(format!("cluster-port {port}"));
    }
    if let Some((cert, key)) = &node.client_cert {
        lines.push(format!(
            "tls-client-cert-file {}",
            quoted(&cert.to_string_lossy())
        ));
        lines.push(format!(
            "tls-client-key-file {}",
            quoted(&key.to_string_lossy())
        ));
    }
    Ok(SecretString::new(lines.join("\n") + "\n"))
}

/// What a validator checks in a `redis.conf` (the last occurrence of a directive wins, as in
/// Redis).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisConfFacts {
    /// `cluster-enabled yes`.
    pub cluster_enabled: bool,
    /// A non-zero `tls-port`.
    pub tls_port: bool,
    /// `port` is `0` (no plaintext port).
    pub plaintext_port_off: bool,
    /// `tls-cluster yes`.
    pub tls_cluster: bool,
    /// `tls-replication yes`.
    pub tls_replication: bool,
    /// `masteruser`, if any.
    pub masteruser: Option<String>,
    /// Whether `masterauth` is set (its value is never kept).
    pub masterauth: bool,
}

impl RedisConfFacts {
    /// What is wrong for a cluster node, as stable codes: with `cluster-enabled yes` and TLS on,
    /// `TLS_CLUSTER_OFF` (the cluster bus in plaintext), `TLS_REPLICATION_OFF` (replication in
    /// plaintext), `MASTERUSER_NOT_REPLICATION_USER` (replicas authenticating as someone other
    /// than [`REPLICATION_USER`], e.g. the default user) and `MASTERAUTH_MISSING`. Empty when
    /// cluster mode is off.
    #[must_use]
    pub fn cluster_problems(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.cluster_enabled {
            return out;
        }
        if self.tls_port && !self.tls_cluster {
            out.push("TLS_CLUSTER_OFF");
        }
        if self.tls_port && !self.tls_replication {
            out.push("TLS_REPLICATION_OFF");
        }
        if self.masteruser.as_deref() != Some(REPLICATION_USER) {
            out.push("MASTERUSER_NOT_REPLICATION_USER");
        }
        if !self.masterauth {
            out.push("MASTERAUTH_MISSING");
        }
        out
    }
}

/// Reads [`RedisConfFacts`] from a `redis.conf` text (comments and blank lines ignored; values
/// compared case-insensitively, quotes stripped).
#[must_use]
pub fn facts(text: &str) -> RedisConfFacts {
    let mut facts = RedisConfFacts::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.splitn(2, char::is_whitespace);
        let directive = words.next().unwrap_or_default().to_ascii_lowercase();
        let value = words.next().unwrap_or_default().trim().trim_matches('"');
        let yes = value.eq_ignore_ascii_case("yes");
        match directive.as_str() {
            "cluster-enabled" => facts.cluster_enabled = yes,
            "tls-port" => facts.tls_port = value.parse::<u16>().is_ok_and(|p| p != 0),
            "port" => facts.plaintext_port_off = value == "0",
            "tls-cluster" => facts.tls_cluster = yes,
            "tls-replication" => facts.tls_replication = yes,
            "masteruser" => facts.masteruser = Some(value.to_owned()),
            "masterauth" => facts.masterauth = !value.is_empty(),
            _ => {}
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Topology {
        Topology::Cluster {
            replication_password: "repl-secret-5".into(),
        }
    }

    #[test]
    fn single_node_adds_nothing() {
        let text = directives(&Topology::SingleNode, &ClusterNodeConf::default()).unwrap();
        assert!(text.is_empty());
    }

    #[test]
    fn cluster_directives_turn_on_tls_everywhere_and_authenticate_replicas() {
        let text = directives(&cluster(), &ClusterNodeConf::default()).unwrap();
        let text = text.expose_secret();
        for line in [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            "cluster-node-timeout 5000",
            "tls-cluster yes",
            "tls-replication yes",
            "masteruser cache_replication",
            "masterauth \"repl-secret-5\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("cluster-announce"));
        assert!(!text.contains("cluster-preferred-endpoint-type"));
        let f = facts(&format!("port 0\ntls-port 6379\n{text}"));
        assert!(f.cluster_enabled && f.tls_cluster && f.tls_replication && f.masterauth);
        assert!(f.cluster_problems().is_empty(), "{f:?}");
    }

    #[test]
    fn per_node_settings() {
        let node = ClusterNodeConf {
            node_timeout_ms: 1500,
            announce_hostname: Some("redis-node-2".to_owned()),
            announce_ip: Some(IpAddr::from([127, 0, 0, 1])),
            cluster_port: Some(16380),
            client_cert: Some(("/tls/node a.crt".into(), "/tls/node.key".into())),
        };
        let text = directives(&cluster(), &node).unwrap();
        let text = text.expose_secret();
        for line in [
            "cluster-node-timeout 1500",
            "cluster-announce-hostname redis-node-2",
            "cluster-preferred-endpoint-type hostname",
            "cluster-announce-ip 127.0.0.1",
            "cluster-port 16380",
            "tls-client-cert-file \"/tls/node a.crt\"",
            "tls-client-key-file \"/tls/node.key\"",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        for bad in ["", "bad host", "x\nmasteruser default", "a_b"] {
            let node = ClusterNodeConf {
                announce_hostname: Some(bad.to_owned()),
                ..ClusterNodeConf::default()
            };
            assert!(matches!(
                directives(&cluster(), &node),
                Err(Error::InvalidSetting { .. })
            ));
        }
        let zero = ClusterNodeConf {
            node_timeout_ms: 0,
            ..ClusterNodeConf::default()
        };
        assert!(directives(&cluster(), &zero).is_err());
    }

    #[test]
    fn quoting_keeps_a_value_on_its_line() {
        let topology = Topology::Cluster {
            replication_password: "a\"b\\c\nmasteruser default".into(),
        };
        let text = directives(&topology, &ClusterNodeConf::default()).unwrap();
        let auth: Vec<&str> = text
            .expose_secret()
            .lines()
            .filter(|l| l.starts_with("masterauth"))
            .collect();
        assert_eq!(auth, vec![r#"masterauth "a\"b\\c\nmasteruser default""#]);
        assert_eq!(
            text.expose_secret()
                .lines()
                .filter(|l| l.starts_with("masteruser"))
                .count(),
            1
        );
    }

    #[test]
    fn facts_find_cluster_weaknesses() {
        let f = facts("port 0\ntls-port 6379\ncluster-enabled yes\ntls-cluster no\n");
        assert_eq!(
            f.cluster_problems(),
            vec![
                "TLS_CLUSTER_OFF",
                "TLS_REPLICATION_OFF",
                "MASTERUSER_NOT_REPLICATION_USER",
                "MASTERAUTH_MISSING"
            ]
        );
        assert!(f.plaintext_port_off);
        let single = facts("port 0\ntls-port 6379\n# cluster-enabled yes\n");
        assert!(!single.cluster_enabled);
        assert!(single.cluster_problems().is_empty());
    }
}
