//! Helpers shared by the xtask integration tests (each test file includes this module with
//! `mod common;` and uses what it needs).

// Not every test file uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the xtask binary with `args`, the environment detection variables removed from the child
/// process and `env` set on it.
pub(crate) fn xtask(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args);
    for var in [
        "ENVIRONMENT",
        "APP_ENV",
        "NODE_ENV",
        "CI",
        "GITHUB_ACTIONS",
        "REDIS_SECURITY_MODE",
        "DEBUG",
        "ENFORCE_AUTH",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// A command's standard output followed by its standard error.
pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cargo xtask config generate --out dir` for a production deployment, which must succeed.
pub(crate) fn generate_production(dir: &Path) {
    let generate = xtask(
        &["config", "generate", "--out", dir.to_str().unwrap()],
        &[("ENVIRONMENT", "production")],
    );
    assert!(generate.status.success(), "{}", text(&generate));
}

/// Asserts that a command succeeded, showing its standard error otherwise.
pub(crate) fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped `deploy/` directory.
pub(crate) fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The text of the shipped `deploy/<file>`.
pub(crate) fn deploy(file: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(file)).unwrap()
}

/// The compose tool's own validation (`config -q`) of each shipped `deploy/<file>`, with a
/// deployment directory holding only an `.env`. A missing compose tool is a failure, never a
/// silent pass: the test command needs Docker with compose anyway (the stack tests).
pub(crate) fn assert_compose_accepts(files: &[&str]) {
    let tool = if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        vec!["docker-compose"]
    } else if Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        vec!["docker", "compose"]
    } else {
        panic!("no compose tool installed: install docker-compose or the docker compose plugin");
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "ENVIRONMENT=production\n").unwrap();
    for file in files {
        let out = Command::new(tool[0])
            .args(&tool[1..])
            .arg("-f")
            .arg(deploy_dir().join(file))
            .args(["config", "-q"])
            .env("SEALCACHE_DIR", dir.path())
            .env("SEALCACHE_DEPLOY", deploy_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
