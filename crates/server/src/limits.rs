//! Request-level protections, in one middleware ([`guard`]): a declared oversize body refused at
//! once, load shedding at the in-flight limits, client request ids bounded, and the documented JSON
//! error body on every error response a layer below the handlers produced (405, 408, ...).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

/// The header that carries request ids.
pub(crate) const REQUEST_ID: &str = "x-request-id";
/// Longest client-supplied request id kept (visible ASCII only).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What an id of ours names: the two counters start together (one request per connection is the
/// common case), so their ids are kept apart or the `n`-th connection's id would be the `n`-th
/// request's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdKind {
    /// A request (`x-request-id: sc-…`).
    Request,
    /// A connection answered before any request was read (`x-request-id: sc-c…`).
    Connection,
}

/// An id of ours for the `n`-th request or connection: `kind` and `n` through SipHash under a key
/// drawn once per process ([`std::hash::RandomState`]), so ids are distinct within a process (64
/// bits), one kind's ids tell nothing of the other's, and they tell a client nothing of how many
/// requests or connections the server has had (a counter did).
pub(crate) fn opaque_id(kind: IdKind, n: u64) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    let mut hasher = KEY.get_or_init(std::hash::RandomState::new).build_hasher();
    hasher.write_u8(match kind {
        IdKind::Request => b'r',
        IdKind::Connection => b'c',
    });
    hasher.write_u64(n);
    hasher.finish()
}

/// The state of [`guard`].
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) body_limit: usize,
    /// How long a refused body may take to be read and discarded.
    pub(crate) drain_deadline: std::time::Duration,
    pub(crate) in_flight: InFlightLimit,
    pub(crate) metrics: crate::telemetry::HttpMetrics,
    pub(crate) ids: Arc<AtomicU64>,
    /// Head sampling of request traces (`None`: traces are not exported).
    pub(crate) sampler: Option<sealcache_monitor::export::HeadSampler>,
}

/// Every request passes through here once (one middleware instead of seven, on the hot path):
/// * its request id: the client's `x-request-id` if it is 1 to 128 visible ASCII characters and
///   sent once, else one of ours (`sc-` and 16 hex digits, [`opaque_id`]); set on the request and echoed on the response;
/// * a declared `Content-Length` over the body limit: 413, and the connection closed (see
///   [`refuse`] for when the body is read and discarded first);
/// * load shedding at the in-flight limits: 503 with `Retry-After: 1` (never `/health`);
/// * error responses without a body of ours (the router's 405, a timeout's 408, ...) get the
///   documented JSON error for their status;
/// * `http.server.request.duration` is recorded with the final status.
pub(crate) async fn guard(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let id = request_id(&guard, request.headers());
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let declared = declared_length(&request);
    let span = crate::trace::request_span(
        guard.sampler.as_ref(),
        &method,
        route.as_deref(),
        id.to_str().unwrap_or_default(),
        request.headers(),
    );
    let handled = async {
        match declared.filter(|&n| n > guard.body_limit as u64) {
            Some(declared) => refuse(&guard, request, declared).await,
            None => {
                let permits = admit(&guard.in_flight, &request, declared);
                match permits {
                    Some(_permits) => with_json_error(next.run(request).await),
                    None => {
                        let mut r = ApiError::Overloaded.into_response();
                        r.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                        r
                    }
                }
            }
        }
    };
    let mut response = tracing::Instrument::instrument(handled, span.clone()).await;
    crate::trace::record_status(&span, response.status());
    response.headers_mut().insert(REQUEST_ID, id);
    guard.metrics.observe(
        &method,
        route.as_deref(),
        response.status(),
        started.elapsed(),
    );
    response
}

fn request_id(guard: &Guard, headers: &axum::http::HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(REQUEST_ID).iter();
    if let (Some(v), None) = (values.next(), values.next()) {
        let b = v.as_bytes();
        if (1..=MAX_REQUEST_ID_LEN).contains(&b.len()) && b.iter().all(u8::is_ascii_graphic) {
            return v.clone();
        }
    }
    let n = opaque_id(IdKind::Request, guard.ids.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_str(&format!("sc-{n:016x}")).unwrap_or(HeaderValue::from_static("sc"))
}

/// Bodies declared over the limit, but at most this many times it, are read and discarded before
/// the 413, so that a client still sending reads the answer instead of a reset connection; larger
/// declarations (a 10 GiB `Content-Length`) are answered at once and the connection is closed.
const DRAIN_FACTOR: u64 = 4;

/// Whether the client waits for `100 Continue` before it sends the body (`Expect: 100-continue`).
///
/// hyper sends `100 Continue` by itself the first time anything reads the body, so a request that
/// is refused without reading it gets its final answer instead (RFC 9110 §10.1.1): nothing before
/// the handlers may read a body, and a refusal that would read one to discard it must not for such
/// a request.
fn expects_continue(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The declared body length (`Content-Length`), parsed once per request.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// 413 for a declared body over the limit; the connection is closed. The body is read and
/// discarded first (see [`DRAIN_FACTOR`]) only when the client is sending it: not when it waits
/// for `100 Continue` ([`expects_continue`]), which reading would send.
async fn refuse(guard: &Guard, request: Request, declared: u64) -> Response {
    if declared <= (guard.body_limit as u64).saturating_mul(DRAIN_FACTOR)
        && !expects_continue(request.headers())
    {
        use http_body_util::BodyExt as _;
        let mut body = request.into_body();
        let drain = async {
            // Discarded frame by frame: nothing accumulates.
            while let Some(Ok(_)) = body.frame().await {}
        };
        let _ = tokio::time::timeout(guard.drain_deadline, drain).await;
    }
    let mut response = ApiError::PayloadTooLarge.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The in-flight permits for `request`, or `None` when it must be shed.
fn admit<'a>(
    limit: &'a InFlightLimit,
    request: &Request,
    declared: Option<u64>,
) -> Option<(Option<SemaphorePermit<'a>>, Option<SemaphorePermit<'a>>)> {
    // The liveness probe is never shed: an overloaded server is alive.
    if request.uri().path() == "/health" {
        return Some((None, None));
    }
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    let bytes = match declared {
        Some(n) => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(limit.body_limit),
        None if chunked => limit.body_limit,
        None => 0,
    };
    let kib = u32::try_from(bytes / 1024 + 1)
        .unwrap_or(u32::MAX)
        .min(limit.kib_total);
    let request_permit = limit.requests.try_acquire().ok()?;
    let bytes_permit = limit.kib.try_acquire_many(kib).ok()?;
    Some((Some(request_permit), Some(bytes_permit)))
}

/// The documented JSON body on an error response that has none of ours: no body type, or a
/// framework's text (an extractor's rejection, such as a path segment that is not UTF-8, is
/// `text/plain`). Every error the server sends is then the one JSON error body.
fn with_json_error(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if status < StatusCode::BAD_REQUEST || json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let error = ApiError::for_status(status);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(error.body()))
}

/// At most `requests` requests, and at most `kib` KiB of declared bodies, are handled at once;
/// more get 503 with `Retry-After: 1` at once instead of queueing (a queued request holds its body
/// in memory). The byte budget is what bounds memory under a flood of large stores: each body is
/// held a few times over while it is parsed, compressed and sealed.
#[derive(Debug, Clone)]
pub(crate) struct InFlightLimit {
    requests: Arc<Semaphore>,
    kib: Arc<Semaphore>,
    kib_total: u32,
    body_limit: usize,
}

impl InFlightLimit {
    pub(crate) fn new(requests: usize, bytes: usize, body_limit: usize) -> Self {
        let kib_total = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        Self {
            requests: Arc::new(Semaphore::new(requests)),
            kib: Arc::new(Semaphore::new(kib_total as usize)),
            kib_total,
            body_limit,
        }
    }
}
