//! Recognising environment names in variable values and host names.

use crate::Environment;

/// How a value named its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameMatch {
    /// A canonical name or its usual short form (`production`, `prod`, `dev`, ...).
    Exact,
    /// Recognised only by pattern (`prod-us-east`, `stg2`, `uat`, `preprod`, `qa`, `local`).
    Pattern,
}

/// True when `value` looks like an environment name at all: 1 to 64 ASCII letters, digits, `-`,
/// `_` or `.`. A path (`ENV=/usr/local/etc/shrc`, the POSIX shell's startup file), a URL or free
/// text is never read for an environment, whatever words it contains.
pub(crate) fn looks_like_a_name(value: &str) -> bool {
    let v = value.trim();
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Classifies a variable value.
pub(crate) fn classify(value: &str) -> Option<(Environment, NameMatch)> {
    if !looks_like_a_name(value) {
        return None;
    }
    let v = value.trim().to_ascii_lowercase();
    let exact = match v.as_str() {
        "development" | "dev" => Some(Environment::Development),
        "testing" | "test" => Some(Environment::Testing),
        "staging" | "stage" => Some(Environment::Staging),
        "production" | "prod" => Some(Environment::Production),
        _ => None,
    };
    if let Some(env) = exact {
        return Some((env, NameMatch::Exact));
    }
    pattern(&v).map(|env| (env, NameMatch::Pattern))
}

/// Recognises an environment by pattern in a lowercase value or host name.
///
/// Staging is checked first (`preprod` contains `prod`), then production, testing, development.
pub(crate) fn pattern(v: &str) -> Option<Environment> {
    let squashed: String = v.chars().filter(char::is_ascii_alphanumeric).collect();
    let tokens: Vec<String> = v
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    let any = |f: &dyn Fn(&str) -> bool| tokens.iter().any(|t| f(t));
    if squashed.contains("preprod")
        || any(&|t| t == "uat" || t.starts_with("stag") || t == "stg" || t == "stage")
    {
        return Some(Environment::Staging);
    }
    if any(&|t| t.starts_with("prod") || t == "prd" || t == "live") {
        return Some(Environment::Production);
    }
    // Relaxing names are matched whole (`dev-eu`, `development-alice`, `local`), never as a
    // prefix: `devon`, `device`, `devops` or `testament` name no environment.
    if any(&|t| matches!(t, "qa" | "test" | "tests" | "testing" | "ci" | "tst")) {
        return Some(Environment::Testing);
    }
    if any(&|t| {
        matches!(
            t,
            "dev" | "devel" | "develop" | "development" | "local" | "localhost"
        )
    }) {
        return Some(Environment::Development);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Environment::*;

    #[test]
    fn exact_and_pattern_names() {
        for (value, env, how) in [
            ("production", Production, NameMatch::Exact),
            ("PROD", Production, NameMatch::Exact),
            ("dev", Development, NameMatch::Exact),
            ("Staging", Staging, NameMatch::Exact),
            ("test", Testing, NameMatch::Exact),
            ("prod-us-east", Production, NameMatch::Pattern),
            ("production-eu-2", Production, NameMatch::Pattern),
            ("stg2", Staging, NameMatch::Pattern),
            ("uat", Staging, NameMatch::Pattern),
            ("preprod", Staging, NameMatch::Pattern),
            ("pre-prod", Staging, NameMatch::Pattern),
            ("qa", Testing, NameMatch::Pattern),
            ("local", Development, NameMatch::Pattern),
            ("development-alice", Development, NameMatch::Pattern),
        ] {
            assert_eq!(classify(value), Some((env, how)), "{value}");
        }
        assert_eq!(classify("banana"), None);
        assert_eq!(classify(""), None);
        // Words that only start like an environment, and paths, name none.
        for value in [
            "devon",
            "device",
            "devices",
            "device-fleet-eu",
            "devops",
            "devx",
            "developmnt",
            "testament",
            "/usr/local/etc/shrc",
            "/home/devon/.shrc",
            "http://dev.example",
            "dev env",
        ] {
            assert_eq!(classify(value), None, "{value}");
        }
        assert_eq!(
            classify("dev-eu-1"),
            Some((Development, NameMatch::Pattern))
        );
    }
}
