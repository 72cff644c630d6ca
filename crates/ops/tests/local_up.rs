//! `up::local` fails closed: a state directory replaced by a link is never written through, a
//! server that cannot run fails at once and leaves no Redis behind, `down` never acts on a record
//! reached through a link, and a `.env` loader variable is refused before anything starts.
//! (The successful bring-up runs in `cargo xtask test`'s local stack steps.)

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sealcache_config_gen::layout;
use sealcache_ops::{OpsError, Report, up};

fn deployment() -> (tempfile::TempDir, PathBuf) {
    common::deployment(false)
}

/// The TLS port of the Redis the last start configured in `dir`.
fn redis_port(dir: &Path) -> u16 {
    let conf = std::fs::read_to_string(dir.join("local/redis.conf")).unwrap();
    conf.lines()
        .find_map(|l| l.strip_prefix("tls-port "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_server_that_cannot_run_fails_at_once_and_leaves_no_redis_behind() {
    assert!(
        up::on_path("redis-server"),
        "redis-server is not installed: run `cargo xtask test` (installs it) or apt-get install redis-server"
    );
    let (tmp, dir) = deployment();
    let port = up::free_port().unwrap();
    for binary in [
        PathBuf::from("/bin/true"),
        tmp.path().join("missing-server"),
    ] {
        let started = Instant::now();
        let err = up::local(
            &dir,
            &up::LocalOptions::new(port, &binary),
            &mut Report::new(),
        )
        .expect_err("a server that cannot run");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}: waited {:?} for a server that had exited",
            binary.display(),
            started.elapsed()
        );
        let text = err.to_string();
        assert!(
            text.contains("exited") || text.contains("cannot start"),
            "{}: {text}",
            binary.display()
        );
        // The Redis this start spawned was stopped and no record is left for `down`.
        let redis = redis_port(&dir);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", redis)).is_err(),
            "{}: redis-server still listens on {redis}",
            binary.display()
        );
        assert!(!dir.join("local/pids.json").exists());
        assert!(sealcache_ops::runtime::local_recorded(&dir).is_none());
        // Its logs stay, readable by the owner alone.
        for log in ["local/redis.log", "local/server.log"] {
            let Ok(meta) = std::fs::metadata(dir.join(log)) else {
                continue; // no server log when the binary could not even start
            };
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
            assert_eq!(mode, 0o600, "{log}");
        }
    }
}

#[test]
fn a_directory_another_user_could_change_is_refused_before_anything_starts() {
    use std::os::unix::fs::PermissionsExt as _;
    let (tmp, dir) = deployment();
    let port = up::free_port().unwrap();
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // The directory itself writable by others, then a parent of it (not sticky).
    for (path, bits) in [(dir.clone(), 0o777), (tmp.path().to_path_buf(), 0o777)] {
        let before = std::fs::metadata(&path).unwrap().permissions().mode();
        mode(&path, bits);
        let err = up::local(
            &dir,
            &up::LocalOptions::new(port, "/bin/true"),
            &mut Report::new(),
        )
        .expect_err("a shared directory");
        assert!(matches!(err, OpsError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("writable by other users"), "{err}");
        assert!(!dir.join("local").exists(), "something was started");
        mode(&path, before & 0o7777);
    }
    // The same rule guards every root operation that writes below the directory: `up` on
    // compose (one node or a cluster) and a rotation's host stage refuse it, changing nothing.
    let before = std::fs::metadata(&dir).unwrap().permissions().mode();
    mode(&dir, 0o777);
    let snapshot = |dir: &Path| {
        let mut files: Vec<(PathBuf, Vec<u8>)> = walk(dir)
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    };
    let unchanged = snapshot(&dir);
    let options = up::UpOptions::new("sealcache-refused", port);
    for err in [
        up::compose(&dir, &options, &mut Report::new()).expect_err("compose up"),
        up::compose_cluster(&dir, &options, &mut Report::new()).expect_err("compose cluster up"),
        sealcache_ops::rotate::rotate(
            &dir,
            sealcache_ops::rotate::Stage::Add,
            &sealcache_ops::rotate::RotateOptions::default(),
            true,
            false,
            &mut Report::new(),
        )
        .expect_err("a rotation"),
    ] {
        assert!(matches!(err, OpsError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("writable by other users"), "{err}");
    }
    assert!(
        snapshot(&dir) == unchanged,
        "a refused operation changed a file"
    );
    mode(&dir, before & 0o7777);
    // A sticky parent (as /tmp) is fine: nobody renames what they do not own there.
    mode(tmp.path(), 0o1777);
    assert!(up::refuse_shared_directory(&dir).is_ok());
}

#[test]
fn a_port_something_else_listens_on_is_refused_and_never_asked() {
    let (_tmp, dir) = deployment();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    squatter.set_nonblocking(true).unwrap();
    let err = up::local(
        &dir,
        &up::LocalOptions::new(port, "/bin/true"),
        &mut Report::new(),
    )
    .expect_err("a taken port");
    assert!(matches!(err, OpsError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(squatter.accept().is_err(), "the squatter was asked");
    assert!(!dir.join("local/pids.json").exists());
}

#[test]
fn a_state_directory_replaced_by_a_link_is_never_written_through() {
    let (tmp, dir) = deployment();
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(
        victim.join("pids.json"),
        "{\"redis\":1,\"server\":1,\"port\":1}",
    )
    .unwrap();
    std::fs::write(victim.join("server.log"), "not yours").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("local")).unwrap();
    // `down` reads no record through the link, and removes nothing there.
    let err = sealcache_ops::stack::stop_local(&dir).expect_err("a linked state directory");
    assert!(err.to_string().contains("local"), "{err}");
    assert!(victim.join("pids.json").exists());
    assert!(sealcache_ops::runtime::local_recorded(&dir).is_none());
    // A start refuses it too, and writes nothing into the link's target.
    std::fs::remove_file(victim.join("pids.json")).unwrap();
    let port = up::free_port().unwrap();
    let err = up::local(
        &dir,
        &up::LocalOptions::new(port, "/bin/true"),
        &mut Report::new(),
    )
    .expect_err("a linked state directory");
    assert!(matches!(err, OpsError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("is a link"), "{err}");
    assert_eq!(
        std::fs::read_to_string(victim.join("server.log")).unwrap(),
        "not yours"
    );
    let names: Vec<_> = std::fs::read_dir(&victim).unwrap().collect();
    assert_eq!(names.len(), 1, "files were written into the link's target");
    // Without the link, a start makes a fresh 0700 directory (then fails: /bin/true is no server).
    std::fs::remove_file(dir.join("local")).unwrap();
    let _ = up::local(
        &dir,
        &up::LocalOptions::new(port, "/bin/true"),
        &mut Report::new(),
    );
    let meta = std::fs::symlink_metadata(dir.join("local")).unwrap();
    assert!(meta.is_dir());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o700
    );
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);
}

#[test]
fn a_loader_variable_or_a_newline_in_a_path_is_refused_before_anything_starts() {
    let (_tmp, dir) = deployment();
    let env = dir.join(layout::ENV_FILE);
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, format!("{text}LD_PRELOAD=/tmp/evil.so\n")).unwrap();
    let port = up::free_port().unwrap();
    let err = up::local(
        &dir,
        &up::LocalOptions::new(port, "/bin/true"),
        &mut Report::new(),
    )
    .expect_err("LD_PRELOAD in .env");
    assert!(matches!(err, OpsError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("LD_PRELOAD"), "{err}");
    assert!(!dir.join("local").exists(), "something was started");

    let err = up::quoted(Path::new("/srv/d\nbind 0.0.0.0")).expect_err("a newline");
    assert!(matches!(err, OpsError::Input { .. }), "{err}");
}

/// Every file below `dir`, links and directories not entered.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(walk(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files
}
