//! Generation: entropy per environment, the directory layout and its modes, overwrite protection,
//! rotation, the flat env-vars format, and "the generator's output scores 100".

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use sealcache_codec::{Keyring, SealContext, ValueCodec};
use sealcache_config_gen::{
    DeploymentOptions, Error, OutputFormat, Recommendation, SecureConfigGenerator,
    SecurityConfiguration, WriteMode, layout, password, rotate_deployment, validate_dir,
    write_deployment,
};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext, MapSource};

fn config_for(env: Environment) -> SecurityConfiguration {
    let info =
        EnvironmentDetector::new(MapSource::new()).detect(FeatureContext::SecurityEnforcement);
    SecureConfigGenerator::generate_for_environment(&info, Some(env)).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn passwords_carry_the_entropy_of_their_environment() {
    for (env, bits, tls) in [
        (Environment::Production, 192, true),
        (Environment::Unknown, 192, true),
        (Environment::Staging, 144, true),
        (Environment::Testing, 96, true),
        (Environment::Development, 64, false),
    ] {
        let c = config_for(env);
        assert_eq!(
            c.redis_password.len(),
            password::length_for_bits(bits),
            "{env}"
        );
        assert!(password::estimated_bits(c.redis_password.expose_secret()) >= f64::from(bits));
        assert_eq!(c.redis_tls_enabled, tls, "{env}");
        assert!(c.redis_protected_mode);
        let all = [
            &c.redis_password,
            &c.redis_cache_password,
            &c.redis_health_password,
            &c.redis_admin_password,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(!a.ct_eq(b.expose_secret()), "two users share a password");
            }
        }
        let dict = c.to_env_dict();
        let keys: Vec<&str> = dict.keys().copied().collect();
        assert_eq!(
            keys,
            [
                "REDIS_CACHE_PASSWORD",
                "REDIS_ENCRYPTION_KEY",
                "REDIS_PASSWORD",
                "REDIS_PROTECTED_MODE",
                "REDIS_SECURITY_ENVIRONMENT",
                "REDIS_TLS_ENABLED"
            ]
        );
        assert_eq!(dict["REDIS_ENCRYPTION_KEY"].len(), 44);
        assert_eq!(
            dict["REDIS_SECURITY_ENVIRONMENT"].expose_secret(),
            env.as_str()
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains(c.redis_password.expose_secret()));
        assert!(!debug.contains(c.redis_encryption_key.expose_text().as_str()));
    }
}

#[test]
fn the_directory_layout_and_modes_are_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("generated");
    let c = config_for(Environment::Production);
    let written = write_deployment(&c, &dir, &DeploymentOptions::default()).unwrap();
    for rel in [
        layout::ENV_FILE,
        layout::APP_PASSWORD,
        layout::HEALTH_PASSWORD,
        layout::MONITOR_PASSWORD,
        layout::ADMIN_PASSWORD,
        layout::USERS_ACL,
        layout::ENCRYPTION_KEYRING,
        layout::API_KEY,
        layout::CA_CERT,
        layout::SERVER_CERT,
        layout::SERVER_KEY,
        layout::CLIENT_CERT,
        layout::CLIENT_KEY,
        layout::CA_KEY,
    ] {
        assert!(written.files.iter().any(|f| f == rel), "{rel} not reported");
        assert_eq!(mode(&dir.join(rel)), 0o600, "{rel}");
    }
    for rel in [
        layout::SECRETS_DIR,
        layout::REDIS_SECRETS_DIR,
        layout::BACKEND_SECRETS_DIR,
        layout::TLS_DIR,
        layout::CA_DIR,
    ] {
        assert_eq!(mode(&dir.join(rel)), 0o700, "{rel}");
    }
    assert!(!dir.join("secrets/ca.key").exists() && !dir.join("secrets/tls/ca.key").exists());

    let env = std::fs::read_to_string(dir.join(layout::ENV_FILE)).unwrap();
    for line in [
        "ENVIRONMENT=production",
        "REDIS_URL=rediss://redis:6379/0",
        "REDIS_USERNAME=cache_app",
        "REDIS_PASSWORD_FILE=/run/secrets/backend/redis_app_password",
        "REDIS_TLS_ENABLED=true",
        "REDIS_TLS_CA_PATH=/run/secrets/tls/ca.crt",
        "REDIS_TLS_CERT_PATH=/run/secrets/tls/client.crt",
        "REDIS_TLS_KEY_PATH=/run/secrets/tls/client.key",
        "REDIS_ENCRYPTION_KEYS_FILE=/run/secrets/backend/encryption_keyring",
        "API_KEY_FILE=/run/secrets/api_key",
        "CACHE_NAMESPACE=ai_cache",
    ] {
        assert!(env.lines().any(|l| l == line), "missing `{line}` in .env");
    }
    assert!(
        !env.contains('$'),
        ".env must survive compose interpolation"
    );
    for secret in [
        c.redis_password.expose_secret(),
        c.api_key.expose_secret(),
        c.redis_encryption_key.expose_text().as_str(),
    ] {
        assert!(!env.contains(secret), ".env holds a secret");
    }
    let acl = std::fs::read_to_string(dir.join(layout::USERS_ACL)).unwrap();
    assert!(!acl.contains(c.redis_password.expose_secret()));
    assert!(acl.contains('#'));

    // The keyring file opens with the generated key.
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!(
        ring.key(1).unwrap().expose_secret(),
        c.redis_encryption_key.expose_secret()
    );
}

#[test]
fn never_overwrites_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = config_for(Environment::Staging);
    write_deployment(&first, dir, &DeploymentOptions::default()).unwrap();
    let before = std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap();
    let err = write_deployment(
        &config_for(Environment::Staging),
        dir,
        &DeploymentOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::DirectoryExists { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap(),
        before,
        "untouched"
    );
    let force = DeploymentOptions {
        mode: WriteMode::Force,
        ..DeploymentOptions::default()
    };
    write_deployment(&config_for(Environment::Staging), dir, &force).unwrap();
    assert_ne!(
        std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap(),
        before
    );
}

#[test]
fn rotation_keeps_tls_and_api_key_and_the_old_encryption_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = config_for(Environment::Production);
    write_deployment(&c, dir, &DeploymentOptions::default()).unwrap();
    let ctx = SealContext::new("ai_cache", "ai_cache:v2:qa:abc");
    let before_ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    let sealed = ValueCodec::new(&before_ring)
        .seal(&ctx, b"sealed before rotation")
        .unwrap();
    let keep = [
        layout::API_KEY,
        layout::CA_CERT,
        layout::SERVER_CERT,
        layout::CLIENT_KEY,
        layout::CA_KEY,
        layout::ENV_FILE,
    ];
    let kept: Vec<Vec<u8>> = keep
        .iter()
        .map(|r| std::fs::read(dir.join(r)).unwrap())
        .collect();
    let old_app = std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap();

    let rotation = rotate_deployment(dir, Environment::Production, "ai_cache").unwrap();
    assert_eq!(rotation.primary_key_id, 2);
    assert_eq!(rotation.decrypt_only_key_ids, vec![1]);
    for (rel, old) in keep.iter().zip(&kept) {
        assert_eq!(&std::fs::read(dir.join(rel)).unwrap(), old, "{rel} changed");
    }
    assert_ne!(
        std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap(),
        old_app
    );
    assert_eq!(mode(&dir.join(layout::ENCRYPTION_KEYRING)), 0o600);

    let after_ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!(
        after_ring.name_secret().expose_secret(),
        before_ring.name_secret().expose_secret()
    );
    let opened = ValueCodec::new(&after_ring)
        .open(&ctx, sealed.as_bytes())
        .unwrap();
    assert_eq!(opened.as_bytes(), b"sealed before rotation");
    let report = validate_dir(dir, None).unwrap();
    assert_eq!(report.security_score, 100, "{:?}", report.issues);

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        rotate_deployment(empty.path(), Environment::Production, "ai_cache"),
        Err(Error::NothingToRotate { .. })
    ));
}

#[test]
fn generated_configurations_score_100_in_their_own_environment() {
    for env in Environment::ALL {
        let tmp = tempfile::tempdir().unwrap();
        write_deployment(&config_for(env), tmp.path(), &DeploymentOptions::default()).unwrap();
        let report = validate_dir(tmp.path(), Some(env)).unwrap();
        let errors_or_warnings: Vec<_> = report
            .issues
            .iter()
            .filter(|i| i.severity != sealcache_config_gen::Severity::Info)
            .collect();
        assert!(
            errors_or_warnings.is_empty(),
            "{env}: {errors_or_warnings:?}"
        );
        assert_eq!(report.security_score, 100, "{env}");
        assert_eq!(report.recommendation, Recommendation::Acceptable);
        // Detected from the directory's own .env when not given.
        let detected = validate_dir(tmp.path(), None).unwrap();
        assert_eq!(detected.environment, env, "{env}");
        assert_eq!(detected.security_score, 100);
    }
}

#[test]
fn env_vars_format_writes_one_secret_file_with_the_seed_names() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config_for(Environment::Production);
    let opts = DeploymentOptions {
        format: OutputFormat::EnvVars,
        ..DeploymentOptions::default()
    };
    write_deployment(&c, tmp.path(), &opts).unwrap();
    let file = tmp.path().join(layout::ENV_SECURE_FILE);
    assert_eq!(mode(&file), 0o600);
    let vars = sealcache_config_gen::read_env_file(&file).unwrap();
    for key in [
        "REDIS_PASSWORD",
        "REDIS_MONITOR_USERNAME",
        "REDIS_MONITOR_PASSWORD",
        "REDIS_ENCRYPTION_KEY",
        "REDIS_TLS_ENABLED",
        "REDIS_URL",
        "API_KEY",
    ] {
        assert!(vars.contains_key(key), "{key}");
    }
    // Nothing reads it (Redis's protected mode is set in redis.conf): not written.
    assert!(!vars.contains_key("REDIS_PROTECTED_MODE"));
    assert_eq!(vars["REDIS_PASSWORD"], c.redis_password.expose_secret());
    assert_eq!(
        vars["REDIS_MONITOR_PASSWORD"],
        c.redis_cache_password.expose_secret()
    );
    assert!(!tmp.path().join(layout::SECRETS_DIR).exists());
    let report = sealcache_config_gen::validate(
        &sealcache_config_gen::ValidationInput::EnvFile(file.clone()),
        None,
    )
    .unwrap();
    assert_eq!(report.security_score, 100, "{:?}", report.issues);
    assert!(matches!(
        write_deployment(&c, tmp.path(), &opts),
        Err(Error::DirectoryExists { .. })
    ));
}
