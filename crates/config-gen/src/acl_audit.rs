//! A live ACL compared with the generated one: what `ACL LIST` shows on a running Redis against
//! what [`crate::acl::render_with`] grants.
//!
//! [`audit`] reads the lines `ACL LIST` returns (one per user, as Redis 7 prints them: normalized,
//! reordered, with flags such as `sanitize-payload` or `skip-sanitize-payload` and selectors in
//! parentheses) and compares them **semantically** with the grants of the generator, which come
//! from the same code that renders `users.acl` (one source of truth). Each user's rules are applied
//! in order, as Redis applies them, to sets: the state (`on`/`off`), the password state (`nopass`,
//! the number of hashes), the commands (`+@all`/`allcommands`, categories, commands and
//! subcommands), the key patterns with their permissions (`~p`, `%R~p`, `%W~p`, `allkeys`), the
//! channel patterns (`&p`, `allchannels`), the flags and the selectors. Password hashes are
//! counted and never kept.
//!
//! What counts as a [`AclDeviation`]:
//!
//! | deviation | when |
//! |---|---|
//! | [`AclDeviation::ExtraUser`] | a user the generator does not write (say `intruder`) |
//! | [`AclDeviation::Nopass`] | any user with `nopass` (anyone may log in as it) |
//! | [`AclDeviation::DefaultUserEnabled`] | `user default on`, with or without a password |
//! | [`AclDeviation::WiderRights`] | a generated user may do more than its grant: `+@all`, a category, a command or subcommand not granted, a key or channel pattern not granted (or a wider permission on one), a selector, `skip-sanitize-payload` |
//! | [`AclDeviation::ExtraPasswords`] | a user accepting more than two passwords (a rotation leaves at most two: the current and the staged one) |
//! | [`AclDeviation::UnknownRule`] | a rule this module does not know (a newer Redis): not judged |
//! | [`AclDeviation::MissingUser`] | a generated user Redis does not have |
//!
//! Fewer rights than granted (a command removed, a user switched `off`) are not deviations: the
//! application then fails visibly, and nothing is exposed. `cache_admin` holds `~* &* +@all` by
//! design, so no rule widens it (but `nopass` on it is still a deviation). Patterns are compared
//! as text: a pattern that is not one of the granted ones counts as wider, even when every key it
//! matches is also matched by a granted one (glob containment is not decided); likewise a
//! category grant counts as wider whatever follows it.

use std::collections::{BTreeMap, BTreeSet};

use crate::acl::{ADMIN_USER, TopologyKind, grants};

/// Longest user name or rule text a deviation quotes (names are chosen by whoever created the user).
const MAX_QUOTED: usize = 64;

/// One way a live ACL differs from the generated one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AclDeviation {
    /// A user the generator does not write.
    ExtraUser {
        /// Its name (non-printable characters replaced, at most 64 characters).
        user: String,
        /// It is `on` (it can authenticate).
        enabled: bool,
    },
    /// A user with `nopass`: any password logs in as it.
    Nopass {
        /// Its name.
        user: String,
    },
    /// `user default on`: clients that do not name a user (`AUTH password`, or no `AUTH` when
    /// it is also `nopass`) are the default user.
    DefaultUserEnabled,
    /// A generated user may do more than its grant.
    WiderRights {
        /// Its name.
        user: String,
        /// What goes beyond the grant, as rules (`+@all`, `+config|get`, `~*`, `&*`,
        /// `(~x +get)`, `skip-sanitize-payload`).
        beyond: Vec<String>,
    },
    /// A rule this module does not know (a newer Redis): whether it widens the grant is not
    /// judged.
    UnknownRule {
        /// The user.
        user: String,
        /// The rule (at most 64 characters; a password-like rule is not quoted).
        rule: String,
    },
    /// A user that accepts more passwords than a rotation ever leaves (two, between `add` and
    /// `retire`): one nobody generated is a way in. (Two are a rotation in progress, or one
    /// added by hand: `cargo xtask status` tells them apart by comparing with `users.acl`.)
    ExtraPasswords {
        /// Its name.
        user: String,
        /// How many passwords it accepts.
        count: usize,
    },
    /// A generated user that Redis does not have.
    MissingUser {
        /// Its name.
        user: String,
    },
    /// A line that is not `user NAME ...`.
    UnreadableLine,
}

impl AclDeviation {
    /// True for the deviations that leave a protection missing: an extra user that can log in,
    /// `nopass`, the default user on, wider rights. Unknown rules, missing users, extra users
    /// that are `off` and unreadable lines need attention but expose nothing observed.
    #[must_use]
    pub fn weakens(&self) -> bool {
        match self {
            Self::ExtraUser { enabled, .. } => *enabled,
            Self::Nopass { .. }
            | Self::DefaultUserEnabled
            | Self::WiderRights { .. }
            | Self::ExtraPasswords { .. } => true,
            Self::UnknownRule { .. } | Self::MissingUser { .. } | Self::UnreadableLine => false,
        }
    }

    /// True for the deviations about who may log in ([`AclDeviation::ExtraUser`],
    /// [`AclDeviation::Nopass`], [`AclDeviation::DefaultUserEnabled`],
    /// [`AclDeviation::MissingUser`], [`AclDeviation::UnreadableLine`]); false for those about
    /// what a generated user may do ([`AclDeviation::WiderRights`],
    /// [`AclDeviation::UnknownRule`]).
    #[must_use]
    pub fn is_about_users(&self) -> bool {
        !matches!(self, Self::WiderRights { .. } | Self::UnknownRule { .. })
    }
}

impl std::fmt::Display for AclDeviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ExtraUser { user, enabled } => write!(
                f,
                "user {user} is not generated ({})",
                if *enabled { "on" } else { "off" }
            ),
            Self::Nopass { user } => write!(f, "user {user} has nopass"),
            Self::DefaultUserEnabled => f.write_str("the default user is on"),
            Self::WiderRights { user, beyond } => {
                write!(f, "user {user} exceeds its grant: {}", beyond.join(" "))
            }
            Self::UnknownRule { user, rule } => write!(f, "user {user} has an unknown rule {rule}"),
            Self::ExtraPasswords { user, count } => write!(
                f,
                "user {user} accepts {count} passwords (a rotation leaves at most {MAX_PASSWORDS})"
            ),
            Self::MissingUser { user } => write!(f, "user {user} is missing"),
            Self::UnreadableLine => f.write_str("a line of ACL LIST is not a user"),
        }
    }
}

/// The result of [`audit`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AclAudit {
    /// Every deviation, in the order of the lines.
    pub deviations: Vec<AclDeviation>,
    /// The `default` user is `off` (`None`: no `default` line).
    pub default_user_disabled: Option<bool>,
    /// Users read.
    pub users: usize,
}

impl AclAudit {
    /// True when no deviation was found.
    #[must_use]
    pub fn matches(&self) -> bool {
        self.deviations.is_empty()
    }
}

/// Compares a live `ACL LIST` reply (its lines, one per user) with what the generator grants for
/// `namespace` and `topology`. See the module documentation for what is compared.
///
/// # Security
/// The reply holds password hashes; they are counted, never copied into the result. User names
/// and unknown rules are quoted shortened and with non-printable characters replaced.
#[must_use]
pub fn audit<S: AsRef<str>>(acl_list: &[S], namespace: &str, topology: TopologyKind) -> AclAudit {
    let expected: BTreeMap<&str, Rights> = grants(namespace, topology)
        .into_iter()
        .map(|g| {
            let mut rights = Rights::default();
            rights.apply(if g.enabled { "on" } else { "off" });
            for token in tokens(&g.rules) {
                rights.apply(&token);
            }
            (g.name, rights)
        })
        .collect();
    let mut out = AclAudit::default();
    let mut seen = BTreeSet::new();
    for line in acl_list.iter().map(|l| l.as_ref().trim()) {
        if line.is_empty() {
            continue;
        }
        let Some((name, rules)) = line
            .strip_prefix("user ")
            .map(|rest| rest.split_once(' ').unwrap_or((rest, "")))
        else {
            out.deviations.push(AclDeviation::UnreadableLine);
            continue;
        };
        out.users += 1;
        let mut live = Rights::default();
        for token in tokens(rules) {
            live.apply(&token);
        }
        let user = quoted(name);
        if name == "default" {
            out.default_user_disabled = Some(!live.enabled);
            if live.enabled {
                out.deviations.push(AclDeviation::DefaultUserEnabled);
            }
        }
        if live.nopass {
            out.deviations
                .push(AclDeviation::Nopass { user: user.clone() });
        }
        if live.passwords > MAX_PASSWORDS {
            out.deviations.push(AclDeviation::ExtraPasswords {
                user: user.clone(),
                count: live.passwords,
            });
        }
        let Some(grant) = expected.get(name) else {
            out.deviations.push(AclDeviation::ExtraUser {
                user,
                enabled: live.enabled,
            });
            continue;
        };
        seen.insert(name.to_owned());
        let beyond = live.beyond(grant, name == ADMIN_USER);
        if !beyond.is_empty() {
            out.deviations.push(AclDeviation::WiderRights {
                user: user.clone(),
                beyond,
            });
        }
        for rule in &live.unknown {
            out.deviations.push(AclDeviation::UnknownRule {
                user: user.clone(),
                rule: rule.clone(),
            });
        }
    }
    for name in expected.keys().filter(|n| !seen.contains(**n)) {
        // Redis always has `default`: a reply without it is not a whole `ACL LIST`.
        out.deviations.push(AclDeviation::MissingUser {
            user: (*name).to_owned(),
        });
    }
    out
}

/// `text` shortened to [`MAX_QUOTED`] characters, with non-printable characters replaced.
fn quoted(text: &str) -> String {
    text.chars()
        .take(MAX_QUOTED)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The rules of a line: words, with a selector `( ... )` kept as one token.
fn tokens(rules: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut selector: Option<String> = None;
    for word in rules.split_whitespace() {
        match selector.as_mut() {
            Some(s) => {
                s.push(' ');
                s.push_str(word);
                if word.ends_with(')') {
                    out.extend(selector.take());
                }
            }
            None if word.starts_with('(') && !word.ends_with(')') => {
                selector = Some(word.to_owned());
            }
            None => out.push(word.to_owned()),
        }
    }
    // An unclosed selector is still a selector.
    out.extend(selector);
    out
}

/// The most passwords a generated user accepts: the current one and, between a rotation's `add`
/// and `retire`, the staged one.
const MAX_PASSWORDS: usize = 2;

/// A key pattern's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Perm {
    read: bool,
    write: bool,
}

impl Perm {
    const ALL: Perm = Perm {
        read: true,
        write: true,
    };

    fn covers(self, other: Perm) -> bool {
        (self.read || !other.read) && (self.write || !other.write)
    }
}

/// A user's rights as its rules leave them (applied in order, as Redis does).
#[derive(Debug, Clone, Default)]
struct Rights {
    enabled: bool,
    nopass: bool,
    /// Password hashes it holds (counted, never kept).
    passwords: usize,
    all_commands: bool,
    categories: BTreeSet<String>,
    commands: BTreeSet<String>,
    keys: BTreeMap<String, Perm>,
    channels: BTreeSet<String>,
    skip_sanitize: bool,
    selectors: Vec<String>,
    unknown: Vec<String>,
}

impl Rights {
    fn apply(&mut self, token: &str) {
        let lower = token.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords = 0;
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords = 0;
            }
            "allkeys" => self.add_keys("*", Perm::ALL),
            "resetkeys" => self.keys.clear(),
            "allchannels" => {
                self.channels.insert("*".to_owned());
            }
            "resetchannels" => self.channels.clear(),
            "allcommands" | "+@all" => {
                self.all_commands = true;
                self.categories.clear();
                self.commands.clear();
            }
            "nocommands" | "-@all" => {
                self.all_commands = false;
                self.categories.clear();
                self.commands.clear();
            }
            "sanitize-payload" => self.skip_sanitize = false,
            "skip-sanitize-payload" => self.skip_sanitize = true,
            "clearselectors" => self.selectors.clear(),
            "reset" => *self = Rights::default(),
            _ => self.apply_pattern_or_command(token, &lower),
        }
    }

    fn apply_pattern_or_command(&mut self, token: &str, lower: &str) {
        if token.starts_with('(') {
            self.selectors.push(token.to_owned());
        } else if let Some(pattern) = token.strip_prefix('~') {
            self.add_keys(pattern, Perm::ALL);
        } else if let Some((perm, pattern)) =
            token.strip_prefix('%').and_then(|t| t.split_once('~'))
        {
            let perm = perm.to_ascii_uppercase();
            let perm = Perm {
                read: perm.contains('R'),
                write: perm.contains('W'),
            };
            self.add_keys(pattern, perm);
        } else if let Some(channel) = token.strip_prefix('&') {
            self.channels.insert(channel.to_owned());
        } else if token.starts_with('#') || token.starts_with('>') {
            // A password (Redis prints hashes only): one more way in, and no longer nopass.
            self.nopass = false;
            self.passwords += 1;
        } else if token.starts_with('<') || token.starts_with('!') {
            // Removes a password: narrows.
        } else if let Some(category) = lower.strip_prefix("+@") {
            self.categories.insert(category.to_owned());
        } else if let Some(category) = lower.strip_prefix("-@") {
            self.categories.remove(category);
        } else if let Some(command) = lower.strip_prefix('+') {
            self.commands.insert(command.to_owned());
        } else if let Some(command) = lower.strip_prefix('-') {
            let sub = format!("{command}|");
            self.commands
                .retain(|c| c != command && !c.starts_with(sub.as_str()));
        } else {
            self.unknown.push(quoted(token));
        }
    }

    fn add_keys(&mut self, pattern: &str, perm: Perm) {
        let entry = self.keys.entry(pattern.to_owned()).or_insert(Perm {
            read: false,
            write: false,
        });
        entry.read |= perm.read;
        entry.write |= perm.write;
    }

    /// Everything `self` may do that `grant` does not give (`admin`: `grant` is everything).
    fn beyond(&self, grant: &Rights, admin: bool) -> Vec<String> {
        if admin && grant.all_commands {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.all_commands && !grant.all_commands {
            out.push("+@all".to_owned());
        }
        if !grant.all_commands {
            out.extend(
                self.categories
                    .iter()
                    .filter(|c| !grant.categories.contains(*c))
                    .map(|c| format!("+@{c}")),
            );
            out.extend(
                self.commands
                    .iter()
                    .filter(|c| {
                        !grant.commands.contains(*c)
                            && !c
                                .split_once('|')
                                .is_some_and(|(parent, _)| grant.commands.contains(parent))
                    })
                    .map(|c| format!("+{c}")),
            );
        }
        let any_key = grant.keys.get("*").copied();
        for (pattern, perm) in &self.keys {
            let covered = [grant.keys.get(pattern).copied(), any_key]
                .into_iter()
                .flatten()
                .any(|g| g.covers(*perm));
            if !covered {
                out.push(match (perm.read, perm.write) {
                    (true, false) => format!("%R~{pattern}"),
                    (false, true) => format!("%W~{pattern}"),
                    _ => format!("~{pattern}"),
                });
            }
        }
        let any_channel = grant.channels.contains("*");
        out.extend(
            self.channels
                .iter()
                .filter(|c| !any_channel && !grant.channels.contains(*c))
                .map(|c| format!("&{c}")),
        );
        out.extend(self.selectors.iter().cloned());
        if self.skip_sanitize && !grant.skip_sanitize {
            out.push("skip-sanitize-payload".to_owned());
        }
        // Patterns and selectors are whoever wrote them: quoted like names.
        out.iter().map(|rule| quoted(rule)).collect()
    }
}

#[cfg(test)]
mod tests;
