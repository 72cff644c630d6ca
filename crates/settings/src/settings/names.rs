//! The names the settings know: the variables they read, the deprecated names they accept, the
//! misspellings they refuse, and the variables other parts of sealcache read.
//!
//! A set variable is judged once, in this order: a setting ([`VARIABLES`]) is read; a deprecated
//! alias ([`ALIASES`]) is read as its canonical name with one warning; a variable another part of
//! sealcache reads ([`OTHER_VARIABLES`], `SEALCACHE_BENCH_*`) is left alone; a known misspelling
//! ([`NEAR_MISSES`]) is an error naming the right variable; any other `REDIS_*`, `SEALCACHE_*` or
//! `CACHE_*` variable within two edits of a setting or alias (one edit when that name is shorter
//! than 12 characters) is an error naming the setting; any other `SEALCACHE_*` variable is an
//! error; everything else is not ours and is ignored. TOML keys are judged the same way, except
//! that a key that is no setting or alias is always an error (the file holds nothing but
//! settings).

use super::VARIABLES;

/// Deprecated names, `(alias, canonical)`: the names of the Python template teams migrate from
/// (and of the Python libraries it configured). Each is read as its canonical name, with one
/// warning naming both; setting an alias and its canonical name (or two aliases of one setting)
/// to different values is an error naming both.
pub const ALIASES: &[(&str, &str)] = &[
    ("REDIS_AUTH", "REDIS_PASSWORD"),
    ("REDIS_ACL_PASSWORD", "REDIS_PASSWORD"),
    // Flask-Caching's names.
    ("CACHE_REDIS_PASSWORD", "REDIS_PASSWORD"),
    ("CACHE_REDIS_URL", "REDIS_URL"),
    ("CACHE_KEY_PREFIX", "CACHE_NAMESPACE"),
    ("REDIS_ACL_USERNAME", "REDIS_USERNAME"),
    // The template's `to_env_dict`: the second (monitoring) user's password.
    ("REDIS_CACHE_PASSWORD", "REDIS_MONITOR_PASSWORD"),
    ("REDIS_USE_TLS", "REDIS_TLS_ENABLED"),
    ("REDIS_SSL", "REDIS_TLS_ENABLED"),
    // redis-py's `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`.
    ("REDIS_TLS_CA_CERT", "REDIS_TLS_CA_PATH"),
    ("REDIS_SSL_CA_CERTS", "REDIS_TLS_CA_PATH"),
    ("REDIS_SSL_CERTFILE", "REDIS_TLS_CERT_PATH"),
    ("REDIS_SSL_KEYFILE", "REDIS_TLS_KEY_PATH"),
    ("REDIS_CACHE_NAMESPACE", "CACHE_NAMESPACE"),
    ("CACHE_PREFIX", "CACHE_NAMESPACE"),
];

/// Known misspellings, `(found, expected)`: each is a start-up error saying "did you mean
/// `expected`". (Names within two edits of a setting are refused without being listed here.)
pub const NEAR_MISSES: &[(&str, &str)] = &[
    ("REDIS_ENCRYPTION_KEY_FILE", "REDIS_ENCRYPTION_KEYS_FILE"),
    ("REDIS_ENCRYPTION_KEY_PATH", "REDIS_ENCRYPTION_KEYS_FILE"),
    ("REDIS_ENCRYPTION_KEYS_PATH", "REDIS_ENCRYPTION_KEYS_FILE"),
    ("REDIS_ENCRYPTION_KEYRING", "REDIS_ENCRYPTION_KEYS_FILE"),
    (
        "REDIS_ENCRYPTION_KEYRING_FILE",
        "REDIS_ENCRYPTION_KEYS_FILE",
    ),
    ("REDIS_KEYRING_FILE", "REDIS_ENCRYPTION_KEYS_FILE"),
    (
        "REDIS_ENCRYPTION_KEYS",
        "REDIS_ENCRYPTION_KEY (one key or an inline keyring) or REDIS_ENCRYPTION_KEYS_FILE",
    ),
    ("REDIS_PASSWORD_PATH", "REDIS_PASSWORD_FILE"),
    ("REDIS_PASS", "REDIS_PASSWORD"),
    ("REDIS_USER", "REDIS_USERNAME"),
    ("REDIS_ACL_USER", "REDIS_USERNAME"),
    ("REDIS_MONITOR_USER", "REDIS_MONITOR_USERNAME"),
    ("REDIS_MONITOR_PASSWORD_PATH", "REDIS_MONITOR_PASSWORD_FILE"),
    ("REDIS_TLS", "REDIS_TLS_ENABLED"),
    ("REDIS_TLS_CA", "REDIS_TLS_CA_PATH"),
    ("REDIS_TLS_CA_FILE", "REDIS_TLS_CA_PATH"),
    ("REDIS_TLS_CERT", "REDIS_TLS_CERT_PATH"),
    ("REDIS_TLS_CERT_FILE", "REDIS_TLS_CERT_PATH"),
    ("REDIS_TLS_CLIENT_CERT", "REDIS_TLS_CERT_PATH"),
    ("REDIS_TLS_KEY", "REDIS_TLS_KEY_PATH"),
    ("REDIS_TLS_KEY_FILE", "REDIS_TLS_KEY_PATH"),
    ("REDIS_TLS_CLIENT_KEY", "REDIS_TLS_KEY_PATH"),
    ("REDIS_SECURE_MODE", "REDIS_SECURITY_MODE"),
    ("REDIS_CLUSTER", "REDIS_CLUSTER_NODES"),
    ("REDIS_NAMESPACE", "CACHE_NAMESPACE"),
    ("REDIS_KEY_PREFIX", "CACHE_NAMESPACE"),
    (
        "API_KEYS",
        "API_KEY (one key) or ADDITIONAL_API_KEYS (a comma-separated list)",
    ),
    ("API_KEY_PATH", "API_KEY_FILE"),
    ("API_KEYS_FILE", "API_KEY_FILE"),
    ("ADDITIONAL_API_KEY", "ADDITIONAL_API_KEYS"),
    ("SEALCACHE_API_KEY", "API_KEY"),
    ("SEALCACHE_LISTEN_ADDR", "SEALCACHE_LISTEN"),
    ("SEALCACHE_ADDR", "SEALCACHE_LISTEN"),
    ("SEALCACHE_BIND", "SEALCACHE_LISTEN"),
    ("SEALCACHE_LOG_LEVEL", "SEALCACHE_LOG"),
];

/// Variables in the checked namespaces that other parts of sealcache read, so the settings accept
/// them without reading them: `SEALCACHE_CONFIG` (which file [`super::SecuritySettings::load`]
/// reads), the server's logging (`SEALCACHE_LOG`, `SEALCACHE_LOG_FORMAT`: read before the
/// settings, so that their warnings are seen), the compose files' interpolation variables that
/// xtask sets, and the benchmarks' corpus (`SEALCACHE_CORPUS`; `SEALCACHE_BENCH_*` are accepted
/// as a family), and the operations shared across tenants (`SEALCACHE_SHARED_OPERATIONS`, read by
/// the server's routes).
pub const OTHER_VARIABLES: &[&str] = &[
    "SEALCACHE_CONFIG",
    "SEALCACHE_LOG",
    "SEALCACHE_LOG_FORMAT",
    "SEALCACHE_CORPUS",
    "SEALCACHE_DIR",
    "SEALCACHE_DEPLOY",
    "SEALCACHE_UID",
    "SEALCACHE_GID",
    "SEALCACHE_PORT",
    "SEALCACHE_PORT_2",
    "SEALCACHE_INTERNAL_SUBNET",
    "SEALCACHE_OTLP_ENDPOINT",
    "SEALCACHE_REDIS_IMAGE",
    "SEALCACHE_BACKEND_IMAGE",
    "SEALCACHE_OTELCOL_IMAGE",
    "SEALCACHE_PROMETHEUS_IMAGE",
    "SEALCACHE_PROMETHEUS_PORT",
    "SEALCACHE_GRAFANA_IMAGE",
    "SEALCACHE_GRAFANA_PORT",
    "SEALCACHE_SHARED_OPERATIONS",
    // The backend container's marker for the operator command run inside it, and the mode of the
    // deployment directory's mount there (compose interpolation).
    "SEALCACHE_IN_CONTAINER",
    "SEALCACHE_DIR_MOUNT",
];

/// Families of variables other parts of sealcache read (benchmarks).
const OTHER_PREFIXES: &[&str] = &["SEALCACHE_BENCH_"];

/// Namespaces in which a near-miss is refused.
const CHECKED_PREFIXES: &[&str] = &["REDIS_", "SEALCACHE_", "CACHE_"];

/// The namespace that is entirely ours: an unknown name in it is refused.
const OWN_PREFIX: &str = "SEALCACHE_";

/// How far a name may be from a setting to count as its misspelling: two edits from a name of
/// at least [`LONG_NAME`] characters, one from a shorter one (two edits turn `REDIS_DSN` into the
/// alias `REDIS_SSL`, which is no misspelling).
const MAX_EDITS: usize = 2;
/// See [`MAX_EDITS`].
const LONG_NAME: usize = 12;

/// What a name is to the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name {
    /// A setting (the canonical name, from [`VARIABLES`]).
    Setting(&'static str),
    /// A deprecated alias: `(alias, canonical)`.
    Alias(&'static str, &'static str),
    /// Read by another part of sealcache, or not ours: ignored.
    Ignored,
    /// A misspelling of `expected`.
    Misspelled(&'static str),
    /// An unknown name in a namespace that is ours.
    Unknown,
}

/// Judges a variable name (upper case, as set). `strict` refuses every name that is neither a
/// setting nor an alias (TOML keys).
pub(super) fn judge(name: &str, strict: bool) -> Name {
    if let Some(setting) = VARIABLES.iter().find(|v| **v == name) {
        return Name::Setting(setting);
    }
    if let Some((alias, canonical)) = ALIASES.iter().find(|(a, _)| *a == name) {
        return Name::Alias(alias, canonical);
    }
    if !strict
        && (OTHER_VARIABLES.contains(&name) || OTHER_PREFIXES.iter().any(|p| name.starts_with(p)))
    {
        return Name::Ignored;
    }
    if let Some((_, expected)) = NEAR_MISSES.iter().find(|(found, _)| *found == name) {
        return Name::Misspelled(expected);
    }
    // The declaration that decides the security policy: a misspelt one must not fall silently to
    // a weaker signal (`ENVIROMENT=production` beside `NODE_ENV=development`).
    if (1..=MAX_EDITS).contains(&edit_distance(name, "ENVIRONMENT")) {
        return Name::Misspelled("ENVIRONMENT");
    }
    if (strict || CHECKED_PREFIXES.iter().any(|p| name.starts_with(p)))
        && let Some(expected) = nearest(name)
    {
        return Name::Misspelled(expected);
    }
    if strict || name.starts_with(OWN_PREFIX) {
        Name::Unknown
    } else {
        Name::Ignored
    }
}

/// Whether the settings read `name` (a setting or an alias).
pub(super) fn is_read(name: &str) -> bool {
    VARIABLES.contains(&name) || ALIASES.iter().any(|(alias, _)| *alias == name)
}

/// The setting a name is at most [`MAX_EDITS`] away from (from a setting or from an alias, whose
/// canonical name is then suggested); the closest, the first in table order on a tie.
fn nearest(name: &str) -> Option<&'static str> {
    let settings = VARIABLES.iter().map(|v| (*v, *v));
    let aliases = ALIASES.iter().map(|(a, c)| (*a, *c));
    let mut best: Option<(usize, &'static str)> = None;
    for (candidate, canonical) in settings.chain(aliases) {
        let allowed = if candidate.len() >= LONG_NAME {
            MAX_EDITS
        } else {
            1
        };
        let distance = edit_distance(name, candidate);
        if distance <= allowed && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, canonical));
        }
    }
    best.map(|(_, canonical)| canonical)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions; `strsim`), capped
/// at `MAX_EDITS + 1` without computing it when the lengths already differ by more.
fn edit_distance(a: &str, b: &str) -> usize {
    if a.len().abs_diff(b.len()) > MAX_EDITS {
        return MAX_EDITS + 1;
    }
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_transpositions() {
        assert_eq!(edit_distance("REDIS_URL", "REDIS_URL"), 0);
        assert_eq!(edit_distance("REDIS_URI", "REDIS_URL"), 1);
        assert_eq!(edit_distance("REDIS_UESRNAME", "REDIS_USERNAME"), 1);
        assert_eq!(edit_distance("REDIS_USRNAM", "REDIS_USERNAME"), 2);
        assert!(edit_distance("REDIS_HOST", "REDIS_URL") > MAX_EDITS);
    }

    #[test]
    fn the_tables_do_not_overlap() {
        for (alias, canonical) in ALIASES {
            assert!(VARIABLES.contains(canonical), "{alias} -> {canonical}");
            assert!(!VARIABLES.contains(alias), "{alias}");
        }
        for (found, expected) in NEAR_MISSES {
            assert_eq!(judge(found, false), Name::Misspelled(expected), "{found}");
            assert!(
                VARIABLES
                    .iter()
                    .chain(OTHER_VARIABLES)
                    .any(|v| expected.starts_with(v)),
                "{found} -> {expected}"
            );
        }
        for other in OTHER_VARIABLES {
            assert_eq!(judge(other, false), Name::Ignored, "{other}");
            assert!(matches!(
                judge(other, true),
                Name::Misspelled(_) | Name::Unknown
            ));
        }
    }

    #[test]
    fn a_misspelt_environment_is_refused() {
        for name in ["ENVIROMENT", "ENVIRONEMNT", "ENVIRONMNT", "ENVIRONMENTS"] {
            assert_eq!(
                judge(name, false),
                Name::Misspelled("ENVIRONMENT"),
                "{name}"
            );
        }
        assert_eq!(judge("ENVIRONMENT", false), Name::Setting("ENVIRONMENT"));
        assert_eq!(judge("APP_ENV", false), Name::Ignored);
    }

    #[test]
    fn generic_rules() {
        assert_eq!(judge("REDIS_URI", false), Name::Misspelled("REDIS_URL"));
        assert_eq!(
            judge("REDIS_AUTHH", false),
            Name::Misspelled("REDIS_PASSWORD")
        );
        assert_eq!(
            judge("SEALCACHE_LISTN", false),
            Name::Misspelled("SEALCACHE_LISTEN")
        );
        assert_eq!(judge("SEALCACHE_WHATEVER", false), Name::Unknown);
        assert_eq!(judge("SEALCACHE_BENCH_ANYTHING", false), Name::Ignored);
        // Not ours, or too far from every setting.
        let others = [
            "REDIS_HOST",
            "REDIS_PORT",
            "REDIS_DB",
            "REDIS_DSN",
            "REDIS_PATH",
            "CACHE_TTL",
            "PATH",
            "HOME",
        ];
        for name in others {
            assert_eq!(judge(name, false), Name::Ignored, "{name}");
        }
        assert_eq!(judge("REDIS_HOST", true), Name::Unknown);
    }
}
