//! Request-level protections, as middleware: a declared oversize body refused at once, load
//! shedding at the in-flight limit, client request ids bounded, and the documented JSON error body
//! on every error response a layer below the handlers produced (405, 408, ...).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The header that carries request ids.
pub(crate) const REQUEST_ID: &str = "x-request-id";
/// Longest client-supplied request id kept (visible ASCII only).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A declared `Content-Length` over the limit is answered 413 before any byte of the body is read
/// (and the connection is closed, so the body is never drained).
pub(crate) async fn declared_length(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let mut response = ApiError::PayloadTooLarge.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
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

pub(crate) async fn shed(
    State(limit): State<InFlightLimit>,
    request: Request,
    next: Next,
) -> Response {
    // The liveness probe is never shed: an overloaded server is alive.
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    let bytes = match declared {
        Some(n) => n.min(limit.body_limit),
        None if chunked => limit.body_limit,
        None => 0,
    };
    let kib = u32::try_from(bytes / 1024 + 1)
        .unwrap_or(u32::MAX)
        .min(limit.kib_total);
    let permits = (
        limit.requests.try_acquire(),
        limit.kib.try_acquire_many(kib),
    );
    let (Ok(_request), Ok(_bytes)) = permits else {
        let mut response = ApiError::Overloaded.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
}

/// A client's `x-request-id` is kept only if it is 1 to 128 visible ASCII characters and the only
/// one; otherwise it is dropped and the server makes one (a log or trace field must not carry
/// unbounded or control text).
pub(crate) async fn bound_request_id(mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let mut values = headers.get_all(REQUEST_ID).iter();
    let acceptable = match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => {
            let b = v.as_bytes();
            (1..=MAX_REQUEST_ID_LEN).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic())
        }
        (Some(_), Some(_)) => false,
    };
    if !acceptable {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Error responses without a body of ours (the router's 405, a timeout's 408, ...) get the
/// documented JSON error for their status.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if status < StatusCode::BAD_REQUEST || response.headers().contains_key(header::CONTENT_TYPE) {
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
