//! The Redis ACL file: rendering (hashes only) and the checks the validator needs.

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
];

/// Commands the monitor user may run.
pub const MONITOR_COMMANDS: &[&str] = &["ping", "info", "acl|log", "acl|whoami", "hello"];

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

/// Renders `users.acl` for `namespace` (keys `namespace:*`). Redis ACL files allow no comments.
#[must_use]
pub fn render(namespace: &str, passwords: &AclPasswords) -> String {
    let app_commands: String = APP_COMMANDS.iter().map(|c| format!(" +{c}")).collect();
    let monitor_commands: String = MONITOR_COMMANDS.iter().map(|c| format!(" +{c}")).collect();
    format!(
        "user default off resetpass nocommands resetkeys resetchannels\n\
         user {APP_USER} on {app} resetchannels ~{namespace}:* -@all{app_commands}\n\
         user {HEALTH_USER} on {health} resetchannels resetkeys -@all +ping\n\
         user {MONITOR_USER} on {monitor} resetchannels resetkeys -@all{monitor_commands}\n\
         user {ADMIN_USER} on {admin} ~* &* +@all\n",
        app = password_hash(&passwords.app),
        health = password_hash(&passwords.health),
        monitor = password_hash(&passwords.monitor),
        admin = password_hash(&passwords.admin),
    )
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
    /// The application user exists and can run `KEYS`, `FLUSHALL`, `CONFIG` or `@all`.
    pub app_overprivileged: bool,
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
                )
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
