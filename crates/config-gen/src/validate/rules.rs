//! The rules. Each pushes issues with a stable code; none prints a secret value.

use sealcache_codec::Keyring;
use sealcache_env_detect::{Enforcement, Environment, Policy, Requirement};

use super::input::Facts;
use super::{Issue, Severity};
use crate::{acl, password, tls};

struct Out(Vec<Issue>);

impl Out {
    fn push(&mut self, code: &'static str, severity: Severity, message: String, remedy: &str) {
        self.0.push(Issue {
            code,
            severity,
            message,
            remedy: remedy.to_owned(),
        });
    }
}

/// The severity [`Policy`] gives a problem: requirement gaps follow
/// [`Policy::enforcement`], hardening gaps [`Policy::hardening`].
fn severity(enforcement: Enforcement) -> Severity {
    match enforcement {
        Enforcement::Error => Severity::Error,
        Enforcement::Warning => Severity::Warning,
    }
}

/// Error where the strict policy applies, warning elsewhere.
fn strict(policy: Policy) -> Severity {
    severity(policy.hardening())
}

/// As the policy treats a configuration without `requirement`.
fn required(policy: Policy, requirement: Requirement) -> Severity {
    severity(policy.enforcement(requirement))
}

const REGENERATE: &str =
    "run `cargo xtask config generate --force` (or `--rotate` to keep TLS and the API key)";

/// Every issue of `facts` under `policy`. The validator rates a configuration as if the
/// development override were absent: the override is reported on its own, so a validation never
/// passes because of it.
pub(super) fn check(facts: &Facts, policy: Policy) -> Vec<Issue> {
    let mut out = Out(Vec::new());
    passwords(facts, policy, &mut out);
    encryption(facts, &mut out);
    transport(facts, policy, &mut out);
    certificates(facts, &mut out);
    files(facts, &mut out);
    acl_rules(facts, &mut out);
    overrides(facts, policy, &mut out);
    out.0
}

fn passwords(facts: &Facts, policy: Policy, out: &mut Out) {
    let env = policy.environment();
    let bits = policy.password_bits();
    let min_len = password::length_for_bits(bits);
    if !facts
        .passwords
        .iter()
        .any(|(u, _)| u == acl::APP_USER || facts.vars.get("REDIS_USERNAME") == Some(u))
    {
        out.push(
            "PASSWORD_MISSING",
            required(policy, Requirement::Password),
            "no password for the cache's Redis user (REDIS_PASSWORD or REDIS_PASSWORD_FILE)".into(),
            REGENERATE,
        );
    }
    for (user, secret) in &facts.passwords {
        let p = secret.expose_secret();
        if password::is_denylisted(p) {
            out.push(
                "PASSWORD_DENYLISTED",
                Severity::Error,
                format!("the password of {user} is a common or default password"),
                REGENERATE,
            );
            continue;
        }
        if p.chars().count() < min_len {
            out.push(
                "PASSWORD_TOO_SHORT",
                strict(policy),
                format!(
                    "the password of {user} has {} characters; {env} needs at least {min_len}",
                    p.chars().count()
                ),
                REGENERATE,
            );
        }
        let estimated = password::estimated_bits(p);
        if estimated < f64::from(bits) {
            out.push(
                "PASSWORD_LOW_ENTROPY",
                strict(policy),
                format!("the password of {user} carries about {estimated:.0} bits of entropy; {env} needs {bits}"),
                REGENERATE,
            );
        }
    }
    for (i, (user_a, a)) in facts.passwords.iter().enumerate() {
        for (user_b, b) in facts.passwords.iter().skip(i + 1) {
            if user_a != user_b && a.ct_eq(b.expose_secret()) {
                out.push(
                    "PASSWORD_REUSED",
                    Severity::Error,
                    format!("{user_a} and {user_b} share one password"),
                    REGENERATE,
                );
            }
        }
    }
    if let Some(text) = &facts.acl {
        let hashes = acl::facts(text).hashes;
        for (i, (ua, ha)) in hashes.iter().enumerate() {
            for (ub, hb) in hashes.iter().skip(i + 1) {
                // Hashes are not secret material, and equality of two public digests leaks nothing.
                if ua != ub && ha == hb && !facts.passwords.is_empty() {
                    out.push(
                        "PASSWORD_REUSED",
                        Severity::Error,
                        format!("{ua} and {ub} share one password hash in users.acl"),
                        REGENERATE,
                    );
                }
            }
        }
    }
    match &facts.api_key {
        None if policy.refuses_without(Requirement::ApiKey) => out.push(
            "API_KEY_MISSING",
            Severity::Warning,
            "no API key (API_KEY or API_KEY_FILE): the server refuses to start outside development"
                .into(),
            "generate one with `cargo xtask config generate` or set API_KEY_FILE",
        ),
        Some(key) if key.len() < 32 || password::is_denylisted(key.expose_secret()) => out.push(
            "API_KEY_WEAK",
            strict(policy),
            format!(
                "the API key has {} characters; use at least 32 random characters",
                key.len()
            ),
            REGENERATE,
        ),
        _ => {}
    }
}

fn encryption(facts: &Facts, out: &mut Out) {
    if let Some(path) = &facts.encryption_key_missing_file {
        out.push(
            "ENCRYPTION_KEY_MISSING",
            Severity::Error,
            format!(
                "REDIS_ENCRYPTION_KEYS_FILE points at {}, which does not exist",
                path.display()
            ),
            REGENERATE,
        );
        return;
    }
    match &facts.encryption_key {
        None => out.push(
            "ENCRYPTION_KEY_MISSING",
            Severity::Error,
            "no encryption key (REDIS_ENCRYPTION_KEY or REDIS_ENCRYPTION_KEYS_FILE): values would not be sealed".into(),
            REGENERATE,
        ),
        Some(text) => {
            if let Err(err) = Keyring::parse(text.expose_secret()) {
                let about_dictionary = matches!(
                    err,
                    sealcache_codec::Error::InvalidDictionary(_)
                        | sealcache_codec::Error::DuplicateDictionaryId(_)
                ) || matches!(
                    err,
                    sealcache_codec::Error::KeyringSyntax { reason, .. } if reason.contains("dictionary")
                );
                if about_dictionary {
                    out.push(
                        "DICTIONARY_INVALID",
                        Severity::Error,
                        format!("a compression dictionary in the keyring is not usable: {err}"),
                        "re-run `cargo xtask config dictionary`, or delete that dictionary line (values sealed with it become misses); the keys are fine",
                    );
                } else {
                    out.push(
                        "ENCRYPTION_KEY_INVALID",
                        Severity::Error,
                        format!("the encryption key is not usable: {err}"),
                        "a key is 32 random bytes as 44 characters of URL-safe base64; regenerate it",
                    );
                }
            }
        }
    }
}

fn transport(facts: &Facts, policy: Policy, out: &mut Out) {
    let env = policy.environment();
    let tls_flag = facts.vars.get("REDIS_TLS_ENABLED").map(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    });
    let url = facts.vars.get("REDIS_URL").cloned();
    let scheme_tls = url.as_deref().map(|u| u.starts_with("rediss://"));
    let tls_on = tls_flag.or(scheme_tls).unwrap_or(true);
    if !tls_on && policy.refuses_without(Requirement::Tls) {
        out.push(
            "TLS_DISABLED",
            Severity::Error,
            format!("TLS is off in {env}"),
            "set REDIS_TLS_ENABLED=true and a rediss:// URL with the generated certificates",
        );
    }
    if let (Some(flag), Some(scheme)) = (tls_flag, scheme_tls)
        && flag != scheme
    {
        out.push(
            "TLS_SCHEME_MISMATCH",
            Severity::Error,
            format!("REDIS_TLS_ENABLED={flag} disagrees with the REDIS_URL scheme"),
            "use rediss:// with TLS on and redis:// only with TLS off",
        );
    }
    let Some(url) = url else { return };
    if url.starts_with("rediss://") && url.contains("#insecure") && env != Environment::Development
    {
        out.push(
            "TLS_INSECURE_FLAG",
            Severity::Error,
            "REDIS_URL carries #insecure: certificate checks are off".into(),
            "remove #insecure and pin the CA with REDIS_TLS_CA_PATH",
        );
    }
    let authority = url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '#', '?']).next().unwrap_or("")
    });
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        let has_password = userinfo.contains(':') && !userinfo.ends_with(':');
        if url.starts_with("redis://") && has_password {
            out.push(
                "PLAINTEXT_CREDENTIALS",
                Severity::Error,
                "REDIS_URL sends a password over plaintext redis://".into(),
                "use rediss:// and move the password to REDIS_PASSWORD_FILE",
            );
        } else if !userinfo.is_empty() {
            out.push(
                "URL_CREDENTIALS",
                Severity::Warning,
                "REDIS_URL embeds credentials, which end up in logs and process listings".into(),
                "move them to REDIS_USERNAME and REDIS_PASSWORD_FILE",
            );
        }
    }
}

fn certificates(facts: &Facts, out: &mut Out) {
    let mut serials = Vec::new();
    for (label, pem) in &facts.certificates {
        match tls::certificate_facts(pem) {
            Ok(c) if c.days_until_expiry < 0 => out.push(
                "CERT_EXPIRED",
                Severity::Error,
                format!(
                    "certificate {label} expired {} days ago",
                    -c.days_until_expiry
                ),
                "renew the TLS material: `cargo xtask config generate --force`",
            ),
            Ok(c) if c.days_until_expiry <= 30 => out.push(
                "CERT_EXPIRING",
                Severity::Warning,
                format!(
                    "certificate {label} expires in {} days",
                    c.days_until_expiry
                ),
                "renew the TLS material before it expires",
            ),
            Ok(c) => serials.push((label.clone(), c.serial)),
            Err(_) => out.push(
                "CERT_UNREADABLE",
                Severity::Error,
                format!("{label} is not a PEM certificate"),
                "regenerate the TLS material",
            ),
        }
    }
    let server = serials.iter().find(|(l, _)| l.ends_with("redis.crt"));
    let client = serials
        .iter()
        .find(|(l, _)| l.ends_with("client.crt") || l == "REDIS_TLS_CERT_PATH");
    if let (Some((_, s)), Some((_, c))) = (server, client)
        && s == c
    {
        out.push(
            "CERT_REUSED",
            Severity::Error,
            "the client certificate is the server certificate".into(),
            "use the distinct generated client certificate (clientAuth)",
        );
    }
}

fn files(facts: &Facts, out: &mut Out) {
    for (path, mode) in &facts.loose_files {
        out.push(
            "SECRET_FILE_PERMISSIONS",
            Severity::Error,
            format!(
                "{} has mode {mode:04o}: readable by group or others",
                path.display()
            ),
            "chmod 600 for files, 700 for directories",
        );
    }
    for (var, path) in &facts.missing_files {
        out.push(
            "SECRET_FILE_MISSING",
            Severity::Error,
            format!("{var} points at {}, which does not exist", path.display()),
            REGENERATE,
        );
    }
    if facts.ca_key_in_secrets {
        out.push(
            "CA_KEY_EXPOSED",
            Severity::Error,
            "a CA private key is under secrets/, which is mounted into containers".into(),
            "keep the CA key in ca/ only",
        );
    }
}

fn acl_rules(facts: &Facts, out: &mut Out) {
    let Some(text) = &facts.acl else {
        if facts.is_dir {
            out.push(
                "ACL_FILE_MISSING",
                Severity::Error,
                "secrets/users.acl is missing".into(),
                REGENERATE,
            );
        }
        return;
    };
    let f = acl::facts(text);
    if f.default_enabled {
        out.push(
            "ACL_DEFAULT_USER_ENABLED",
            Severity::Error,
            "the ACL file leaves the `default` user enabled".into(),
            "add `user default off` (the generator does)",
        );
    }
    for user in &f.plaintext_or_nopass {
        out.push(
            "ACL_PLAINTEXT_PASSWORD",
            Severity::Error,
            format!("ACL user {user} has a plaintext password or nopass"),
            "store passwords as #<sha256> hashes only",
        );
    }
    if f.app_overprivileged {
        out.push(
            "ACL_APP_OVERPRIVILEGED",
            Severity::Error,
            "the cache's ACL user may run administrative or dangerous commands".into(),
            "limit cache_app to the commands the cache needs (see the generated users.acl)",
        );
    }
    if f.replication_overprivileged {
        out.push(
            "ACL_REPLICATION_OVERPRIVILEGED",
            Severity::Error,
            "the replication ACL user may run more than PSYNC, REPLCONF and PING, or reach keys or channels".into(),
            "limit cache_replication to `resetchannels resetkeys -@all +psync +replconf +ping`",
        );
    }
}

fn overrides(facts: &Facts, policy: Policy, out: &mut Out) {
    let env = policy.environment();
    let override_on = facts
        .vars
        .get("REDIS_SECURITY_MODE")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("development"));
    if override_on && env != Environment::Development {
        let severity = if env == Environment::Production {
            Severity::Error
        } else {
            Severity::Warning
        };
        out.push(
            "DEV_OVERRIDE_IN_PRODUCTION",
            severity,
            format!("REDIS_SECURITY_MODE=development relaxes the security policy in {env}"),
            "remove REDIS_SECURITY_MODE outside development",
        );
    }
    if facts
        .vars
        .get("REDIS_PROTECTED_MODE")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
    {
        out.push(
            "PROTECTED_MODE_OFF",
            strict(policy),
            "REDIS_PROTECTED_MODE=no".into(),
            "keep protected-mode yes",
        );
    }
    if env == Environment::Unknown {
        out.push(
            "ENVIRONMENT_UNDECLARED",
            Severity::Info,
            "no environment is declared, so the production policy applies".into(),
            "set ENVIRONMENT=development|testing|staging|production",
        );
    }
}
