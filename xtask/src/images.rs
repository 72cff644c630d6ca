//! Container images: official ones from a registry, or equivalent local ones built without any
//! registry (debootstrap + `docker import` for the base with Debian's redis-server; the backend
//! `FROM` that base with the release binary).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::docker::docker;
use crate::progress::{cargo, is_root, on_path, step, workspace_root};

/// The official Redis image (pinned).
pub(crate) const OFFICIAL_REDIS: &str = "redis:7.2.5-bookworm";
/// The official base for the backend image.
pub(crate) const OFFICIAL_BASE: &str = "debian:bookworm-slim";
/// The local base image (Debian bookworm minbase with redis-server and redis-tools).
pub(crate) const LOCAL_BASE: &str = "sealcache-base:bookworm";
/// The backend image.
pub(crate) const BACKEND: &str = "sealcache-server:local";

/// Which images to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub(crate) enum ImageMode {
    /// Official images (pulled).
    Official,
    /// Images built here without any registry.
    Local,
    /// Official when they can be had, local otherwise.
    #[default]
    Auto,
}

/// The images chosen.
#[derive(Debug, Clone)]
pub(crate) struct Images {
    pub(crate) redis: String,
    pub(crate) backend: String,
    pub(crate) origin: &'static str,
}

fn present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pull(image: &str) -> bool {
    present(image)
        || Command::new("docker")
            .args(["pull", "-q", image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Prepares the images for `mode`.
pub(crate) fn prepare(mode: ImageMode) -> anyhow::Result<Images> {
    let official = match mode {
        ImageMode::Local => false,
        ImageMode::Official => {
            if !pull(OFFICIAL_REDIS) || !pull(OFFICIAL_BASE) {
                bail!(
                    "cannot pull {OFFICIAL_REDIS} / {OFFICIAL_BASE}: no registry reachable (use --images local)"
                );
            }
            true
        }
        ImageMode::Auto => pull(OFFICIAL_REDIS) && pull(OFFICIAL_BASE),
    };
    let base = if official {
        OFFICIAL_BASE
    } else {
        local_base()?
    };
    backend(base)?;
    Ok(Images {
        redis: if official {
            OFFICIAL_REDIS.to_owned()
        } else {
            LOCAL_BASE.to_owned()
        },
        backend: BACKEND.to_owned(),
        origin: if official {
            "official (registry)"
        } else {
            "local (debootstrap, no registry)"
        },
    })
}

fn rootfs_dir() -> PathBuf {
    PathBuf::from("/var/cache/sealcache/rootfs-bookworm")
}

/// Builds (once) and imports the local base image.
fn local_base() -> anyhow::Result<&'static str> {
    if present(LOCAL_BASE) {
        return Ok(LOCAL_BASE);
    }
    let rootfs = rootfs_dir();
    if !rootfs.join("usr/bin/redis-server").exists() {
        if !is_root() {
            bail!(
                "building the local base image needs root (debootstrap); run as root or use --images official"
            );
        }
        crate::redis_install::ensure(&[crate::redis_install::Tool {
            program: "debootstrap",
            package: "debootstrap",
        }])?;
        let _ = std::fs::remove_dir_all(&rootfs);
        let parent = rootfs.parent().context("rootfs parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        step(
            "debootstrap bookworm (minbase + redis-server)",
            Command::new("debootstrap")
                .args([
                    "--variant=minbase",
                    "--include=redis-server,redis-tools,ca-certificates",
                    "bookworm",
                ])
                .arg(&rootfs)
                .arg("http://deb.debian.org/debian")
                .stdout(Stdio::null()),
        )?;
    }
    // tar of the root filesystem straight into `docker import` (no shell, no temporary file).
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run tar -C {} -c .", rootfs.display()))?;
    let tar_out = tar.stdout.take().context("tar has no stdout")?;
    let import = Command::new("docker")
        .args(["import", "-", LOCAL_BASE])
        .stdin(tar_out)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run docker import - {LOCAL_BASE}"))?;
    let tar_status = tar.wait().context("cannot wait for tar")?;
    if !import.success() || !tar_status.success() {
        bail!("docker import of the local base failed");
    }
    println!(
        "✅ Local base image {LOCAL_BASE} imported (Debian bookworm minbase, redis-server 7.0)"
    );
    Ok(LOCAL_BASE)
}

/// Builds the backend image from the release binaries: the server and the operator command
/// `sealcache` (sealcache-cli), so that an operator with only the image can run it.
fn backend(base: &str) -> anyhow::Result<()> {
    step(
        "cargo build --release -p sealcache-server -p sealcache-cli",
        cargo().args(crate::local::RELEASE_BUILD),
    )?;
    let root = workspace_root();
    let ctx = crate::progress::target_dir().join("sealcache-image");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx).with_context(|| format!("cannot create {}", ctx.display()))?;
    let binary = crate::progress::target_dir().join("release/sealcache-server");
    std::fs::copy(&binary, ctx.join("sealcache-server"))
        .with_context(|| format!("cannot copy {} into {}", binary.display(), ctx.display()))?;
    let cli = crate::progress::target_dir().join("release/sealcache");
    std::fs::copy(&cli, ctx.join("sealcache"))
        .with_context(|| format!("cannot copy {} into {}", cli.display(), ctx.display()))?;
    let dockerfile = root.join("deploy/images/backend.Dockerfile");
    let base_arg = format!("BASE={base}");
    let out = docker(&[
        "build",
        "-q",
        "--build-arg",
        &base_arg,
        "-t",
        BACKEND,
        "-f",
        dockerfile
            .to_str()
            .with_context(|| format!("{} is not UTF-8", dockerfile.display()))?,
        ctx.to_str()
            .with_context(|| format!("{} is not UTF-8", ctx.display()))?,
    ])?;
    let _ = out;
    if !on_path("docker") {
        bail!("docker disappeared");
    }
    Ok(())
}

/// The official images of the `observability` profile (pinned in the compose file).
pub(crate) const OBSERVABILITY: [&str; 3] = [
    "otel/opentelemetry-collector-contrib:0.115.1",
    "prom/prometheus:v2.54.1",
    "grafana/grafana:11.2.2",
];

/// Pulls the observability images; there is no local equivalent for them.
pub(crate) fn observability_images() -> anyhow::Result<Vec<&'static str>> {
    for image in OBSERVABILITY {
        if !pull(image) {
            bail!(
                "cannot pull {image}: the observability profile needs registry access (on a machine without one, \
                 `cargo xtask test` proves the dashboards against Debian's Prometheus instead; see docs/observability.md)"
            );
        }
    }
    Ok(OBSERVABILITY.to_vec())
}
