//! Docker and compose, driven through argument arrays (no shell).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// True when a Docker engine answers within a few seconds.
pub(crate) fn engine_answers() -> bool {
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
pub(crate) fn docker(args: &[&str]) -> anyhow::Result<String> {
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

/// `docker compose` (v2) or `docker-compose` (v1), whichever is installed.
#[derive(Debug, Clone)]
pub(crate) struct Compose {
    program: Vec<String>,
    project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Compose {
    /// Finds a compose implementation.
    pub(crate) fn detect(project: &str) -> anyhow::Result<Self> {
        let v2 = Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success());
        let program = if v2 {
            vec!["docker".to_owned(), "compose".to_owned()]
        } else if Command::new("docker-compose")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            vec!["docker-compose".to_owned()]
        } else {
            bail!(
                "neither `docker compose` nor `docker-compose` is installed: apt-get install docker-compose (or the compose plugin)"
            );
        };
        Ok(Self {
            program,
            project: project.to_owned(),
            files: Vec::new(),
            env: Vec::new(),
        })
    }

    /// The implementation in use.
    pub(crate) fn name(&self) -> String {
        self.program.join(" ")
    }

    /// Adds a compose file.
    pub(crate) fn file(mut self, file: &Path) -> Self {
        self.files.push(file.to_path_buf());
        self
    }

    /// Sets a variable for interpolation (never a secret: secrets are files).
    pub(crate) fn var(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..]).args(["-p", &self.project]);
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Runs a compose subcommand.
    pub(crate) fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", self.name()))?;
        check(&out, &format!("{} {}", self.name(), args.join(" ")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The container id of `service`.
    pub(crate) fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.run(&["ps", "-q", service])?.trim().to_owned();
        if id.is_empty() {
            bail!("service {service} has no container");
        }
        Ok(id)
    }

    /// The project name.
    pub(crate) fn project(&self) -> &str {
        &self.project
    }
}

/// `docker inspect` of one object as JSON.
pub(crate) fn inspect(id: &str) -> anyhow::Result<serde_json::Value> {
    let text = docker(&["inspect", id])?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("docker inspect {id} printed no JSON"))?;
    v.get(0)
        .cloned()
        .with_context(|| format!("docker inspect {id} returned nothing"))
}
