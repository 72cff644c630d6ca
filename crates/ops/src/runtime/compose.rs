//! `docker compose` (v2) or `docker-compose` (v1), driven through argument arrays.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{OpsError, Result};

/// A compose project: its implementation, name, files and interpolation variables.
#[derive(Debug, Clone)]
pub struct Compose {
    program: Vec<String>,
    project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Compose {
    /// Finds a compose implementation for project `project`.
    ///
    /// # Errors
    /// [`OpsError::Command`] when neither `docker compose` nor `docker-compose` is installed.
    pub fn detect(project: &str) -> Result<Self> {
        let answers = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let program = if answers("docker", &["compose", "version"]) {
            vec!["docker".to_owned(), "compose".to_owned()]
        } else if answers("docker-compose", &["version"]) {
            vec!["docker-compose".to_owned()]
        } else {
            return Err(OpsError::Command {
                program: "docker compose".to_owned(),
                detail: "neither `docker compose` nor `docker-compose` is installed: apt-get install docker-compose (or the compose plugin)".to_owned(),
            });
        };
        Ok(Self {
            program,
            project: project.to_owned(),
            files: Vec::new(),
            env: Vec::new(),
        })
    }

    /// The implementation in use (`docker compose`, `docker-compose`).
    #[must_use]
    pub fn name(&self) -> String {
        self.program.join(" ")
    }

    /// Adds a compose file.
    #[must_use]
    pub fn file(mut self, file: &Path) -> Self {
        self.files.push(file.to_path_buf());
        self
    }

    /// Sets a variable for interpolation (never a secret: secrets are files).
    #[must_use]
    pub fn var(mut self, key: &str, value: impl Into<String>) -> Self {
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

    /// Runs a compose subcommand; its standard output.
    ///
    /// # Errors
    /// [`OpsError::Command`] when it cannot run or fails (with its last line of stderr).
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let what = format!("{} {}", self.name(), args.join(" "));
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|e| OpsError::Command {
                program: what.clone(),
                detail: format!("cannot run: {e}"),
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(OpsError::Command {
                program: what,
                detail: format!(
                    "failed ({}): {}",
                    out.status,
                    stderr.trim().lines().last().unwrap_or("")
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The container id of `service`.
    ///
    /// # Errors
    /// As [`Compose::run`]; [`OpsError::Unhealthy`] when the service has no container.
    pub fn container(&self, service: &str) -> Result<String> {
        let id = self.run(&["ps", "-q", service])?.trim().to_owned();
        if id.is_empty() {
            return Err(OpsError::Unhealthy {
                target: format!("service {service}"),
                detail: "has no container".to_owned(),
            });
        }
        Ok(id)
    }

    /// The project name.
    #[must_use]
    pub fn project(&self) -> &str {
        &self.project
    }
}
