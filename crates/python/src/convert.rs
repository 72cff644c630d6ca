//! Values between Python and JSON text, through Python's own `json` module (its C encoder and
//! decoder), so that what Python stores is the JSON text the Rust server returns byte for byte.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde_json::value::RawValue;

use crate::errors;

/// `json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)` as checked
/// JSON text.
pub(crate) fn dumps(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Box<RawValue>> {
    let json = py.import("json")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("separators", (",", ":"))?;
    kwargs.set_item("ensure_ascii", false)?;
    kwargs.set_item("allow_nan", false)?;
    let text: String = json
        .call_method("dumps", (value,), Some(&kwargs))
        .map_err(|e| {
            errors::invalid_request(
                py,
                &format!("the value is not JSON-serializable ({})", e.get_type(py)),
            )
        })?
        .extract()?;
    RawValue::from_string(text)
        .map_err(|_| errors::invalid_request(py, "the value is not JSON text"))
}

/// JSON text (`bytes` or `str`) as checked JSON text, byte for byte.
pub(crate) fn raw(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Box<RawValue>> {
    let text = if let Ok(bytes) = value.cast::<PyBytes>() {
        String::from_utf8(bytes.as_bytes().to_vec())
            .map_err(|_| errors::invalid_request(py, "the JSON text is not UTF-8"))?
    } else {
        value
            .extract::<String>()
            .map_err(|_| errors::invalid_request(py, "set_json takes JSON text as bytes or str"))?
    };
    RawValue::from_string(text)
        .map_err(|_| errors::invalid_request(py, "the text is not one JSON value"))
}

/// `json.loads(text)`.
pub(crate) fn loads<'py>(py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (PyBytes::new(py, text),))
}

/// A `dict` of options as a JSON object.
pub(crate) fn options(
    py: Python<'_>,
    dict: &Bound<'_, PyDict>,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    let text = dumps(py, dict.as_any())?;
    serde_json::from_str(text.get())
        .map_err(|_| errors::invalid_request(py, "options must be a JSON object"))
}

/// A serde value (status, stats) as Python objects.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_vec(value)
        .map_err(|_| errors::sealcache_error(py, "cannot render the value as JSON"))?;
    loads(py, &text)
}
