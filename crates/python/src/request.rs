//! `sealcache.Request`: what a cached answer is keyed by.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;

/// One request to a model: the text, the operation, and what else changes the answer.
///
/// `options` is a JSON object (a `dict` of JSON values); its key order does not matter (the key is
/// derived from its RFC 8785 canonical form, so `{"a": 1, "b": 2}` and `{"b": 2, "a": 1}`, or
/// `1` and `1.0`, are one entry).
#[pyclass(module = "sealcache", frozen, from_py_object)]
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) inner: sealcache::AiRequest,
}

#[pymethods]
impl Request {
    #[new]
    #[pyo3(signature = (text, operation, options = None, question = None, model = None))]
    fn new(
        py: Python<'_>,
        text: String,
        operation: String,
        options: Option<&Bound<'_, PyDict>>,
        question: Option<String>,
        model: Option<String>,
    ) -> PyResult<Self> {
        let options = match options {
            None => serde_json::Map::new(),
            Some(dict) => convert::options(py, dict)?,
        };
        Ok(Self {
            inner: sealcache::AiRequest {
                text,
                operation,
                options,
                question,
                model,
            },
        })
    }

    /// The input text.
    #[getter]
    fn text(&self) -> &str {
        &self.inner.text
    }

    /// The operation (`summarize`, `qa`, ...).
    #[getter]
    fn operation(&self) -> &str {
        &self.inner.operation
    }

    /// The options, as a new `dict`.
    #[getter]
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = serde_json::to_string(&self.inner.options)
            .map_err(|_| crate::errors::invalid_request(py, "options are not JSON"))?;
        convert::loads(py, text.as_bytes())
    }

    /// The question, for question answering.
    #[getter]
    fn question(&self) -> Option<&str> {
        self.inner.question.as_deref()
    }

    /// The model.
    #[getter]
    fn model(&self) -> Option<&str> {
        self.inner.model.as_deref()
    }

    fn __repr__(&self) -> String {
        // Never the text or the question: they may hold user data.
        format!(
            "Request(operation={:?}, text=<{} chars>, options=<{} keys>, model={:?})",
            self.inner.operation,
            self.inner.text.chars().count(),
            self.inner.options.len(),
            self.inner.model
        )
    }
}
