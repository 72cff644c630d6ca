//! Docker and compose, driven through argument arrays (no shell).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// True when a Docker engine answers within a few seconds.
pub fn engine_answers() -> bool {
    let Ok(mut child) = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    for _ in 0..50 {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => return false,
        }
    }
    let _ = child.kill();
    false
}

/// Runs `docker ARGS` and returns its output (non-zero exit is an error with stderr).
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .with_context(|| format!("cannot run docker {}", args.first().unwrap_or(&"")))?;
    check(&out, &format!("docker {}", args.join(" ")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    bail!(
        "{what} failed: {}",
        stderr.trim().lines().last().unwrap_or("")
    )
}

/// `docker inspect` of one object as JSON.
pub fn inspect(id: &str) -> anyhow::Result<serde_json::Value> {
    let text = docker(&["inspect", id])?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("docker inspect {id} printed no JSON"))?;
    v.get(0)
        .cloned()
        .with_context(|| format!("docker inspect {id} returned nothing"))
}
