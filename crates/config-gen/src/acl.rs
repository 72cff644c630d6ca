//! The Redis ACL file: rendering (hashes only) and the checks the validator needs.
//!
//! # L1 coherence channel
//!
//! Every topology grants `cache_app` `PUBLISH`, `SUBSCRIBE` and `UNSUBSCRIBE` on exactly one
//! pub/sub channel per namespace, [`invalidation_channel`]`(namespace)` =
//! `sealcache:l1:{namespace}` (for the default namespace: `sealcache:l1:ai_cache`): the ACL line
//! holds `resetchannels &sealcache:l1:{namespace}`, so every other channel is refused (`NOPERM`).
//!
//! # Redis Cluster
//!
//! [`render_with`] with [`Topology::Cluster`] adds what a cluster needs and nothing more:
//! `cache_app` gets [`APP_CLUSTER_COMMANDS`] (topology discovery, `ASK` redirects, replica reads),
//! `cache_health` and `cache_monitor` get `CLUSTER INFO` (to read `cluster_state`), and the
//! replication user [`REPLICATION_USER`] ([`REPLICATION_COMMANDS`] only, no keys, no channels) is
//! added for `masteruser` / `masterauth` (see [`crate::redis_conf`]).

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::secret::SecretString;

/// The ACL user the cache authenticates as.
pub const APP_USER: &str = "cache_app";
/// The ACL user healthchecks authenticate as (PING only).
pub const HEALTH_USER: &str = "cache_health";
/// The ACL user the monitor's ACL LOG poller authenticates as.
pub const MONITOR_USER: &str = "cache_monitor";
/// The administrative ACL user, never used by the application.
pub const ADMIN_USER: &str = "cache_admin";
/// The ACL user replicas authenticate to their primary as (`masteruser`), in a cluster only.
pub const REPLICATION_USER: &str = "cache_replication";

/// The prefix of the L1 coherence channel; see [`invalidation_channel`].
pub const INVALIDATION_CHANNEL_PREFIX: &str = "sealcache:l1:";

/// The pub/sub channel the cache's L1 coherence messages travel on for `namespace`:
/// `sealcache:l1:{namespace}` (e.g. `sealcache:l1:ai_cache`). The generated ACL lets `cache_app`
/// publish and subscribe on this channel and no other.
#[must_use]
pub fn invalidation_channel(namespace: &str) -> String {
    format!("{INVALIDATION_CHANNEL_PREFIX}{namespace}")
}

/// Escapes the glob characters of an ACL pattern (`*`, `?`, `[`, `]`, `\`), so that a literal
/// name grants exactly that name.
fn glob_literal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Commands the cache needs, and nothing more. `KEYS`, `FLUSHALL`, `FLUSHDB`, `CONFIG`, `DEBUG`,
/// `MODULE`, `SHUTDOWN` and `ACL` (but `ACL WHOAMI`) are not among them.
///
/// Every name must exist in Redis 7.0 (Debian's): an unknown command makes Redis refuse the whole
/// ACL file. `CLIENT SETINFO` (7.2+) is therefore not listed.
pub const APP_COMMANDS: &[&str] = &[
    "get",
    "set",
    "del",
    "unlink",
    "exists",
    "pttl",
    "ttl",
    "pexpire",
    "scan",
    "ping",
    "echo",
    "hello",
    "select",
    "acl|whoami",
    "client|setname",
    "client|getname",
    "publish",
    "subscribe",
    "unsubscribe",
];

/// Commands `cache_app` additionally needs in a cluster: `CLUSTER SLOTS` / `CLUSTER SHARDS`
/// (the client's topology discovery), `ASKING` (following `ASK` redirects during slot
/// migration), `READONLY` (reads from replicas) and `CLUSTER INFO` (the security status reports
/// `cluster_state`).
pub const APP_CLUSTER_COMMANDS: &[&str] = &[
    "cluster|slots",
    "cluster|shards",
    "cluster|info",
    "readonly",
    "asking",
];

/// Commands the health and monitor users additionally get in a cluster (`cluster_state`).
pub const STATUS_CLUSTER_COMMANDS: &[&str] = &["cluster|info"];

/// Commands the replication user may run: what a replica sends its primary.
pub const REPLICATION_COMMANDS: &[&str] = &["psync", "replconf", "ping"];

/// Commands the monitor user may run: `INFO` and `ACL LOG` (the server's ACL LOG poller) and
/// `ACL LIST` (the server's posture probe compares the live ACL with what this module generates,
/// see [`crate::acl_audit`]).
///
/// `CONFIG GET` is deliberately not granted, though it would show settings such as
/// `tls-auth-clients`: `CONFIG GET masterauth` (and `requirepass`) returns the replication
/// password in clear, so a monitor credential would become a replication credential. `ACL LIST`
/// shows only the SHA-256 hashes of the (CSPRNG-generated) passwords.
pub const MONITOR_COMMANDS: &[&str] =
    &["ping", "info", "acl|log", "acl|list", "acl|whoami", "hello"];

/// The passwords of the four users.
#[derive(Debug, Clone)]
pub struct AclPasswords {
    /// `cache_app`.
    pub app: SecretString,
    /// `cache_health`.
    pub health: SecretString,
    /// `cache_monitor`.
    pub monitor: SecretString,
    /// `cache_admin`.
    pub admin: SecretString,
}

/// How Redis is deployed: what the ACL file and the cluster directives of `redis.conf` depend on.
#[derive(Debug, Clone, Default)]
pub enum Topology {
    /// One Redis server (the compose stack): the ACL file of [`render`].
    #[default]
    SingleNode,
    /// A Redis Cluster of primaries and replicas.
    Cluster {
        /// The password of [`REPLICATION_USER`] (`masterauth`); `Debug` never shows it.
        replication_password: SecretString,
    },
}

impl Topology {
    /// True for [`Topology::Cluster`].
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Single node or cluster, without the replication password.
    #[must_use]
    pub fn kind(&self) -> TopologyKind {
        match self {
            Self::SingleNode => TopologyKind::SingleNode,
            Self::Cluster { .. } => TopologyKind::Cluster,
        }
    }
}

/// Which ACL file the generator writes, without secrets: what a live ACL is compared with
/// ([`crate::acl_audit::audit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopologyKind {
    /// One Redis server.
    #[default]
    SingleNode,
    /// A Redis Cluster (cluster grants and [`REPLICATION_USER`]).
    Cluster,
}

/// Options of [`render_with`].
#[derive(Debug, Clone, Default)]
pub struct AclOptions {
    /// Single node (the default) or cluster.
    pub topology: Topology,
}

/// `#` followed by the hex SHA-256 of `password`: the form Redis stores, so the file holds no
/// password.
#[must_use]
pub fn password_hash(password: &SecretString) -> String {
    let digest = Sha256::digest(password.expose_secret().as_bytes());
    let mut out = String::with_capacity(65);
    out.push('#');
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Renders `users.acl` for `namespace` (keys `namespace:*`, channel
/// [`invalidation_channel`]`(namespace)`) for a single node. Redis ACL files allow no comments.
#[must_use]
pub fn render(namespace: &str, passwords: &AclPasswords) -> String {
    render_with(namespace, passwords, &AclOptions::default())
}

/// Renders `users.acl` for `namespace` and `options.topology`: [`render`]'s file, plus, for a
/// cluster, the grants listed in the module documentation and the [`REPLICATION_USER`] line.
#[must_use]
pub fn render_with(namespace: &str, passwords: &AclPasswords, options: &AclOptions) -> String {
    let replication_password = match &options.topology {
        Topology::Cluster {
            replication_password,
        } => Some(replication_password),
        Topology::SingleNode => None,
    };
    let mut text = String::new();
    for grant in grants(namespace, options.topology.kind()) {
        let password = match grant.password {
            PasswordOf::None => None,
            PasswordOf::App => Some(&passwords.app),
            PasswordOf::Health => Some(&passwords.health),
            PasswordOf::Monitor => Some(&passwords.monitor),
            PasswordOf::Admin => Some(&passwords.admin),
            PasswordOf::Replication => replication_password,
        };
        let state = if grant.enabled { "on" } else { "off" };
        let _ = match password {
            Some(p) => writeln!(
                text,
                "user {} {state} {} {}",
                grant.name,
                password_hash(p),
                grant.rules
            ),
            None => writeln!(text, "user {} {state} {}", grant.name, grant.rules),
        };
    }
    text
}

/// Which password a generated user's line carries (as its hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordOf {
    /// No password (`default`, which is `off` and `resetpass`).
    None,
    App,
    Health,
    Monitor,
    Admin,
    Replication,
}

/// One generated user: its name, state and rules (everything of its ACL line but the password).
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The user name.
    pub(crate) name: &'static str,
    /// `on` (else `off`).
    pub(crate) enabled: bool,
    /// Which password hash follows the state.
    pub(crate) password: PasswordOf,
    /// The rules after the password: channels, keys, commands.
    pub(crate) rules: String,
}

/// What the generator grants for `namespace` and `topology`, user by user, in file order: the one
/// source of [`render_with`]'s lines and of what [`crate::acl_audit::audit`] compares a live ACL
/// with.
pub(crate) fn grants(namespace: &str, topology: TopologyKind) -> Vec<Grant> {
    let plus =
        |commands: &[&str]| -> String { commands.iter().map(|c| format!(" +{c}")).collect() };
    let cluster = topology == TopologyKind::Cluster;
    let (app_extra, status_extra) = if cluster {
        (plus(APP_CLUSTER_COMMANDS), plus(STATUS_CLUSTER_COMMANDS))
    } else {
        (String::new(), String::new())
    };
    let channel = glob_literal(&invalidation_channel(namespace));
    let mut grants = vec![
        Grant {
            name: "default",
            enabled: false,
            password: PasswordOf::None,
            rules: "resetpass nocommands resetkeys resetchannels".to_owned(),
        },
        Grant {
            name: APP_USER,
            enabled: true,
            password: PasswordOf::App,
            rules: format!(
                "resetchannels &{channel} ~{namespace}:* -@all{}{app_extra}",
                plus(APP_COMMANDS)
            ),
        },
        Grant {
            name: HEALTH_USER,
            enabled: true,
            password: PasswordOf::Health,
            rules: format!("resetchannels resetkeys -@all +ping{status_extra}"),
        },
        Grant {
            name: MONITOR_USER,
            enabled: true,
            password: PasswordOf::Monitor,
            rules: format!(
                "resetchannels resetkeys -@all{}{status_extra}",
                plus(MONITOR_COMMANDS)
            ),
        },
        Grant {
            name: ADMIN_USER,
            enabled: true,
            password: PasswordOf::Admin,
            rules: "~* &* +@all".to_owned(),
        },
    ];
    if cluster {
        grants.push(Grant {
            name: REPLICATION_USER,
            enabled: true,
            password: PasswordOf::Replication,
            rules: format!(
                "resetchannels resetkeys -@all{}",
                plus(REPLICATION_COMMANDS)
            ),
        });
    }
    grants
}

/// What the validator checks in an ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFacts {
    /// The `default` user is enabled (`on`, or not switched `off`), or missing entirely.
    pub default_enabled: bool,
    /// A user has a plaintext password (`>secret`) or `nopass`.
    pub plaintext_or_nopass: Vec<String>,
    /// Users with every password hash, for the reuse check.
    pub hashes: Vec<(String, String)>,
    /// The application user exists and can run `KEYS`, `FLUSHALL`, `CONFIG` or `@all`, or may
    /// use every pub/sub channel (`allchannels`, `&*`).
    pub app_overprivileged: bool,
    /// The replication user exists and may do more than [`REPLICATION_COMMANDS`] (other commands,
    /// or any key or channel).
    pub replication_overprivileged: bool,
}

/// Reads the facts the validator needs from an ACL file's text.
#[must_use]
pub fn facts(text: &str) -> AclFacts {
    let mut facts = AclFacts {
        default_enabled: true,
        ..AclFacts::default()
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        if words.next() != Some("user") {
            continue;
        }
        let Some(name) = words.next() else { continue };
        let rules: Vec<&str> = words.collect();
        if name == "default" {
            let last_state = rules.iter().rev().find(|r| **r == "on" || **r == "off");
            facts.default_enabled = last_state != Some(&"off");
        }
        if rules.iter().any(|r| r.starts_with('>') || *r == "nopass") {
            facts.plaintext_or_nopass.push(name.to_owned());
        }
        for r in &rules {
            if let Some(hash) = r.strip_prefix('#') {
                facts
                    .hashes
                    .push((name.to_owned(), hash.to_ascii_lowercase()));
            }
        }
        if name == APP_USER {
            facts.app_overprivileged = rules.iter().any(|r| {
                matches!(
                    r.to_ascii_lowercase().as_str(),
                    "+@all"
                        | "allcommands"
                        | "+keys"
                        | "+flushall"
                        | "+flushdb"
                        | "+config"
                        | "+@admin"
                        | "+@dangerous"
                        | "allchannels"
                        | "&*"
                )
            });
        }
        if name == REPLICATION_USER {
            facts.replication_overprivileged = rules.iter().any(|r| {
                let r = r.to_ascii_lowercase();
                let extra_command = r
                    .strip_prefix('+')
                    .is_some_and(|c| !REPLICATION_COMMANDS.contains(&c));
                extra_command
                    || r.starts_with('~')
                    || r.starts_with('&')
                    || r.starts_with('%')
                    || matches!(r.as_str(), "allcommands" | "allkeys" | "allchannels")
            });
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords() -> AclPasswords {
        AclPasswords {
            app: "app-secret-1".into(),
            health: "health-secret-2".into(),
            monitor: "monitor-secret-3".into(),
            admin: "admin-secret-4".into(),
        }
    }

    #[test]
    fn rendered_file_holds_hashes_only() {
        let text = render("ai_cache", &passwords());
        for p in [
            "app-secret-1",
            "health-secret-2",
            "monitor-secret-3",
            "admin-secret-4",
        ] {
            assert!(!text.contains(p));
        }
        let f = facts(&text);
        assert!(!f.default_enabled);
        assert!(f.plaintext_or_nopass.is_empty());
        assert_eq!(f.hashes.len(), 4);
        assert!(!f.app_overprivileged);
        assert!(text.contains("~ai_cache:*"));
        assert!(!text.contains("+keys") && !text.contains("+flushall"));
    }

    fn app_line(text: &str) -> &str {
        text.lines()
            .find(|l| l.starts_with("user cache_app "))
            .unwrap()
    }

    #[test]
    fn app_user_gets_exactly_its_invalidation_channel() {
        assert_eq!(invalidation_channel("ai_cache"), "sealcache:l1:ai_cache");
        let text = render("ai_cache", &passwords());
        let app = app_line(&text);
        assert!(
            app.contains(" resetchannels &sealcache:l1:ai_cache "),
            "{app}"
        );
        assert_eq!(app.matches(" &").count(), 1, "one channel only: {app}");
        for c in ["+publish", "+subscribe", "+unsubscribe"] {
            assert!(app.split_whitespace().any(|w| w == c), "{c} in {app}");
        }
        assert!(!app.contains("+psubscribe"));
        // Glob characters in a namespace never widen the grant.
        let wild = render("a*b?[c]", &passwords());
        assert!(app_line(&wild).contains(r"&sealcache:l1:a\*b\?\[c\] "));
    }

    #[test]
    fn rendered_files_are_pinned() {
        let h = |p: &str| password_hash(&p.into());
        let single = format!(
            "user default off resetpass nocommands resetkeys resetchannels\n\
             user cache_app on {} resetchannels &sealcache:l1:ai_cache ~ai_cache:* -@all +get +set +del +unlink +exists +pttl +ttl +pexpire +scan +ping +echo +hello +select +acl|whoami +client|setname +client|getname +publish +subscribe +unsubscribe\n\
             user cache_health on {} resetchannels resetkeys -@all +ping\n\
             user cache_monitor on {} resetchannels resetkeys -@all +ping +info +acl|log +acl|list +acl|whoami +hello\n\
             user cache_admin on {} ~* &* +@all\n",
            h("app-secret-1"),
            h("health-secret-2"),
            h("monitor-secret-3"),
            h("admin-secret-4"),
        );
        assert_eq!(render("ai_cache", &passwords()), single);
        let options = AclOptions {
            topology: Topology::Cluster {
                replication_password: "repl-secret-5".into(),
            },
        };
        let cluster = format!(
            "user default off resetpass nocommands resetkeys resetchannels\n\
             user cache_app on {} resetchannels &sealcache:l1:ai_cache ~ai_cache:* -@all +get +set +del +unlink +exists +pttl +ttl +pexpire +scan +ping +echo +hello +select +acl|whoami +client|setname +client|getname +publish +subscribe +unsubscribe +cluster|slots +cluster|shards +cluster|info +readonly +asking\n\
             user cache_health on {} resetchannels resetkeys -@all +ping +cluster|info\n\
             user cache_monitor on {} resetchannels resetkeys -@all +ping +info +acl|log +acl|list +acl|whoami +hello +cluster|info\n\
             user cache_admin on {} ~* &* +@all\n\
             user cache_replication on {} resetchannels resetkeys -@all +psync +replconf +ping\n",
            h("app-secret-1"),
            h("health-secret-2"),
            h("monitor-secret-3"),
            h("admin-secret-4"),
            h("repl-secret-5"),
        );
        assert_eq!(render_with("ai_cache", &passwords(), &options), cluster);
    }

    #[test]
    fn the_monitor_reads_the_acl_but_never_the_configuration() {
        // ACL LIST for the posture probe; CONFIG GET would hand out masterauth in clear.
        assert!(MONITOR_COMMANDS.contains(&"acl|list"));
        for text in [
            render("ai_cache", &passwords()),
            render_with(
                "ai_cache",
                &passwords(),
                &AclOptions {
                    topology: Topology::Cluster {
                        replication_password: "r".into(),
                    },
                },
            ),
        ] {
            for line in text.lines().filter(|l| !l.starts_with("user cache_admin ")) {
                assert!(!line.contains("config"), "{line}");
                assert!(
                    !line.contains("acl|getuser") && !line.contains("+acl "),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn single_node_file_has_no_cluster_grants() {
        let text = render("ai_cache", &passwords());
        assert_eq!(
            text,
            render_with("ai_cache", &passwords(), &AclOptions::default())
        );
        for word in [
            "cluster|",
            "+readonly",
            "+asking",
            "cache_replication",
            "+psync",
        ] {
            assert!(!text.contains(word), "{word} in\n{text}");
        }
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn cluster_file_adds_cluster_grants_and_a_replication_user() {
        let options = AclOptions {
            topology: Topology::Cluster {
                replication_password: "repl-secret-5".into(),
            },
        };
        let text = render_with("ai_cache", &passwords(), &options);
        assert!(!text.contains("repl-secret-5"));
        let words = |user: &str| -> Vec<String> {
            text.lines()
                .find(|l| l.starts_with(&format!("user {user} ")))
                .unwrap()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let app = words(APP_USER);
        for c in [
            "+cluster|slots",
            "+cluster|shards",
            "+cluster|info",
            "+readonly",
            "+asking",
            "+publish",
        ] {
            assert!(app.iter().any(|w| w == c), "{c} in {app:?}");
        }
        // Read-only cluster introspection only: never the whole CLUSTER family.
        assert!(!app.iter().any(|w| w == "+cluster" || w == "+cluster|nodes"));
        for user in [HEALTH_USER, MONITOR_USER] {
            assert!(words(user).iter().any(|w| w == "+cluster|info"), "{user}");
        }
        let repl = words(REPLICATION_USER);
        let hash = password_hash(&"repl-secret-5".into());
        assert_eq!(
            repl[2..],
            [
                "on",
                hash.as_str(),
                "resetchannels",
                "resetkeys",
                "-@all",
                "+psync",
                "+replconf",
                "+ping"
            ]
        );
        let f = facts(&text);
        assert_eq!(f.hashes.len(), 5);
        assert!(!f.app_overprivileged && !f.replication_overprivileged);
        assert!(!f.default_enabled);
        assert!(format!("{options:?}").contains("SecretString(..)"));
        assert!(!format!("{options:?}").contains("repl-secret-5"));
    }

    #[test]
    fn facts_find_an_overprivileged_replication_user_and_open_channels() {
        for line in [
            "user cache_replication on #ab -@all +psync +replconf +ping +get",
            "user cache_replication on #ab ~* +psync",
            "user cache_replication on #ab allchannels +psync",
            "user cache_replication on #ab allcommands",
        ] {
            assert!(facts(line).replication_overprivileged, "{line}");
        }
        assert!(facts("user cache_app on #ab allchannels ~ns:* -@all +get").app_overprivileged);
        assert!(facts("user cache_app on #ab &* ~ns:* -@all +get").app_overprivileged);
    }

    #[test]
    fn facts_find_weaknesses() {
        let f = facts("user default on nopass ~* +@all\nuser cache_app on >plain ~* +@all\n");
        assert!(f.default_enabled);
        assert_eq!(f.plaintext_or_nopass, vec!["default", "cache_app"]);
        assert!(f.app_overprivileged);
        assert!(
            facts("").default_enabled,
            "a missing default user is enabled by Redis"
        );
    }
}
