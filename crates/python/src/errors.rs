//! Rust errors as the Python classes of `sealcache._errors`.
//!
//! The classes are defined in Python (they inherit from two bases, such as `InvalidRequest(
//! SealcacheError, ValueError)`), looked up once per call that fails. Messages are the cache's
//! own `Display`, which never holds a value, key, password or request text.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

fn error_of(py: Python<'_>, class: &str, message: &str) -> PyErr {
    let found = py
        .import("sealcache._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match found {
        Ok(ty) => PyErr::from_type(ty, message.to_owned()),
        // The package is broken (the module missing): still an error, never a panic.
        Err(_) => PyRuntimeError::new_err(format!("sealcache: {message}")),
    }
}

/// `SealcacheError(message)`.
pub(crate) fn sealcache_error(py: Python<'_>, message: &str) -> PyErr {
    error_of(py, "SealcacheError", message)
}

/// `InvalidRequest(message)` (a `ValueError`).
pub(crate) fn invalid_request(py: Python<'_>, message: &str) -> PyErr {
    error_of(py, "InvalidRequest", message)
}

/// The Python error for a cache error.
pub(crate) fn from_cache(py: Python<'_>, err: &sealcache::Error) -> PyErr {
    use sealcache::Error;
    let class = match err {
        Error::Policy(_) => "PolicyError",
        Error::InvalidOperation
        | Error::InvalidKey
        | Error::InvalidNamespace
        | Error::InvalidJson(_)
        | Error::Serialize
        | Error::InvalidEvent(_)
        | Error::InvalidTenant
        | Error::InvalidSubject
        | Error::SharedWithSubject
        | Error::ClearNotConfirmed => "InvalidRequest",
        Error::Unavailable
        | Error::Connect(_)
        | Error::AuthenticationRefused { .. }
        | Error::Tls { .. } => "Unavailable",
        Error::WriteRefused {
            reason: sealcache::WriteRefusal::OutOfMemory,
        } => "StoreFull",
        Error::WriteRefused { .. } | Error::InvalidationNotPublished => "WriteRefused",
        Error::Seal(sealcache_codec::Error::PlaintextTooLarge { .. }) => "InvalidRequest",
        _ => "SealcacheError",
    };
    error_of(py, class, &err.to_string())
}

/// A settings error (unreadable file, a variable set twice, ...) at `from_env`.
pub(crate) fn settings_error(py: Python<'_>, err: &impl std::fmt::Display) -> PyErr {
    error_of(py, "PolicyError", &format!("invalid settings: {err}"))
}
