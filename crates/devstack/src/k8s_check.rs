//! The Kubernetes manifests' step of `cargo xtask test` (offline): a fresh single-node and a
//! fresh cluster directory rendered into one output, then
//!
//! 1. `kubectl kustomize` builds both overlays (and the base alone);
//! 2. `kubernetes-validate --strict` accepts both builds for Kubernetes 1.29 and 1.33;
//! 3. `checkov --framework kubernetes --skip-download` finds no failure beyond the written skip
//!    list `deploy/k8s-checks/checkov-skips.txt` (every skip with its reason);
//! 4. `yamllint --strict` (config `deploy/k8s-checks/yamllint.yaml`) finds nothing in any
//!    rendered file;
//! 5. git ignores the secret output under the default `deploy/k8s/`.
//!
//! The Python tools are installed once (pinned, from PyPI) into a virtual environment under the
//! target directory (`target/k8s-venv`). The object-level checks (every hardening item of every
//! pod template) are `crates/ops/tests/k8s_render.rs`, run by `cargo test`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use sealcache_config_gen::cluster_dir::{ClusterOptions, write_cluster_deployment};
use sealcache_config_gen::{DeploymentOptions, SecureConfigGenerator, write_deployment};
use sealcache_env_detect::{Environment, EnvironmentDetector, FeatureContext};
use sealcache_ops::k8s::{self, RenderOptions};

use crate::progress::{on_path, target_dir, workspace_root};

/// The Python tools, pinned (installed with pip from PyPI into [`venv`]).
const TOOLS: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "yamllint==1.38.0",
];
/// The Kubernetes releases the manifests must be valid for (the oldest is the pinned Pod
/// Security Standards version).
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.33.0"];
/// The written skip list of checkov checks, each with its reason.
const CHECKOV_SKIPS: &str = "deploy/k8s-checks/checkov-skips.txt";
/// yamllint's configuration.
const YAMLLINT_CONFIG: &str = "deploy/k8s-checks/yamllint.yaml";

/// The virtual environment of the Python tools.
fn venv() -> PathBuf {
    target_dir().join("k8s-venv")
}

/// Creates the virtual environment and installs [`TOOLS`] unless the installed set is current.
fn ensure_tools() -> anyhow::Result<PathBuf> {
    if !on_path("kubectl") {
        bail!(
            "kubectl is not on PATH: install it (it renders the overlays with its built-in kustomize; nothing is downloaded at run time)"
        );
    }
    let venv = venv();
    let marker = venv.join(".sealcache-tools");
    let wanted = TOOLS.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv.join("bin"));
    }
    if !on_path("python3") {
        bail!(
            "python3 is not on PATH: install python3 and python3-venv (apt-get install python3-venv)"
        );
    }
    println!("▶ installing {} into {}", TOOLS.join(", "), venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("cannot create the virtual environment (apt-get install python3-venv)")?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(TOOLS))
    .context("pip could not install the Kubernetes checking tools from PyPI")?;
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(venv.join("bin"))
}

/// Runs `cmd`; an error carries its output.
fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let output = cmd
        .output()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            cmd.get_program().to_string_lossy(),
            output.status,
            text.trim_end()
        );
    }
    Ok(text)
}

/// The skip list: `ID reason...` per line, `#` comments; a line without a reason is an error.
pub fn checkov_skips(text: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if !id.starts_with("CKV") || reason.trim().len() < 20 {
            bail!(
                "{CHECKOV_SKIPS} line {}: each skip is `CKV_... reason` with its reason",
                n + 1
            );
        }
        ids.push(id.to_owned());
    }
    Ok(ids)
}

/// Fresh single-node and cluster directories under `root`.
fn fresh_directories(root: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let info = EnvironmentDetector::default().detect(FeatureContext::SecurityEnforcement);
    let single = root.join("single-dir");
    let cluster = root.join("cluster-dir");
    let config =
        SecureConfigGenerator::generate_for_environment(&info, Some(Environment::Production))
            .context("cannot generate secrets")?;
    write_deployment(&config, &single, &DeploymentOptions::default())?;
    let config =
        SecureConfigGenerator::generate_for_environment(&info, Some(Environment::Production))
            .context("cannot generate secrets")?;
    write_cluster_deployment(
        &config,
        &cluster,
        &DeploymentOptions::default(),
        &ClusterOptions::default(),
    )?;
    Ok((single, cluster))
}

/// The step (see the module documentation).
pub fn test_manifests() -> anyhow::Result<()> {
    println!(
        "▶ Kubernetes manifests: render single and cluster, kubectl kustomize, kubernetes-validate --strict ({}), checkov, yamllint",
        KUBERNETES_VERSIONS.join(", ")
    );
    let started = Instant::now();
    let outcome = check_all();
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(summary) => {
            println!("✅ Kubernetes manifests: {summary} ({secs:.1}s)");
            Ok(())
        }
        Err(err) => {
            println!("❌ Kubernetes manifests ({secs:.1}s): {err:#}");
            bail!("the Kubernetes manifests' checks failed")
        }
    }
}

fn check_all() -> anyhow::Result<String> {
    let bin = ensure_tools()?;
    let root = target_dir().join("k8s-test");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let (single, cluster) = fresh_directories(&root)?;
    let out = root.join("k8s");
    k8s::render(&single, &out, &RenderOptions::new(false)).context("rendering single")?;
    k8s::render(&cluster, &out, &RenderOptions::new(true)).context("rendering cluster")?;

    // 1. kubectl kustomize.
    let mut built = Vec::new();
    for dir in [
        out.join(k8s::BASE_DIR),
        out.join(k8s::OVERLAYS_DIR).join("single"),
        out.join(k8s::OVERLAYS_DIR).join("cluster"),
    ] {
        let yaml = run(Command::new("kubectl").arg("kustomize").arg(&dir))
            .with_context(|| format!("kubectl kustomize {}", dir.display()))?;
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("built");
        let file = root.join(format!("built-{name}.yaml"));
        std::fs::write(&file, yaml).with_context(|| format!("cannot write {}", file.display()))?;
        if name != k8s::BASE_DIR {
            built.push(file);
        }
    }

    // 2. kubernetes-validate --strict, per Kubernetes release.
    for version in KUBERNETES_VERSIONS {
        run(Command::new(bin.join("kubernetes-validate"))
            .args(["--strict", "--quiet", "-k", version])
            .args(&built))
        .with_context(|| format!("kubernetes-validate --strict -k {version}"))?;
    }

    // 3. checkov, with the written skip list.
    let skips_path = workspace_root().join(CHECKOV_SKIPS);
    let skips = checkov_skips(
        &std::fs::read_to_string(&skips_path)
            .with_context(|| format!("cannot read {}", skips_path.display()))?,
    )?;
    let mut checkov = Command::new(bin.join("checkov"));
    checkov
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "--quiet",
        ])
        .args(["--output", "cli"])
        .env("ANSI_COLORS_DISABLED", "1")
        .env("BC_SKIP_MAPPING", "TRUE");
    if !skips.is_empty() {
        checkov.arg("--skip-check").arg(skips.join(","));
    }
    for file in &built {
        checkov.arg("-f").arg(file);
    }
    run(&mut checkov).context("checkov found failures beyond the skip list")?;

    // 4. yamllint on every rendered file (the secret output too: it is YAML we write).
    run(Command::new(bin.join("yamllint"))
        .arg("--strict")
        .arg("-c")
        .arg(workspace_root().join(YAMLLINT_CONFIG))
        .arg(&out))
    .context("yamllint")?;

    // 5. The secret output under the default output directory is git-ignored.
    let probe = format!(
        "{}/{}/single/secrets.yaml",
        k8s::DEFAULT_OUT,
        k8s::SECRETS_DIR
    );
    let ignored = Command::new("git")
        .current_dir(workspace_root())
        .args(["check-ignore", "-q", &probe])
        .status()
        .context("cannot run git check-ignore")?;
    if !ignored.success() {
        bail!("{probe} is not git-ignored");
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(format!(
        "both overlays build, valid for Kubernetes {}, checkov clean ({} written skips), yamllint clean, secrets git-ignored",
        KUBERNETES_VERSIONS.join(" and "),
        skips.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redis configuration the manifests embed is the one the compose files mount.
    #[test]
    fn the_embedded_redis_conf_files_are_the_shipped_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (shipped, embedded) in [
            ("deploy/redis/redis.conf", k8s::REDIS_CONF),
            ("deploy/redis/redis.cluster.conf", k8s::REDIS_CLUSTER_CONF),
        ] {
            let text = std::fs::read_to_string(root.join(shipped)).unwrap_or_default();
            assert_eq!(
                text, embedded,
                "{shipped} and crates/ops/templates/ differ: copy it over"
            );
        }
    }

    #[test]
    fn the_checkov_skip_list_gives_a_reason_for_every_skip() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join(CHECKOV_SKIPS)).unwrap_or_default();
        assert!(checkov_skips(&text).is_ok());
        assert!(checkov_skips("CKV_K8S_43").is_err());
        assert_eq!(
            checkov_skips("# c\nCKV_K8S_43 a reason long enough to count\n").ok(),
            Some(vec!["CKV_K8S_43".to_owned()])
        );
    }
}
