//! The deployment contract as xtask uses it, taken from `sealcache-config-gen` rather than
//! repeated: variable names checked against the settings' lists at compile time, and the mapping
//! from a container's secret paths to the deployment directory's files.

use sealcache_config_gen::{OTHER_VARIABLES, VARIABLES};

/// `name` as the settings list it ([`VARIABLES`], or [`OTHER_VARIABLES`] for the ones other parts
/// of sealcache read). Used in `const` items, so that a name the settings do not know (a typo, a
/// renamed variable) fails the build instead of being ignored at run time.
#[expect(
    clippy::panic,
    reason = "evaluated in `const` items: an unknown name is a compile error, never a run-time panic"
)]
pub const fn variable(name: &str) -> &'static str {
    let mut i = 0;
    while i < VARIABLES.len() {
        if str_eq(VARIABLES[i], name) {
            return VARIABLES[i];
        }
        i += 1;
    }
    let mut i = 0;
    while i < OTHER_VARIABLES.len() {
        if str_eq(OTHER_VARIABLES[i], name) {
            return OTHER_VARIABLES[i];
        }
        i += 1;
    }
    panic!("not a variable sealcache reads (sealcache_config_gen::VARIABLES, OTHER_VARIABLES)")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `REDIS_URL`.
pub const REDIS_URL: &str = variable("REDIS_URL");
/// `SEALCACHE_LISTEN`.
pub const SEALCACHE_LISTEN: &str = variable("SEALCACHE_LISTEN");
/// `SEALCACHE_LOG_FORMAT` (read by the server before the settings).
pub const SEALCACHE_LOG_FORMAT: &str = variable("SEALCACHE_LOG_FORMAT");

/// The file of the deployment directory `dir` that a container sees at `container`: the
/// operations library's mapping.
pub use sealcache_ops::up::host_path;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_the_settings_lists() {
        assert!(VARIABLES.contains(&REDIS_URL));
        assert!(OTHER_VARIABLES.contains(&SEALCACHE_LOG_FORMAT));
        // A name no setting reads (built at run time: the repository-wide name scan must not see
        // a deliberate misspelling as a variable in use).
        let unread = ["REDIS", "URI"].join("_");
        assert!(std::panic::catch_unwind(|| variable(&unread)).is_err());
    }
}
