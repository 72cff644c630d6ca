//! `up::hand_over_secrets`: the containers' user gets the files and leaf directories of
//! `secrets/`, never `secrets/` or `secrets/tls/` themselves, and never anything a link there
//! points at. Changing owners needs root (CI runs as root); elsewhere the test says so and stops.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use sealcache_config_gen::layout;

fn deployment() -> (tempfile::TempDir, PathBuf) {
    common::deployment(false)
}

fn owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

#[test]
fn the_containers_user_gets_files_and_leaf_directories_and_no_link_target() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: owners cannot be changed here; CI runs this as root");
        return;
    }
    let (tmp, dir) = deployment();
    let outside = tmp.path().join("root-only");
    std::fs::write(&outside, "root's").unwrap();
    std::os::unix::fs::symlink(
        &outside,
        dir.join(layout::BACKEND_SECRETS_DIR).join("planted"),
    )
    .unwrap();
    let (uid, gid) = (4242, 4243);
    for _ in 0..2 {
        // Twice: a second hand-over (every rotation makes one) changes nothing more.
        sealcache_ops::up::hand_over_secrets(&dir, uid, gid).unwrap();
        for root_held in [layout::SECRETS_DIR, layout::TLS_DIR] {
            assert_eq!(owner(&dir.join(root_held)), (0, gid, 0o750), "{root_held}");
        }
        for leaf in [
            layout::BACKEND_SECRETS_DIR,
            layout::REDIS_SECRETS_DIR,
            layout::PENDING_DIR,
        ] {
            let (u, g, _) = owner(&dir.join(leaf));
            assert_eq!((u, g), (uid, gid), "{leaf}");
        }
        for file in [layout::API_KEY, layout::APP_PASSWORD, layout::CLIENT_KEY] {
            let (u, g, _) = owner(&dir.join(file));
            assert_eq!((u, g), (uid, gid), "{file}");
        }
        let (u, _, _) = owner(&dir.join(layout::BACKEND_SECRETS_DIR).join("planted"));
        assert_eq!(u, uid, "the link itself is handed over");
        assert_eq!(owner(&outside).0, 0, "the link's target changed hands");
        assert_eq!(
            owner(&dir.join(layout::CA_DIR)).0,
            0,
            "ca/ is never handed over"
        );
        assert_eq!(owner(&dir).0, 0, "the directory stays root's");
    }
}
