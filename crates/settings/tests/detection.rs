//! Detection reads the loaded settings: `environment` in `sealcache.toml` counts like the
//! variable, while host name and other process signals still come from the process.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use sealcache_env_detect::{Environment, FeatureContext, MapSource};
use sealcache_settings::SecuritySettings;

fn settings(toml_text: &str, vars: &[(&str, &str)]) -> SecuritySettings {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("sealcache.toml");
    std::fs::write(&toml, toml_text).unwrap();
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    SecuritySettings::load_from(&vars, Some(&toml)).unwrap()
}

#[test]
fn the_settings_file_environment_is_honoured() {
    let devish_host = MapSource::new().hostname("alice-dev-laptop");
    let s = settings("environment = \"production\"\n", &[]);
    let info = s.detect_environment_with(devish_host.clone(), FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment(), Environment::Production);
    assert!(info.strict_policy());

    // Without the file's declaration the development-looking host name is only a hint.
    let s = settings("", &[]);
    let info = s.detect_environment_with(devish_host.clone(), FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment(), Environment::Unknown);
    assert!(info.strict_policy());
    assert_eq!(info.hints().len(), 1);

    // The variable outranks the file, as for every setting.
    let s = settings(
        "environment = \"development\"\n",
        &[("ENVIRONMENT", "staging")],
    );
    let info = s.detect_environment_with(devish_host.clone(), FeatureContext::SecurityEnforcement);
    assert_eq!(info.environment(), Environment::Staging);

    // The explicit override in the file counts too (and is reported).
    let s = settings("redis_security_mode = \"development\"\n", &[]);
    let info = s.detect_environment_with(devish_host, FeatureContext::SecurityEnforcement);
    assert!(info.development_override());
    assert!(!info.strict_policy());
}
