//! `verify`, once for every stack: each hardening item of docs/architecture.md §6, observed on
//! what runs from a deployment directory (local processes or compose, one node or a cluster).
//!
//! What is checked depends on what runs, never on which command started it:
//! * compose containers: Redis publishes no port and sits only on the internal
//!   network; neither the host nor a container on another network reaches it (asked of the kernel
//!   first, `ip route get`: no packet ever leaves the machine); no secret in `docker inspect`;
//!   every container hardened;
//! * a cluster ([`crate::stack::formed`]): every node `cluster_state:ok`, every replica linked;
//! * the backends: their security status at the wanted level (read again for up to
//!   30 s while they settle), for local processes the transport and identity checks they observe,
//!   for a cluster their view of it and L1 coherence; one store and lookup end to end that leaves
//!   nothing behind; with two backends or more, a change through one seen through another.

mod backends;
mod containers;
mod secrets;

use std::path::Path;

use sealcache_api::SecurityLevel;
use serde::Serialize;

use crate::error::{OpsError, Result};
use crate::report::{Mark, Progress, ProgressExt as _};
use crate::stack::{Backend, Redis, discover, node_view};

pub use self::backends::{VERIFY_OPERATION, end_to_end};
pub use self::containers::{LocalRoute, hardened, local_route, publishes_port};
pub use self::secrets::secret_values;

/// One verified item: a name (`redis_publishes_no_port`, ...), whether it holds, what was seen.
///
/// JSON: `{"name": ..., "passed": ..., "detail": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// The item's name.
    pub name: &'static str,
    /// It holds.
    pub passed: bool,
    /// What was observed (never a secret).
    pub detail: String,
}

/// The check `name`.
#[must_use]
pub fn check(name: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        passed,
        detail: detail.into(),
    }
}

/// Reports one ✅/❌ line per check (`name: detail`).
pub fn check_lines(checks: &[Check], progress: &mut dyn Progress) {
    for c in checks {
        progress.mark(
            if c.passed { Mark::Ok } else { Mark::Failed },
            format!("{}: {}", c.name, c.detail),
        );
    }
}

/// What a verification expects.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// The security level every backend must report: `production_ready` (a secure stack) or
    /// `development` (`dev-up`).
    pub want: SecurityLevel,
}

impl VerifyOptions {
    /// Expects every backend at `want`.
    #[must_use]
    pub fn new(want: SecurityLevel) -> Self {
        Self { want }
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self::new(SecurityLevel::ProductionReady)
    }
}

/// Verifies the stack that runs from `dir`; the checks, in the order they are reported. Progress
/// notes (backends still settling) go to `progress`.
///
/// # Errors
/// [`OpsError::Unhealthy`] when no backend of `dir` runs; as [`discover`] when the running
/// processes cannot be found. A failed item is a failed [`Check`], never an error.
pub fn verify(
    dir: &Path,
    options: &VerifyOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<Check>> {
    let targets = discover(dir)?;
    let ports: Vec<u16> = targets.backends.iter().filter_map(|b| b.port()).collect();
    if ports.is_empty() {
        return Err(OpsError::Unhealthy {
            target: format!("the stack of {}", dir.display()),
            detail: "no backend of this directory runs with a published port (start it with `sealcache up`, or `sealcache up --local` for local processes)".to_owned(),
        });
    }
    let cluster = sealcache_config_gen::cluster_dir::cluster_record(dir)?.is_some();
    let compose = targets
        .redis
        .iter()
        .any(|r| matches!(r, Redis::Container { .. }))
        || targets
            .backends
            .iter()
            .any(|b| matches!(b, Backend::Container { .. }));
    let shape = backends::Shape {
        want: options.want,
        local: !compose,
        cluster,
    };
    // The backends are judged first (and reported last): the probe containers of the container
    // checks keep the Docker engine busy, and the backends' per-node probes resolve node names
    // through its embedded DNS.
    let backend_checks = backends::checks(dir, &ports, shape, progress);
    let mut checks = Vec::new();
    // Processes of the directory that run in part or from an older layout: the stack is not the
    // directory's, whatever the rest shows.
    if !targets.stale.is_empty() || !targets.down.is_empty() {
        let mut what = targets.stale.clone();
        what.extend(targets.down.iter().cloned());
        checks.push(check("stack_whole", false, what.join("; ")));
    }
    if compose {
        checks.extend(containers::checks(dir, &targets));
    }
    if cluster {
        let views: Vec<_> = targets.redis.iter().map(|r| node_view(dir, r)).collect();
        checks.extend(backends::node_checks(&views));
    }
    checks.extend(backend_checks);
    Ok(checks)
}
