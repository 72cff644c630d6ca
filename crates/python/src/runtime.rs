//! The one tokio runtime of the process, and the fork guard.

use std::sync::OnceLock;

use pyo3::prelude::*;

use crate::errors;

/// The runtime and the process that made it.
struct Shared {
    runtime: &'static tokio::runtime::Runtime,
    pid: u32,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

fn shared() -> &'static Result<Shared, String> {
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sealcache")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the sealcache runtime: {e}"))?;
        // Leaked on purpose: it lives as long as the process, and pyo3-async-runtimes needs a
        // `'static` runtime for the futures it hands to asyncio.
        let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
        // Fails only when another extension set it first; then that runtime drives the asyncio
        // bridge and ours the rest, which still works.
        let _ = pyo3_async_runtimes::tokio::init_with_runtime(runtime);
        Ok(Shared {
            runtime,
            pid: std::process::id(),
        })
    })
}

/// The runtime, unless this process is a fork of the one that started it (its worker threads do
/// not exist here: a call would wait forever).
///
/// # Errors
/// `SealcacheError` in a forked child, or when the runtime could not start.
pub(crate) fn runtime(py: Python<'_>) -> PyResult<&'static tokio::runtime::Runtime> {
    match shared() {
        Ok(shared) if shared.pid == std::process::id() => Ok(shared.runtime),
        Ok(_) => Err(errors::sealcache_error(
            py,
            "this sealcache cache was created before the process forked: its runtime did not survive the fork; create the cache in the child (for example in a FastAPI lifespan or after the worker started)",
        )),
        Err(why) => Err(errors::sealcache_error(py, why)),
    }
}

/// The process id the cache was created in (checked on every call of a cache object, which
/// may also have been inherited across a fork before any runtime existed).
pub(crate) fn check_pid(py: Python<'_>, created_in: u32) -> PyResult<()> {
    if created_in == std::process::id() {
        return Ok(());
    }
    Err(errors::sealcache_error(
        py,
        "this sealcache cache was created in another process (the parent of a fork): create a new cache in this process",
    ))
}
