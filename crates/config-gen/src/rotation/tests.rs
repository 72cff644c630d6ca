//! The stages on real deployment directories, every interruption inside a stage's file writes,
//! and the record of stages in progress.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sealcache_codec::Keyring;
use sealcache_env_detect::Environment;

use super::files::{MOVED, acl_add_hash, acl_keep_only, pending_path, read_password};
use super::*;
use crate::layout::container_path;
fn deployment(env: &str) -> tempfile::TempDir {
    let config = crate::test_support::config_for(env);
    let tmp = tempfile::tempdir().unwrap();
    crate::write_deployment(&config, tmp.path(), &crate::DeploymentOptions::default()).unwrap();
    tmp
}

/// The validator rates the directory acceptable.
fn assert_acceptable(dir: &Path) {
    let report = crate::validate_dir(dir, None).unwrap();
    assert_eq!(
        report.recommendation,
        crate::Recommendation::Acceptable,
        "{report:?}"
    );
}

fn at(secs: u64) -> RotateOptions {
    RotateOptions {
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs),
        ..RotateOptions::default()
    }
}

/// `s` run and confirmed (no process runs here).
fn stage(dir: &Path, s: Stage, opts: &RotateOptions) -> StageOutcome {
    let outcome = rotate_stage(dir, s, opts).unwrap();
    confirm_stage(dir, s, opts.now).unwrap();
    outcome
}

fn hashes(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    acl_hashes(&std::fs::read_to_string(dir.join(layout::USERS_ACL)).unwrap())
}

fn hash_of(dir: &Path, rel: &str) -> String {
    let p = read_password(&dir.join(rel)).unwrap();
    acl::password_hash(&p).trim_start_matches('#').to_owned()
}

#[test]
fn the_three_stages_keep_every_client_and_value_working() {
    let tmp = deployment("production");
    let dir = tmp.path();
    let old_app = std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap();

    let added = stage(dir, Stage::Add, &at(0));
    assert_eq!(added.environment, Environment::Production);
    assert_eq!((added.primary_key_id, added.added_key_id), (1, Some(2)));
    assert_eq!(added.decrypt_only_key_ids, vec![2]);
    assert!(added.acl_changed && !added.passwords_switched);
    // Old and new passwords are both accepted; clients still use the old one.
    assert_eq!(
        std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap(),
        old_app
    );
    for (user, live) in USERS {
        let h = &hashes(dir)[user];
        assert_eq!(h.len(), 2, "{user}");
        assert!(h.contains(&hash_of(dir, live)));
        assert!(h.contains(&hash_of(dir, &pending_path(live))));
        // Production strength, from the recorded environment.
        assert_eq!(
            read_password(&dir.join(pending_path(live))).unwrap().len(),
            password::length_for_bits(password::required_bits(Environment::Production))
        );
    }
    // Again: nothing new.
    let again = rotate_stage(dir, Stage::Add, &at(1)).unwrap();
    assert!(again.repeated);
    assert_eq!(
        Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING))
            .unwrap()
            .decrypt_only_ids(),
        vec![2]
    );
    assert!(
        rotate_stage(dir, Stage::Retire, &at(2)).is_err(),
        "retire before promote"
    );
    confirm_stage(dir, Stage::Add, at(1).now).unwrap();

    let promoted = stage(dir, Stage::Promote, &at(10));
    assert_eq!(promoted.primary_key_id, 2);
    assert_eq!(promoted.decrypt_only_key_ids, vec![1]);
    assert!(promoted.passwords_switched);
    assert_ne!(
        std::fs::read(dir.join(layout::APP_PASSWORD)).unwrap(),
        old_app
    );
    assert!(!dir.join(pending_path(layout::APP_PASSWORD)).exists());
    for (user, live) in USERS {
        assert!(hashes(dir)[user].contains(&hash_of(dir, live)), "{user}");
    }
    assert_eq!(
        read_record(dir).unwrap().demoted_at.get(&1),
        Some(&1_000_010)
    );

    // Too young: the old key stays; the old hashes go.
    let retired = stage(dir, Stage::Retire, &at(20));
    assert!(retired.retired_key_ids.is_empty());
    assert_eq!(retired.kept_key_ids, vec![(1, Some(7200 - 10))]);
    for (user, live) in USERS {
        assert_eq!(
            hashes(dir)[user],
            BTreeSet::from([hash_of(dir, live)]),
            "{user}"
        );
    }
    // After the longest TTL it goes too.
    let later = stage(dir, Stage::Retire, &at(10 + 7200));
    assert_eq!(later.retired_key_ids, vec![1]);
    assert!(!later.forced);
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!((ring.primary_id(), ring.decrypt_only_ids()), (2, vec![]));
    // The validator still rates the directory acceptable.
    assert_acceptable(dir);
}

#[test]
fn a_cluster_rotates_the_replication_password_and_masterauth_too() {
    let config = crate::test_support::config_for("production");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::cluster_dir::write_cluster_deployment(
        &config,
        dir,
        &crate::DeploymentOptions::default(),
        &crate::cluster_dir::ClusterOptions::default(),
    )
    .unwrap();
    let repl = crate::cluster_dir::REPLICATION_PASSWORD;
    let conf = || std::fs::read_to_string(dir.join(crate::cluster_dir::CLUSTER_CONF)).unwrap();
    let old = read_password(&dir.join(repl)).unwrap();
    assert!(conf().contains(old.expose_secret()));
    let added = stage(dir, Stage::Add, &at(0));
    assert!(!added.masterauth_switched);
    let h = &hashes(dir)[acl::REPLICATION_USER];
    assert_eq!(h.len(), 2);
    assert!(h.contains(&hash_of(dir, &pending_path(repl))));
    let promoted = stage(dir, Stage::Promote, &at(1));
    assert!(promoted.masterauth_switched);
    let new = read_password(&dir.join(repl)).unwrap();
    assert_ne!(new.expose_secret(), old.expose_secret());
    let text = conf();
    assert!(text.contains(&format!("masterauth \"{}\"", new.expose_secret())));
    assert!(!text.contains(old.expose_secret()));
    assert!(text.contains("masteruser cache_replication"));
    let mode = std::fs::metadata(dir.join(crate::cluster_dir::CLUSTER_CONF))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    stage(dir, Stage::Retire, &at(2));
    assert_eq!(
        hashes(dir)[acl::REPLICATION_USER],
        BTreeSet::from([hash_of(dir, repl)])
    );
    assert_acceptable(dir);
}

#[test]
fn force_retires_young_keys_and_promote_needs_add() {
    let tmp = deployment("production");
    let dir = tmp.path();
    assert!(rotate_stage(dir, Stage::Promote, &at(0)).is_err());
    stage(dir, Stage::Add, &at(0));
    stage(dir, Stage::Promote, &at(1));
    let forced = rotate_stage(
        dir,
        Stage::Retire,
        &RotateOptions {
            force: true,
            ..at(2)
        },
    )
    .unwrap();
    assert_eq!(forced.retired_key_ids, vec![1]);
    assert!(forced.forced);
}

#[test]
fn the_recorded_environment_sets_the_strength_not_the_process() {
    let tmp = deployment("testing");
    let dir = tmp.path();
    let added = rotate_stage(dir, Stage::Add, &at(0)).unwrap();
    assert_eq!(added.environment, Environment::Testing);
    let len = read_password(&dir.join(pending_path(layout::APP_PASSWORD)))
        .unwrap()
        .len();
    assert_eq!(
        len,
        password::length_for_bits(password::required_bits(Environment::Testing))
    );
}

#[cfg(unix)]
#[test]
fn replaced_files_keep_their_mode_and_are_new_inodes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = std::fs::metadata(&path).unwrap().ino();
    replace_file(&path, b"new").unwrap();
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(after.permissions().mode() & 0o777, 0o640);
    assert_ne!(after.ino(), before);
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    replace_file(&tmp.path().join("g"), b"x").unwrap();
    assert_eq!(
        std::fs::metadata(tmp.path().join("g"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn an_old_layout_is_moved_and_its_env_rewritten() {
    let tmp = deployment("production");
    let dir = tmp.path();
    // Back to the old layout.
    for (old, new) in MOVED {
        std::fs::rename(dir.join(new), dir.join(old)).unwrap();
    }
    let env = std::fs::read_to_string(dir.join(layout::ENV_FILE)).unwrap();
    let mut old_env = env.clone();
    for (old, new) in MOVED {
        old_env = old_env.replace(&container_path(new), &container_path(old));
    }
    std::fs::write(dir.join(layout::ENV_FILE), &old_env).unwrap();
    let moved = upgrade_layout(dir).unwrap();
    assert_eq!(moved.len(), 5);
    assert_eq!(
        std::fs::read_to_string(dir.join(layout::ENV_FILE)).unwrap(),
        env
    );
    assert!(upgrade_layout(dir).unwrap().is_empty());
    assert_acceptable(dir);
}

#[test]
fn acl_edits_touch_only_hashes() {
    let text = "user default off\nuser cache_app on #aa resetchannels ~ns:* -@all +get\n";
    let added = acl_add_hash(text, "cache_app", "#bb").unwrap();
    assert_eq!(
        added,
        "user default off\nuser cache_app on #aa #bb resetchannels ~ns:* -@all +get\n"
    );
    assert_eq!(acl_add_hash(&added, "cache_app", "#bb").unwrap(), added);
    assert_eq!(
        acl_keep_only(&added, "cache_app", "#bb").unwrap(),
        text.replace("#aa", "#bb")
    );
    assert!(acl_keep_only(text, "cache_app", "#cc").is_err());
    assert!(acl_add_hash(text, "nobody", "#cc").is_err());
}

// ---------------------------------------------------------------------------------------------
// Interruptions: a stage stopped anywhere inside its file writes (a crash, a full disk, Ctrl-C)

/// Every file of the directory (relative path → contents).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn ring(dir: &Path) -> (u32, Vec<u32>) {
    let ring = Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING)).unwrap();
    (ring.primary_id(), ring.decrypt_only_ids())
}

/// The stages before `s`, run and confirmed.
fn prepare(dir: &Path, s: Stage) {
    match s {
        Stage::Add => {}
        Stage::Promote => {
            stage(dir, Stage::Add, &at(0));
        }
        Stage::Retire => {
            stage(dir, Stage::Add, &at(0));
            stage(dir, Stage::Promote, &at(1));
        }
    }
}

/// The files after `s` completed, as an uninterrupted run leaves them (from `prepare(s)`, key 1
/// the primary at the start; retire forced).
fn assert_completed(dir: &Path, s: Stage, context: &str) {
    let record = read_record(dir).unwrap();
    assert_eq!(record.in_progress, None, "{context}");
    match s {
        Stage::Add => {
            assert_eq!(ring(dir), (1, vec![2]), "one new key, no second: {context}");
            assert_eq!(record.stage, RecordedStage::Added, "{context}");
            assert_eq!(record.staged_key_id, Some(2), "{context}");
            for (user, live) in USERS {
                let h = &hashes(dir)[user];
                assert_eq!(h.len(), 2, "old and new, no third: {user}, {context}");
                assert!(h.contains(&hash_of(dir, live)), "{user}, {context}");
                assert!(h.contains(&hash_of(dir, &pending_path(live))), "{context}");
            }
        }
        Stage::Promote => {
            assert_eq!(ring(dir), (2, vec![1]), "{context}");
            assert_eq!(record.stage, RecordedStage::Promoted, "{context}");
            assert!(record.demoted_at.contains_key(&1), "{context}");
            for (user, live) in USERS {
                assert_eq!(hashes(dir)[user].len(), 2, "{user}, {context}");
                assert!(hashes(dir)[user].contains(&hash_of(dir, live)), "{context}");
                assert!(!dir.join(pending_path(live)).exists(), "{context}");
            }
        }
        Stage::Retire => {
            assert_eq!(ring(dir), (2, vec![]), "{context}");
            assert_eq!(record.stage, RecordedStage::Idle, "{context}");
            for (user, live) in USERS {
                assert_eq!(
                    hashes(dir)[user],
                    BTreeSet::from([hash_of(dir, live)]),
                    "{user}, {context}"
                );
            }
        }
    }
}

/// Each stage stopped before each of its file changes (the intent, every password, users.acl,
/// the keyring, cluster files, the record): nothing changes before the intent; after it the
/// record says the stage is in progress, every other stage is refused with the command that
/// completes it, every client's current password and the running primary still work, and running
/// the stage again completes it exactly as an uninterrupted run would.
#[test]
fn every_interruption_of_every_stage_is_completed_by_running_it_again() {
    let forced = RotateOptions {
        force: true,
        ..at(100)
    };
    for s in [Stage::Add, Stage::Promote, Stage::Retire] {
        let mut points = 0;
        for n in 0.. {
            let tmp = deployment("production");
            let dir = tmp.path();
            prepare(dir, s);
            let before = snapshot(dir);
            let (primary, _) = ring(dir);
            let mut crash = Mutations {
                crash_before: Some(n),
                done: 0,
            };
            if run(dir, s, &forced, &mut crash).is_ok() {
                assert!(n >= 3, "{s:?} changes more than {n} files");
                break;
            }
            points += 1;
            let context = format!("{s:?} stopped before change {n}");
            let record = read_record(dir).unwrap();
            if n == 0 {
                assert_eq!(
                    snapshot(dir),
                    before,
                    "{context}: nothing changes before the intent"
                );
                assert_eq!(record.in_progress, None, "{context}");
            } else {
                let plan = record.in_progress.clone().unwrap();
                assert_eq!((plan.stage, plan.files_written), (s, false), "{context}");
                let command = stage_command(dir, s);
                for other in [Stage::Add, Stage::Promote, Stage::Retire] {
                    if other == s {
                        continue;
                    }
                    let refused = rotate_stage(dir, other, &forced).unwrap_err().to_string();
                    assert!(refused.contains(&command), "{context}: {refused}");
                }
                assert!(confirm_stage(dir, s, forced.now).is_err(), "{context}");
                assert_eq!(
                    read_record(dir).unwrap(),
                    record,
                    "{context}: refusals change nothing"
                );
            }
            // The running processes' state still works: their passwords and their primary.
            for (user, live) in USERS {
                assert!(
                    hashes(dir)[user].contains(&hash_of(dir, live)),
                    "{user}, {context}"
                );
            }
            assert!(
                Keyring::from_file(dir.join(layout::ENCRYPTION_KEYRING))
                    .unwrap()
                    .key(primary)
                    .is_some(),
                "{context}"
            );
            // A password staged before the stop is the one that stays staged.
            let staged: Vec<(String, Vec<u8>)> = USERS
                .iter()
                .map(|(_, live)| pending_path(live))
                .filter(|p| dir.join(p).is_file())
                .map(|p| (p.clone(), std::fs::read(dir.join(&p)).unwrap()))
                .collect();
            let done = rotate_stage(dir, s, &RotateOptions::default()).unwrap();
            assert_eq!(done.stage, s);
            if s == Stage::Add {
                for (p, bytes) in staged {
                    assert_eq!(
                        std::fs::read(dir.join(&p)).unwrap(),
                        bytes,
                        "{context}: {p}"
                    );
                }
            }
            if s == Stage::Retire {
                // The keys the intent planned (forced), though this run was not forced.
                assert_eq!(done.retired_key_ids, vec![1], "{context}");
            }
            confirm_stage(dir, s, forced.now).unwrap();
            assert_completed(dir, s, &context);
            // Then the next stage runs.
            let next = match s {
                Stage::Add => Stage::Promote,
                Stage::Promote => Stage::Retire,
                Stage::Retire => Stage::Add,
            };
            stage(dir, next, &forced);
        }
        assert!(points >= 4, "{s:?}: only {points} interruption points");
    }
}

/// Makes the next atomic replacement of `rel` fail (its temporary file's name is taken by a
/// directory) while the file itself stays readable: a stage fails at exactly that write, as it
/// would on a full disk. Returns the blocker to remove.
fn block_write(dir: &Path, rel: &str) -> std::path::PathBuf {
    let path = dir.join(rel);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let blocker = path.with_file_name(format!(".{name}.sealcache-tmp"));
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), b"x").unwrap();
    blocker
}

/// `add` that failed writing the keyring (its passwords staged, users.acl accepting them) and is
/// run again keeps the staged passwords: two hashes per user, not three, and one new key.
#[test]
fn an_add_interrupted_at_its_keyring_reuses_its_staged_passwords() {
    let tmp = deployment("production");
    let dir = tmp.path();
    let blocker = block_write(dir, layout::ENCRYPTION_KEYRING);
    assert!(rotate_stage(dir, Stage::Add, &at(0)).is_err());
    std::fs::remove_dir_all(blocker).unwrap();
    let staged = std::fs::read(dir.join(pending_path(layout::APP_PASSWORD))).unwrap();
    let refused = rotate_stage(dir, Stage::Promote, &at(1))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("--stage add"), "{refused}");
    stage(dir, Stage::Add, &at(2));
    assert_eq!(
        std::fs::read(dir.join(pending_path(layout::APP_PASSWORD))).unwrap(),
        staged
    );
    assert_completed(dir, Stage::Add, "add run again");
}

/// `promote` that failed after switching the keyring, run again, still records when the old
/// primary was demoted (else it could never be retired without --force).
#[test]
fn a_promote_interrupted_after_its_keyring_keeps_the_demotion_time() {
    let tmp = deployment("production");
    let dir = tmp.path();
    stage(dir, Stage::Add, &at(0));
    let blocker = block_write(dir, layout::APP_PASSWORD);
    assert!(rotate_stage(dir, Stage::Promote, &at(10)).is_err());
    std::fs::remove_dir_all(blocker).unwrap();
    assert!(rotate_stage(dir, Stage::Retire, &at(11)).is_err());
    stage(dir, Stage::Promote, &at(20));
    assert_completed(dir, Stage::Promote, "promote run again");
    let retired = stage(dir, Stage::Retire, &at(20 + 7200));
    assert_eq!(retired.retired_key_ids, vec![1]);
}

/// The fault of issue 22: `promote` wrote its files but the running processes were never told.
/// Until it is confirmed, `retire` is refused with the command that completes `promote`, and
/// changes nothing.
#[test]
fn retire_is_refused_while_promote_is_not_confirmed() {
    let tmp = deployment("production");
    let dir = tmp.path();
    stage(dir, Stage::Add, &at(0));
    rotate_stage(dir, Stage::Promote, &at(10)).unwrap();
    let before = snapshot(dir);
    let refused = rotate_stage(
        dir,
        Stage::Retire,
        &RotateOptions {
            force: true,
            ..at(11)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains(&stage_command(dir, Stage::Promote)),
        "{refused}"
    );
    assert_eq!(snapshot(dir), before);
    let record = read_record(dir).unwrap();
    assert_eq!(record.completing_stage(), Stage::Promote);
    assert!(record.in_progress.as_ref().is_some_and(|p| p.files_written));
    // Completing it reloads only, then confirming it moves the demotion to the confirmation.
    let again = rotate_stage(dir, Stage::Promote, &at(12)).unwrap();
    assert!(again.repeated && again.files.is_empty());
    let confirmed = confirm_stage(dir, Stage::Promote, at(30).now).unwrap();
    assert_eq!(confirmed.demoted_at.get(&1), Some(&1_000_030));
    assert!(
        confirm_stage(dir, Stage::Retire, at(31).now).is_ok(),
        "nothing in progress"
    );
    stage(
        dir,
        Stage::Retire,
        &RotateOptions {
            force: true,
            ..at(40)
        },
    );
}

#[test]
fn the_password_generation_is_the_start_of_the_acl_hash() {
    let tmp = deployment("production");
    let dir = tmp.path();
    let generation = password_file_generation(dir, layout::APP_PASSWORD).unwrap();
    assert_eq!(generation.len(), 12);
    assert!(hash_of(dir, layout::APP_PASSWORD).starts_with(&generation));
}

/// What the backend container may leave in a leaf directory of `secrets/` is never followed,
/// waited on or read whole: a link, a FIFO and a file over the limit are refused; a regular
/// file is read.
#[test]
fn secret_reads_refuse_links_fifos_and_huge_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("regular"), "secret").unwrap();
    assert_eq!(
        &*files::read_regular_text(&dir.join("regular")).unwrap(),
        "secret"
    );
    std::fs::write(dir.join("outside"), "root's").unwrap();
    std::os::unix::fs::symlink(dir.join("outside"), dir.join("link")).unwrap();
    assert!(files::read_regular(&dir.join("link")).is_err());
    let fifo = dir.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Returns at once (no writer would ever come).
    assert!(files::read_regular(&fifo).is_err());
    let huge = std::fs::File::create(dir.join("huge")).unwrap();
    huge.set_len(17 << 20).unwrap();
    assert!(files::read_regular(&dir.join("huge")).is_err());
    // A replaced link is replaced by a file, its target untouched and not adopted.
    replace_file(&dir.join("link"), b"new").unwrap();
    assert_eq!(std::fs::read(dir.join("outside")).unwrap(), b"root's");
    assert!(
        std::fs::symlink_metadata(dir.join("link"))
            .unwrap()
            .is_file()
    );
}
