//! `cargo xtask config rotate`: the stages on the files (`--no-reload`: no stack runs here), the
//! recorded environment winning over the process's, and no secret in the output.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use sealcache_config_gen::rotation::{USERS, acl_hashes, read_record};
use sealcache_config_gen::{Keyring, layout};

mod common;
use common::{generate_production, text, xtask};

fn secret(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

/// `config rotate --stage <stage> [--force] --dir d --no-reload` with the process saying
/// development.
fn rotate_stage(d: &str, stage: &str, force: bool) -> Output {
    let mut args = vec!["config", "rotate", "--stage", stage];
    if force {
        args.push("--force");
    }
    args.extend(["--dir", d, "--no-reload"]);
    xtask(&args, &[("ENVIRONMENT", "development")])
}

#[test]
fn staged_rotation_through_the_cli_keeps_the_recorded_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("prod");
    let d = dir.to_str().unwrap();
    generate_production(&dir);
    let old_app = secret(&dir, layout::APP_PASSWORD);
    let old_ring = secret(&dir, layout::ENCRYPTION_KEYRING);

    // The process says development; the directory says production, and wins.
    let dev = [("ENVIRONMENT", "development")];
    let add = rotate_stage(d, "add", false);
    assert!(add.status.success(), "{}", text(&add));
    assert!(
        text(&add).contains("192-bit, environment production as recorded"),
        "{}",
        text(&add)
    );
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!((ring.primary_id(), ring.decrypt_only_ids()), (1, vec![2]));
    assert_eq!(secret(&dir, layout::APP_PASSWORD), old_app);
    let pending = secret(&dir, &format!("{}/redis_app_password", layout::PENDING_DIR));
    assert_eq!(pending.len(), 33, "production strength");

    let early = rotate_stage(d, "retire", false);
    assert!(!early.status.success());
    assert!(text(&early).contains("promote first"), "{}", text(&early));

    let promote = rotate_stage(d, "promote", false);
    assert!(promote.status.success(), "{}", text(&promote));
    assert_eq!(secret(&dir, layout::APP_PASSWORD), pending);
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!((ring.primary_id(), ring.decrypt_only_ids()), (2, vec![1]));

    // Within the longest TTL the old key stays unless forced; the old hashes go either way.
    let retire = rotate_stage(d, "retire", false);
    assert!(retire.status.success(), "{}", text(&retire));
    assert!(text(&retire).contains("Key 1 kept"), "{}", text(&retire));
    let acl = acl_hashes(&secret(&dir, layout::USERS_ACL));
    for (user, _) in USERS {
        assert_eq!(acl[user].len(), 1, "{user}");
    }
    let forced = rotate_stage(d, "retire", true);
    assert!(forced.status.success(), "{}", text(&forced));
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!((ring.primary_id(), ring.decrypt_only_ids()), (2, vec![]));
    let record = read_record(&dir).unwrap();
    assert!(
        record.added_at.is_some() && record.promoted_at.is_some() && record.retired_at.is_some()
    );
    assert!(
        !std::fs::read_to_string(dir.join(layout::ROTATION_FILE))
            .unwrap()
            .contains(&pending)
    );

    // Every rotated file is still 0600, and still acceptable to the validator.
    for rel in [
        layout::APP_PASSWORD,
        layout::USERS_ACL,
        layout::ENCRYPTION_KEYRING,
    ] {
        let mode = std::fs::metadata(dir.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{rel}");
    }
    let validate = xtask(&["config", "validate", "--dir", d], &[]);
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));

    // `generate --rotate` is stage add, and refuses an environment the directory does not record.
    let mismatch = xtask(
        &[
            "config",
            "generate",
            "--out",
            d,
            "--rotate",
            "--environment",
            "development",
        ],
        &[],
    );
    assert!(!mismatch.status.success());
    assert!(
        text(&mismatch).contains("records environment production"),
        "{}",
        text(&mismatch)
    );
    let legacy = xtask(&["config", "generate", "--out", d, "--rotate"], &dev);
    assert!(legacy.status.success(), "{}", text(&legacy));
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!(
        (ring.primary_id(), ring.decrypt_only_ids()),
        (2, vec![3]),
        "a decrypt-only key, not a new primary"
    );

    for out in [&add, &promote, &retire, &forced, &legacy] {
        let shown = text(out);
        for s in [&old_app, &pending, &old_ring] {
            assert!(
                !shown.contains(s.trim()),
                "a secret in the output:\n{shown}"
            );
        }
    }
}

#[test]
fn a_cluster_directory_rotates_cache_replication_and_masterauth() {
    use sealcache_config_gen::cluster_dir::{CLUSTER_CONF, REPLICATION_PASSWORD};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let generate = xtask(
        &["config", "generate", "--cluster", "--out", d],
        &[("ENVIRONMENT", "production")],
    );
    assert!(generate.status.success(), "{}", text(&generate));
    let old = secret(&dir, REPLICATION_PASSWORD);
    let add = rotate_stage(d, "add", false);
    assert!(add.status.success(), "{}", text(&add));
    let promote = rotate_stage(d, "promote", false);
    assert!(promote.status.success(), "{}", text(&promote));
    assert!(text(&promote).contains("cache_replication's password switched"));
    let new = secret(&dir, REPLICATION_PASSWORD);
    assert_ne!(new, old);
    let conf = secret(&dir, CLUSTER_CONF);
    assert!(conf.contains(&format!("masterauth \"{}\"", new.trim())));
    assert!(!conf.contains(old.trim()));
    let mode = std::fs::metadata(dir.join(CLUSTER_CONF))
        .unwrap()
        .permissions();
    assert_eq!(mode.mode() & 0o777, 0o600);
    let retire = rotate_stage(d, "retire", true);
    assert!(retire.status.success(), "{}", text(&retire));
    assert_eq!(
        acl_hashes(&secret(&dir, layout::USERS_ACL))["cache_replication"].len(),
        1
    );
    for out in [&add, &promote, &retire] {
        let shown = text(out);
        for s in [&old, &new] {
            assert!(
                !shown.contains(s.trim()),
                "a secret in the output:\n{shown}"
            );
        }
    }
}
