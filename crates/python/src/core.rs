//! `CacheCore`: one [`sealcache::AiResponseCache`] for Python. Every method takes `blocking`:
//! `False` returns an awaitable (for `sealcache.AsyncCache`), `True` runs the call on the shared
//! runtime while the GIL is released and returns its result (for `sealcache.Cache`). Values
//! cross as JSON text (`bytes`); the Python wrapper decodes them.

use std::sync::Arc;
use std::time::Duration;

use pyo3::IntoPyObjectExt as _;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde_json::value::RawValue;

use crate::request::Request;
use crate::{convert, errors, runtime};

/// The native cache behind `sealcache.AsyncCache` and `sealcache.Cache`.
#[pyclass(module = "sealcache._sealcache", frozen)]
pub(crate) struct CacheCore {
    cache: Arc<sealcache::AiResponseCache>,
    /// The process the cache was made in (see `runtime::check_pid`).
    pid: u32,
}

/// Bytes handed back to Python as `bytes`.
struct JsonBytes(Vec<u8>);

impl<'py> IntoPyObject<'py> for JsonBytes {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

fn ttl(seconds: Option<f64>, py: Python<'_>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.001..=30.0 * 86_400.0).contains(&s) => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        Some(_) => Err(errors::invalid_request(
            py,
            "ttl must be between 0.001 and 2592000 seconds",
        )),
    }
}

/// The per-request cache control of a lookup.
fn control(
    py: Python<'_>,
    max_age_seconds: Option<f64>,
    no_cache: bool,
) -> PyResult<sealcache::LookupOptions> {
    let mut options = sealcache::LookupOptions::default().no_cache(no_cache);
    if let Some(age) = max_age_seconds {
        if !(age.is_finite() && (0.0..=365.0 * 86_400.0).contains(&age)) {
            return Err(errors::invalid_request(
                py,
                "max_age must be between 0 and 31536000 seconds",
            ));
        }
        options = options.max_age(Duration::from_secs_f64(age));
    }
    Ok(options)
}

/// Calls the Python `compute` (a plain callable when `blocking`, else one returning an awaitable)
/// and serializes its value.
async fn call_compute(compute: Py<PyAny>, blocking: bool) -> PyResult<Box<RawValue>> {
    let value = if blocking {
        Python::attach(|py| compute.call0(py))?
    } else {
        let awaited = Python::attach(|py| {
            pyo3_async_runtimes::tokio::into_future(compute.call0(py)?.into_bound(py))
        })?;
        awaited.await?
    };
    Python::attach(|py| convert::dumps(py, value.bind(py)))
}

/// An erasure as Python receives it: `(data_key_id, data_keys_destroyed, erased_at)`.
fn erasure(erased: sealcache::Erasure) -> (Option<String>, u64, f64) {
    let at = erased
        .erased_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    (erased.data_key_id, erased.data_keys_destroyed, at)
}

fn cache_err(err: &sealcache::Error) -> PyErr {
    Python::attach(|py| errors::from_cache(py, err))
}

impl CacheCore {
    /// Runs `fut` as the caller asked: an awaitable, or to completion without the GIL.
    fn run<'py, F, T>(&self, py: Python<'py>, blocking: bool, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        runtime::check_pid(py, self.pid)?;
        let rt = runtime::runtime(py)?;
        if blocking {
            let out = py.detach(|| rt.block_on(fut))?;
            out.into_bound_py_any(py)
        } else {
            pyo3_async_runtimes::tokio::future_into_py(py, fut)
        }
    }

    fn cache(&self) -> Arc<sealcache::AiResponseCache> {
        Arc::clone(&self.cache)
    }

    /// Another view (`tenant`, `subject`) of this cache, in this process.
    fn view(&self, cache: sealcache::AiResponseCache) -> Self {
        Self {
            cache: Arc::new(cache),
            pid: self.pid,
        }
    }
}

#[pymethods]
impl CacheCore {
    /// A cache from the environment: the same settings contract, policy and refusals as the
    /// server (`REDIS_URL`, `REDIS_PASSWORD_FILE`, `REDIS_ENCRYPTION_KEYS_FILE`, ...).
    #[staticmethod]
    #[pyo3(signature = (l1_capacity = None))]
    fn from_env(py: Python<'_>, l1_capacity: Option<usize>) -> PyResult<Self> {
        let settings = sealcache_settings::SecuritySettings::load()
            .map_err(|e| errors::settings_error(py, &e))?;
        Self::from_settings(py, &settings, l1_capacity)
    }

    /// A cache from keyword settings: each is the variable of the same name (`redis_url` is
    /// `REDIS_URL`, ...), read as the server reads its environment; unset ones come from the
    /// process environment.
    #[staticmethod]
    #[pyo3(signature = (variables, l1_capacity = None))]
    fn from_variables(
        py: Python<'_>,
        variables: &Bound<'_, PyDict>,
        l1_capacity: Option<usize>,
    ) -> PyResult<Self> {
        let mut vars: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        for (name, value) in variables.iter() {
            let name: String = name.extract()?;
            let value: String = value.str()?.extract()?;
            vars.insert(name.to_ascii_uppercase(), value);
        }
        let toml = vars
            .get("SEALCACHE_CONFIG")
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from);
        let settings = sealcache_settings::SecuritySettings::load_from(&vars, toml.as_deref())
            .map_err(|e| errors::settings_error(py, &e))?;
        Self::from_settings(py, &settings, l1_capacity)
    }

    /// The Redis key of `request` (an HMAC of it: no request text).
    fn key(&self, py: Python<'_>, request: &Request) -> PyResult<String> {
        runtime::check_pid(py, self.pid)?;
        self.cache
            .key(&request.inner)
            .map_err(|e| errors::from_cache(py, &e))
    }

    /// This cache for tenant `tenant` (its own entries, sealed under its own data key).
    fn tenant(&self, py: Python<'_>, tenant: &str) -> PyResult<Self> {
        let cache = self
            .cache
            .tenant(tenant)
            .map_err(|e| errors::from_cache(py, &e))?;
        Ok(self.view(cache))
    }

    /// This cache for end user `subject` within this view's tenant.
    fn subject(&self, py: Python<'_>, subject: &str) -> PyResult<Self> {
        let cache = self
            .cache
            .subject(subject)
            .map_err(|e| errors::from_cache(py, &e))?;
        Ok(self.view(cache))
    }

    /// Destroys the data key of `subject` within this view's tenant: `(data_key_id or None,
    /// data_keys_destroyed, erased_at as Unix seconds)`.
    fn erase_subject<'py>(
        &self,
        py: Python<'py>,
        subject: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.cache();
        self.run(py, blocking, async move {
            cache
                .erase_subject(&subject)
                .await
                .map(erasure)
                .map_err(|e| cache_err(&e))
        })
    }

    /// Destroys every data key of this view's tenant (as `erase_subject` answers).
    fn erase_tenant<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.cache();
        self.run(py, blocking, async move {
            cache
                .erase_tenant()
                .await
                .map(erasure)
                .map_err(|e| cache_err(&e))
        })
    }

    /// The namespace.
    fn namespace(&self) -> String {
        self.cache.sealed().keys().namespace().to_owned()
    }

    /// The stored JSON text of `request`, byte for byte, or `None`.
    fn get_json<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            match cache.get(&request).await {
                // A stored stream is no JSON value (`get_events` reads it): `None` here.
                Ok(hit) => Ok(hit
                    .filter(|h| h.kind() == sealcache::EntryKind::Json)
                    .map(|h| JsonBytes(h.json_bytes().to_vec()))),
                Err(e) => Err(cache_err(&e)),
            }
        })
    }

    /// The stored JSON text of the explicit or full Redis `key`, or `None`.
    fn get_key<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.cache();
        let full = full_key(py, &cache, key)?;
        self.run(py, blocking, async move {
            Ok(cache
                .sealed()
                .get_raw(&full, "kv")
                .await
                .filter(|h| h.kind() == sealcache::EntryKind::Json)
                .map(|h| JsonBytes(h.json_bytes().to_vec())))
        })
    }

    /// Stores JSON text (`bytes`/`str`, kept byte for byte) or a JSON-serializable value for
    /// `request`; returns the TTL used in seconds.
    #[pyo3(signature = (request, value, ttl_seconds, is_json, blocking))]
    fn set<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        value: &Bound<'_, PyAny>,
        ttl_seconds: Option<f64>,
        is_json: bool,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let json = if is_json {
            convert::raw(py, value)?
        } else {
            convert::dumps(py, value)?
        };
        let ttl = ttl(ttl_seconds, py)?;
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            let bytes = sealcache::Bytes::from(json.get().as_bytes().to_vec());
            cache
                .set_json(&request, bytes, ttl)
                .await
                .map(|d| d.as_secs_f64())
                .map_err(|e| cache_err(&e))
        })
    }

    /// Stores a value under the explicit or full Redis `key` for `ttl_seconds` (default 3600).
    fn set_key<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        value: &Bound<'_, PyAny>,
        ttl_seconds: Option<f64>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let json = convert::dumps(py, value)?;
        let ttl = ttl(ttl_seconds, py)?.unwrap_or(Duration::from_secs(3600));
        let cache = self.cache();
        let full = full_key(py, &cache, key)?;
        self.run(py, blocking, async move {
            let bytes = sealcache::Bytes::from(json.get().as_bytes().to_vec());
            cache
                .sealed()
                .set_raw(&full, bytes, ttl)
                .await
                .map_err(|e| cache_err(&e))
        })
    }

    /// Removes the explicit or full Redis `key`; whether it existed.
    fn delete_key<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.cache();
        let full = full_key(py, &cache, key)?;
        self.run(py, blocking, async move {
            cache
                .sealed()
                .delete_raw(&full)
                .await
                .map_err(|e| cache_err(&e))
        })
    }

    /// Removes the entry of `request`; whether it existed.
    fn delete<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            cache.delete(&request).await.map_err(|e| cache_err(&e))
        })
    }

    /// The cached JSON text of `request`, or `compute()`'s (one computation per key across
    /// concurrent callers of this process), with its origin and remaining TTL:
    /// `(bytes, "l1" | "redis" | "computed", ttl_seconds | None)`.
    #[pyo3(signature = (request, compute, ttl_seconds, blocking))]
    fn get_or_compute<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        compute: Py<PyAny>,
        ttl_seconds: Option<f64>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ttl = ttl(ttl_seconds, py)?;
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            let answer = cache
                .get_or_compute::<Box<RawValue>, PyErr, _, _>(&request, ttl, || {
                    call_compute(compute, blocking)
                })
                .await;
            match answer {
                Ok(a) => Ok((
                    JsonBytes(a.value.get().as_bytes().to_vec()),
                    a.origin.as_str(),
                    a.ttl_remaining.map(|d| d.as_secs_f64()),
                )),
                Err(sealcache::ComputeError::Compute(e)) => {
                    Err(Python::attach(|py| e.clone_ref(py)))
                }
                Err(sealcache::ComputeError::Cache(e)) => Err(cache_err(&e)),
                Err(other) => Err(Python::attach(|py| {
                    errors::sealcache_error(py, &other.to_string())
                })),
            }
        })
    }

    /// The stored JSON text of `request` under per-request cache control, or `None`:
    /// `max_age_seconds` (an entry stored longer ago, or of unknown age, is a miss) and `no_cache`
    /// (always a miss).
    #[pyo3(signature = (request, max_age_seconds, no_cache, blocking))]
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        max_age_seconds: Option<f64>,
        no_cache: bool,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = control(py, max_age_seconds, no_cache)?;
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            let outcome = cache
                .lookup_or_lease(&request, options)
                .await
                .map_err(|e| cache_err(&e))?;
            Ok(match outcome {
                // A stored stream is no JSON value (`get_events` reads it): a miss here.
                sealcache::LookupOutcome::Hit(hit) if hit.kind() == sealcache::EntryKind::Json => {
                    Some(JsonBytes(hit.json_bytes().to_vec()))
                }
                _ => None,
            })
        })
    }

    /// `get_or_compute` under per-request cache control: the lookup honours `max_age_seconds` /
    /// `no_cache`, and a miss takes the cross-replica lease (or waits for its holder's entry)
    /// before computing, as `get_or_compute` does; the fresh value replaces the entry.
    #[pyo3(signature = (request, compute, ttl_seconds, max_age_seconds, no_cache, blocking))]
    #[allow(clippy::too_many_arguments)] // the Python wrapper's arguments, one for one
    fn get_or_compute_controlled<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        compute: Py<PyAny>,
        ttl_seconds: Option<f64>,
        max_age_seconds: Option<f64>,
        no_cache: bool,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ttl = ttl(ttl_seconds, py)?;
        let options = control(py, max_age_seconds, no_cache)?
            .lease(sealcache::DEFAULT_LEASE_TTL)
            .wait(sealcache::DEFAULT_LEASE_WAIT);
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            // The lease is kept while the computation runs (renewed every third of its TTL) and
            // released when this future ends in any way: stored, failed, or cancelled (dropped),
            // so a waiter takes over at once instead of waiting for the TTL.
            let held = match cache
                .lookup_or_lease(&request, options)
                .await
                .map_err(|e| cache_err(&e))?
            {
                // A stored stream is no JSON value: computed and replaced like a miss.
                sealcache::LookupOutcome::Hit(hit) if hit.kind() == sealcache::EntryKind::Json => {
                    return Ok((
                        JsonBytes(hit.json_bytes().to_vec()),
                        sealcache::Origin::from(hit.tier()).as_str(),
                        hit.ttl_remaining().map(|d| d.as_secs_f64()),
                    ));
                }
                sealcache::LookupOutcome::Lease(lease) => cache.hold_lease(&lease).ok(),
                _ => None,
            };
            // On an error the lease is dropped here: released, a waiter takes over at once.
            let value = call_compute(compute, blocking).await?;
            let json = value.get().as_bytes().to_vec();
            // Stored before the lease is released, so the waiters find it; a failed store still
            // answers this caller (not cached).
            let stored = cache
                .set_json(&request, json.clone().into(), ttl)
                .await
                .ok();
            if let Some(held) = held {
                let _ = held.release().await;
            }
            Ok((JsonBytes(json), "computed", stored.map(|d| d.as_secs_f64())))
        })
    }

    /// Stores a completed stream of server-sent events `(event name or None, data)` as one sealed
    /// value (order and count authenticated); the TTL used.
    #[pyo3(signature = (request, events, ttl_seconds, blocking))]
    fn set_events<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        events: Vec<(Option<String>, String)>,
        ttl_seconds: Option<f64>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ttl = ttl(ttl_seconds, py)?;
        let events: Vec<sealcache::SseEvent> = events
            .into_iter()
            .map(|(event, data)| match event {
                Some(name) => sealcache::SseEvent::named(name, data),
                None => sealcache::SseEvent::new(data),
            })
            .collect();
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            cache
                .set_events(&request, &events, ttl)
                .await
                .map(|d| d.as_secs_f64())
                .map_err(|e| cache_err(&e))
        })
    }

    /// The cached stream of `request` as `[(event name or None, data), ...]`, or `None` (a miss,
    /// or the entry is one JSON value).
    fn get_events<'py>(
        &self,
        py: Python<'py>,
        request: &Request,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (cache, request) = (self.cache(), request.inner.clone());
        self.run(py, blocking, async move {
            let stream = cache
                .get_stream(&request)
                .await
                .map_err(|e| cache_err(&e))?;
            Ok(stream.map(|s| {
                s.into_events()
                    .into_iter()
                    .map(|e| (e.event, e.data))
                    .collect::<Vec<_>>()
            }))
        })
    }

    /// Removes every entry of `operation`; how many Redis removed.
    fn invalidate_operation<'py>(
        &self,
        py: Python<'py>,
        operation: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.cache();
        self.run(py, blocking, async move {
            cache
                .invalidate_operation(&operation)
                .await
                .map_err(|e| cache_err(&e))
        })
    }

    /// Removes every entry of the namespace; `confirm` must be `"invalidate-all"`.
    fn clear<'py>(
        &self,
        py: Python<'py>,
        confirm: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.cache();
        self.run(py, blocking, async move {
            cache.clear(&confirm).await.map_err(|e| cache_err(&e))
        })
    }

    /// Counters and latencies (the server's `/internal/cache/metrics` performance part), as JSON.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        runtime::check_pid(py, self.pid)?;
        let mut stats = serde_json::to_value(self.cache.stats())
            .map_err(|_| errors::sealcache_error(py, "cannot render the statistics"))?;
        if let Some(map) = stats.as_object_mut() {
            map.insert("l1_entries".into(), self.cache.l1_entries().into());
            map.insert("l1_bytes".into(), self.cache.l1_bytes().into());
            map.insert(
                "breaker_state".into(),
                format!("{:?}", self.cache.breaker_state())
                    .to_lowercase()
                    .into(),
            );
            let security = self.cache.monitor().security_summary();
            if let Ok(events) = serde_json::to_value(security.events_by_type) {
                map.insert("security_events_by_type".into(), events);
            }
        }
        convert::to_python(py, &stats)
    }

    /// The observed security posture (the server's security status), as JSON.
    fn security_status<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.cache();
        self.run(py, blocking, async move {
            let status = cache.security_status().await;
            serde_json::to_vec(&status).map(JsonBytes).map_err(|_| {
                Python::attach(|py| errors::sealcache_error(py, "cannot render the status"))
            })
        })
    }
}

impl CacheCore {
    fn from_settings(
        py: Python<'_>,
        settings: &sealcache_settings::SecuritySettings,
        l1_capacity: Option<usize>,
    ) -> PyResult<Self> {
        let environment =
            settings.detect_environment(sealcache_env_detect::FeatureContext::SecurityEnforcement);
        let limits = &settings.limits;
        let mut options = sealcache::CacheOptions::default()
            .with_l1_capacity(l1_capacity.unwrap_or(limits.l1_capacity))
            .with_l1_max_entry_bytes(limits.l1_max_entry_bytes);
        if let Some(bytes) = limits.l1_max_bytes {
            options = options.with_l1_max_bytes(bytes);
        }
        // Connections and the invalidation subscriber start on the shared runtime.
        let rt = runtime::runtime(py)?;
        let _guard = rt.enter();
        let cache = sealcache::from_settings_with(settings, environment, None, options)
            .map_err(|e| errors::from_cache(py, &e))?;
        Ok(Self {
            cache: Arc::new(cache),
            pid: std::process::id(),
        })
    }
}

/// `key` as a full Redis key: one that already names this namespace (from `key()` or the
/// template's `build_key`) is used as it is, anything else is an explicit key of the namespace.
fn full_key(py: Python<'_>, cache: &sealcache::AiResponseCache, key: &str) -> PyResult<String> {
    let keys = cache.sealed().keys();
    if key
        .strip_prefix(keys.namespace())
        .is_some_and(|rest| rest.starts_with(':'))
    {
        sealcache::validate_key(key).map_err(|e| errors::from_cache(py, &e))?;
        return Ok(key.to_owned());
    }
    keys.explicit_key(key)
        .map_err(|e| errors::from_cache(py, &e))
}
