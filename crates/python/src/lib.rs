//! `sealcache._sealcache`: the native core of the Python package `sealcache`.
//!
//! The Python package (`python/sealcache/`) wraps this module: `AsyncCache` and `Cache` are the
//! same [`sealcache::AiResponseCache`] (sealed values, L1, single-flight, L1 coherence, the
//! strict policy) driven from asyncio or from threads. One long-lived tokio runtime, made on
//! first use, runs every call and the cache's background tasks; calls release the GIL while
//! they wait, and cancelling an asyncio task drops the Rust future it awaits. A process forked
//! after the runtime started cannot use it (its threads did not survive the fork): every call
//! from such a child raises `SealcacheError` at once instead of hanging.
//!
//! Errors are the Python classes of `sealcache._errors` (`PolicyError`, `InvalidRequest`,
//! `Unavailable`, `WriteRefused`, `StoreFull`, all `SealcacheError`s), so that they can inherit
//! from the built-in classes callers already catch (`ValueError`, `ConnectionError`).

mod convert;
mod core;
mod errors;
mod request;
mod runtime;

use pyo3::prelude::*;

/// The module `sealcache._sealcache`.
#[pymodule]
fn _sealcache(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<request::Request>()?;
    m.add_class::<core::CacheCore>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
