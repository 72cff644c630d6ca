//! Makes sure the system tools the tests need are installed (Debian packages via apt).

use std::process::Command;

use anyhow::bail;

use crate::progress::{is_root, on_path, step};

/// A Debian package and the program it provides.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The program looked for on `PATH`.
    pub program: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// `redis-server` (Debian's 7.0 has TLS built in).
pub const REDIS: Tool = Tool {
    program: "redis-server",
    package: "redis-server",
};

/// `redis-cli`, which the tests use as an independent client.
pub const REDIS_CLI: Tool = Tool {
    program: "redis-cli",
    package: "redis-tools",
};

/// Installs every missing tool with apt when running as root; otherwise says what to install.
pub fn ensure(tools: &[Tool]) -> anyhow::Result<()> {
    let missing: Vec<&Tool> = tools.iter().filter(|t| !on_path(t.program)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    if !is_root() {
        bail!(
            "missing {}: install with `sudo apt-get install {}` (xtask installs them itself when run as root)",
            missing
                .iter()
                .map(|t| t.program)
                .collect::<Vec<_>>()
                .join(", "),
            packages.join(" ")
        );
    }
    step(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    step(
        &format!("apt-get install {}", packages.join(" ")),
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    for tool in missing {
        if !on_path(tool.program) {
            bail!(
                "{} is still missing after installing {}",
                tool.program,
                tool.package
            );
        }
    }
    Ok(())
}

/// `promtool` (Debian's prometheus package), for `promtool check metrics|config|rules`.
pub const PROMTOOL: Tool = Tool {
    program: "promtool",
    package: "prometheus",
};
