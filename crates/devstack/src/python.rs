//! The Python package (`crates/python`) in `cargo xtask test`: the wheel built once with
//! maturin (the debug profile, so it shares the workspace tests' build), installed into a venv
//! under `target/`, then pytest against a plain development Redis and the hardened local stack
//! (TLS + mTLS + ACL `redis-server` and the real server; schemathesis holds the server to its
//! OpenAPI document), and `mypy --strict` / `stubtest` on the package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use sealcache_config_gen::layout;

use crate::progress::{step, target_dir, workspace_root};

/// What the test venv holds besides the wheel (all from PyPI).
const TEST_PACKAGES: &[&str] = &[
    "maturin>=1.8,<2",
    "pytest",
    "redis",
    "httpx",
    "mypy",
    "fastapi",
    "uvicorn",
    "langchain-core>=0.3",
    "cryptography",
    // The contract test of `GET /openapi.json` (tests/test_webapi_contract.py).
    "schemathesis>=4,<5",
];

/// The venv (made once; reused while its interpreter works).
fn venv() -> anyhow::Result<PathBuf> {
    let venv = target_dir().join("py-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".sealcache-packages");
    let wanted = TEST_PACKAGES.join("\n");
    let ready =
        python.is_file() && std::fs::read_to_string(&marker).is_ok_and(|have| have == wanted);
    if !ready {
        step(
            "python3 -m venv target/py-venv",
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
        )?;
        step(
            "pip install the Python test tools (PyPI)",
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(TEST_PACKAGES),
        )?;
        std::fs::write(&marker, wanted)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(venv)
}

/// Builds the wheel once (`release` for benchmarks; the debug profile shares the workspace
/// tests' build) and installs it into the venv; returns the venv.
pub fn install_wheel(release: bool) -> anyhow::Result<PathBuf> {
    let venv = venv()?;
    let wheels = target_dir().join("wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    let mut maturin = Command::new(venv.join("bin/maturin"));
    maturin
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-m", "crates/python/Cargo.toml", "-o"])
        .arg(&wheels)
        .arg("-i")
        .arg(venv.join("bin/python"));
    if release {
        maturin.arg("--release");
    }
    step("maturin build (the sealcache wheel)", &mut maturin)?;
    let wheel = std::fs::read_dir(&wheels)
        .with_context(|| format!("cannot read {}", wheels.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("maturin built no wheel")?;
    step(
        "pip install the sealcache wheel",
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&wheel),
    )?;
    Ok(venv)
}

/// The description of the local stack `dir` for the tests (`PYTEST_SEALCACHE_STACK`): the server's
/// variables with host paths (the secrets stay in their files; the JSON file is 0600 and holds
/// only the API and admin passwords the tests use), the API's URL and key.
fn describe_stack(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let pids = crate::local::running(dir).context("the local stack is not running")?;
    let mut env = BTreeMap::new();
    for (name, value) in sealcache_config_gen::read_env_file(&dir.join(layout::ENV_FILE))? {
        let value = crate::local::host_value(dir, &name, value)?;
        env.insert(name, value);
    }
    env.insert(
        "REDIS_URL".to_owned(),
        format!("rediss://localhost:{}/0", pids.redis_port),
    );
    let read = |rel: &str| -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(dir.join(rel))
            .with_context(|| format!("cannot read {rel}"))?
            .trim()
            .to_owned())
    };
    let description = serde_json::json!({
        "env": env,
        "api": format!("http://127.0.0.1:{}", pids.port),
        "api_key": read(layout::API_KEY)?,
        "admin_password": read(layout::ADMIN_PASSWORD)?,
        "redis_port": pids.redis_port,
    });
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        file.write_all(&serde_json::to_vec_pretty(&description)?)?;
    }
    Ok(())
}

/// A freshly generated production deployment directory (TLS, ACL, keyring, API key).
fn write_production_deployment(dir: &Path) -> anyhow::Result<()> {
    let info = sealcache_env_detect::EnvironmentDetector::default()
        .detect(sealcache_env_detect::FeatureContext::SecurityEnforcement);
    let config = sealcache_config_gen::SecureConfigGenerator::generate_for_environment(
        &info,
        Some(sealcache_env_detect::Environment::Production),
    )
    .context("cannot generate secrets")?;
    sealcache_config_gen::write_deployment(
        &config,
        dir,
        &sealcache_config_gen::DeploymentOptions::default(),
    )?;
    Ok(())
}

/// `cargo xtask test`'s Python step.
pub fn test() -> anyhow::Result<()> {
    println!(
        "▶ Python package: wheel, pytest (plain Redis and the hardened local stack), mypy, stubtest"
    );
    let venv = install_wheel(false)?;
    let python = venv.join("bin/python");
    let dir = target_dir().join("py-stack");
    let _ = crate::local::stop(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    write_production_deployment(&dir)?;
    let port = crate::local::free_port().context("cannot find a free local port for the API")?;
    let outcome = crate::local::start(&dir, port).and_then(|_| {
        let described = dir.join("py-stack.json");
        describe_stack(&std::fs::canonicalize(&dir)?, &described)?;
        step(
            "pytest crates/python/tests",
            Command::new(&python)
                .current_dir(workspace_root().join("crates/python"))
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
                .env("PYTEST_SEALCACHE_STACK", &described)
                // Hypothesis (under schemathesis) keeps its files here, not in the checkout.
                .env(
                    "HYPOTHESIS_STORAGE_DIRECTORY",
                    target_dir().join("hypothesis"),
                ),
        )
    });
    let _ = crate::local::stop(&std::fs::canonicalize(&dir).unwrap_or(dir.clone()));
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    let package = workspace_root().join("crates/python/python");
    step(
        "mypy --strict (the package and its examples)",
        Command::new(&python).current_dir(&package).args([
            "-m",
            "mypy",
            "--strict",
            "sealcache",
            "../examples",
        ]),
    )?;
    step(
        "stubtest sealcache._sealcache",
        Command::new(&python).current_dir(&venv).args([
            "-m",
            "mypy.stubtest",
            "sealcache._sealcache",
        ]),
    )?;
    println!("✅ Python package tested");
    Ok(())
}

/// `cargo xtask bench python`: the release wheel against redis-py and the template's path over
/// the shared corpus (crates/python/bench/bench_python.py prints the table).
pub fn bench() -> anyhow::Result<()> {
    let venv = install_wheel(true)?;
    let corpus = workspace_root().join("../shared/bench/corpus.jsonl");
    step(
        "bench python",
        Command::new(venv.join("bin/python"))
            .arg(workspace_root().join("crates/python/bench/bench_python.py"))
            .arg(&corpus),
    )
}

#[cfg(test)]
mod tests {
    /// `cargo xtask test`'s Python step on its own:
    /// `cargo test -p sealcache-devstack -- --ignored python_package`.
    #[test]
    #[ignore = "builds the wheel, starts the local stack; part of `cargo xtask test`"]
    fn python_package() {
        super::test().unwrap();
    }
}
