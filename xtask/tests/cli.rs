//! The xtask commands scripts rely on: names, flags, exit codes and JSON fields, and no secret in
//! any captured stdout or stderr. Variables are set on the child process only.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

use sealcache_config_gen::layout;

mod common;
use common::{generate_production, text, xtask};

/// Every secret value in a generated directory: passwords, API key, key texts, private key bodies.
fn secrets_of(dir: &Path) -> Vec<String> {
    for rel in layout::SECRET_FILES {
        assert!(dir.join(rel).is_file(), "{rel} was not generated");
    }
    // The verification's own secret search, so that both look for the same values.
    let out = sealcache_ops::verify::secret_values(dir);
    assert!(out.len() >= 12);
    out
}

fn assert_no_secret(outputs: &[&Output], secrets: &[String]) {
    for out in outputs {
        let shown = text(out);
        for s in secrets {
            assert!(
                !shown.contains(s.as_str()),
                "a secret appears in command output:\n{shown}"
            );
        }
    }
}

#[test]
fn detect_env_json_fields_and_contexts() {
    let out = xtask(
        &["detect-env", "--json"],
        &[("ENVIRONMENT", "prod-us-east")],
    );
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["environment"], "production");
    assert_eq!(json["confidence"], 0.8);
    assert_eq!(json["detected_by"], "ENVIRONMENT");
    assert!(json["reasoning"].as_str().unwrap().contains("pattern"));
    assert_eq!(json["signals"][0]["value"], "prod-us-east");

    let out = xtask(
        &["detect-env", "--context", "security_enforcement", "--json"],
        &[("ENFORCE_AUTH", "true")],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["environment"], "production");
    assert_eq!(json["feature_context"], "security_enforcement");

    let out = xtask(&["detect-env", "--context", "nonsense"], &[]);
    assert!(!out.status.success());
    let human = xtask(&["detect-env"], &[("ENVIRONMENT", "staging")]);
    assert!(text(&human).contains("✅ Environment: staging"));
}

#[test]
fn generate_rotate_validate_with_exit_codes_and_no_secret_in_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("generated");
    let d = dir.to_str().unwrap();

    let generate = xtask(
        &["config", "generate", "--out", d, "--san", "redis.test"],
        &[("ENVIRONMENT", "production")],
    );
    assert!(generate.status.success(), "{}", text(&generate));
    let shown = text(&generate);
    for line in [
        "✅ Detected environment: production",
        "✅ Generated 4 Redis ACL passwords (192-bit",
        "✅ Encryption key created",
        "✅ Validated: acceptable (score 100/100)",
    ] {
        assert!(shown.contains(line), "missing `{line}` in\n{shown}");
    }
    let secrets = secrets_of(&dir);

    let again = xtask(
        &["config", "generate", "--out", d],
        &[("ENVIRONMENT", "production")],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"));

    let validate = xtask(&["config", "validate", "--dir", d, "--json"], &[]);
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    let json: serde_json::Value = serde_json::from_slice(&validate.stdout).unwrap();
    for field in [
        "environment",
        "confidence",
        "security_score",
        "issues",
        "recommendation",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert_eq!(json["security_score"], 100);
    assert_eq!(json["recommendation"], "acceptable");

    let rotate = xtask(
        &["config", "generate", "--out", d, "--rotate"],
        &[("ENVIRONMENT", "production")],
    );
    assert!(rotate.status.success(), "{}", text(&rotate));
    let rotated_secrets = secrets_of(&dir);

    // Break it: a world-readable secret makes it `regenerate` (exit 1).
    std::fs::set_permissions(
        dir.join(layout::API_KEY),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let bad = xtask(&["config", "validate", "--dir", d], &[]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("SECRET_FILE_PERMISSIONS"));

    // Unusable input: exit 2 with a one-line reason.
    let missing = xtask(
        &[
            "config",
            "validate",
            "--env-file",
            tmp.path().join("nope.env").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr)
            .trim()
            .lines()
            .count(),
        1
    );

    let flat_dir = tmp.path().join("flat");
    let flat = xtask(
        &[
            "config",
            "generate",
            "--out",
            flat_dir.to_str().unwrap(),
            "--format",
            "env-vars",
            "--environment",
            "staging",
        ],
        &[],
    );
    assert!(flat.status.success(), "{}", text(&flat));
    let env_secure = std::fs::read_to_string(flat_dir.join(layout::ENV_SECURE_FILE)).unwrap();
    let flat_secrets: Vec<String> = env_secure
        .lines()
        .filter(|l| {
            l.starts_with("REDIS_PASSWORD=")
                || l.starts_with("REDIS_MONITOR_PASSWORD=")
                || l.starts_with("REDIS_ENCRYPTION_KEY=")
                || l.starts_with("API_KEY=")
        })
        .map(|l| l.split_once('=').unwrap().1.to_owned())
        .collect();
    assert_eq!(flat_secrets.len(), 4);
    let flat_validate = xtask(
        &[
            "config",
            "validate",
            "--env-file",
            flat_dir.join(layout::ENV_SECURE_FILE).to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        flat_validate.status.code(),
        Some(0),
        "{}",
        text(&flat_validate)
    );

    let all: Vec<String> = secrets
        .into_iter()
        .chain(rotated_secrets)
        .chain(flat_secrets)
        .collect();
    assert_no_secret(
        &[
            &generate,
            &again,
            &validate,
            &rotate,
            &bad,
            &missing,
            &flat,
            &flat_validate,
        ],
        &all,
    );
}

#[test]
fn secure_up_refuses_a_development_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let out = xtask(
        &[
            "secure-up",
            "--environment",
            "development",
            "--dir",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("dev-up"), "{}", text(&out));
    assert!(
        !dir.exists(),
        "nothing is generated for a refused deployment"
    );
    // dev-up runs containers only: `--local` is refused before anything starts.
    let out = xtask(&["dev-up", "--local", "--dir", dir.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("secure-up --local"), "{}", text(&out));
    assert!(!dir.exists());
}

#[test]
fn config_dictionary_trains_and_adds_the_sealing_dictionary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("generated");
    let d = dir.to_str().unwrap();
    generate_production(&dir);
    let corpus = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/corpus.jsonl"),
    )
    .unwrap();
    let samples = tmp.path().join("samples.jsonl");
    std::fs::write(&samples, &corpus).unwrap();
    let out = xtask(
        &[
            "config",
            "dictionary",
            "--samples",
            samples.to_str().unwrap(),
            "--dir",
            d,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("✅ Trained dictionary"),
        "{}",
        text(&out)
    );
    let keyring = std::fs::read_to_string(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert!(
        keyring.contains("\nseal-dictionary "),
        "no sealing dictionary written"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join(layout::ENCRYPTION_KEYRING))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // The keyring still validates, and too few samples are refused.
    let validate = xtask(&["config", "validate", "--dir", d], &[]);
    assert!(validate.status.success(), "{}", text(&validate));
    std::fs::write(&samples, "{\"a\": 1}\n").unwrap();
    let few = xtask(
        &[
            "config",
            "dictionary",
            "--samples",
            samples.to_str().unwrap(),
            "--dir",
            d,
        ],
        &[],
    );
    assert!(!few.status.success());
}
