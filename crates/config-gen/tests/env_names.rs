//! The generated files use only variable names the settings loader reads.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealcache_config_gen::{
    DeploymentOptions, OutputFormat, SecureConfigGenerator, SecuritySettings, VARIABLES, layout,
    read_env_file, render_env, write_deployment,
};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};

fn production_config() -> sealcache_config_gen::SecurityConfiguration {
    let info = EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", "production"))
        .detect(FeatureContext::SecurityEnforcement);
    SecureConfigGenerator::generate_for_environment(&info, Some(Environment::Production)).unwrap()
}

fn names_in(env_text: &str) -> Vec<String> {
    env_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').unwrap().0.to_owned())
        .collect()
}

/// `cargo xtask config generate` writes only names the settings read: the flat `--format
/// env-vars` file loads as is (no alias, nothing ignored), and the directory's `.env` too.
#[test]
fn generated_env_files_use_only_names_the_loader_reads() {
    let config = production_config();
    let tmp = tempfile::tempdir().unwrap();
    let opts = DeploymentOptions {
        format: OutputFormat::EnvVars,
        ..DeploymentOptions::default()
    };
    write_deployment(&config, tmp.path(), &opts).unwrap();
    let file = tmp.path().join(layout::ENV_SECURE_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    let names = names_in(&text);
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        assert!(
            VARIABLES.contains(&name.as_str()),
            "{name} is written but not read"
        );
    }

    let vars = read_env_file(&file).unwrap();
    let s = SecuritySettings::load_from(&vars, None).unwrap();
    assert!(s.deprecated_aliases.is_empty());
    assert_eq!(
        s.redis_password.as_ref().unwrap().expose_secret(),
        config.redis_password.expose_secret()
    );
    assert_eq!(s.redis_monitor_username.as_deref(), Some("cache_monitor"));
    assert_eq!(
        s.redis_monitor_password.as_ref().unwrap().expose_secret(),
        config.redis_cache_password.expose_secret()
    );
    assert_eq!(s.api_keys.len(), 1);
    assert!(s.keyring.is_some() && s.redis_tls_enabled);
    assert_eq!(s.environment.as_deref(), Some("production"));

    let dir_env = render_env(&config, &DeploymentOptions::default());
    for name in names_in(&dir_env) {
        assert!(
            VARIABLES.contains(&name.as_str()),
            "{name} is written to .env but not read"
        );
    }
}
