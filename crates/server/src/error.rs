//! API errors: a fixed status and body per variant; details go to `tracing` only.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Every error the API answers with: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body is not valid JSON.
    MalformedJson,
    /// 400: a required field is missing or has the wrong type.
    InvalidRequest(&'static str),
    /// 400: the operation name is invalid.
    InvalidOperation,
    /// 400: the request could not be parsed as HTTP (answered before routing).
    MalformedRequest,
    /// 401: missing or wrong API key.
    Unauthorized,
    /// 404: no such endpoint.
    NotFound,
    /// 405: the endpoint exists, the method does not.
    MethodNotAllowed,
    /// 408: the request (body included) took longer than the request timeout.
    RequestTimeout,
    /// 414: the request target is too long.
    UriTooLong,
    /// 429: too many failed API-key attempts from this peer; retry after the block.
    TooManyAuthFailures,
    /// 431: the header section is over the limit.
    HeadersTooLarge,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 503: Redis is unavailable, or refused the write; nothing was stored or removed.
    Unavailable,
    /// 503: the server is at its in-flight request limit; retry shortly.
    Overloaded,
    /// 507: Redis is out of memory and may not evict (`maxmemory` with `noeviction`); nothing was
    /// stored.
    StoreFull,
    /// 500: anything else (details in the server log only).
    Internal,
}

impl ApiError {
    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson
            | ApiError::InvalidRequest(_)
            | ApiError::InvalidOperation
            | ApiError::MalformedRequest => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::TooManyAuthFailures => StatusCode::TOO_MANY_REQUESTS,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StoreFull => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson => "malformed_json",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidOperation => "invalid_operation",
            ApiError::MalformedRequest => "malformed_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::UriTooLong => "uri_too_long",
            ApiError::TooManyAuthFailures => "too_many_auth_failures",
            ApiError::HeadersTooLarge => "headers_too_large",
            ApiError::Overloaded => "overloaded",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable => "unavailable",
            ApiError::StoreFull => "store_full",
            ApiError::Internal => "internal",
        }
    }

    /// The fixed message (never echoes input).
    #[must_use]
    pub fn message(&self) -> &'static str {
        match self {
            ApiError::MalformedJson => "the request body is not valid JSON",
            ApiError::InvalidRequest(what) => what,
            ApiError::InvalidOperation => "operation must be 1-64 characters of a-z, 0-9, _ or -",
            ApiError::MalformedRequest => "the request is not valid HTTP/1.1",
            ApiError::NotFound => "no such endpoint",
            ApiError::MethodNotAllowed => "this endpoint does not accept that method",
            ApiError::RequestTimeout => "the request took too long to arrive",
            ApiError::UriTooLong => "the request target is over the size limit",
            ApiError::TooManyAuthFailures => {
                "too many failed API-key attempts from this address; retry later"
            }
            ApiError::HeadersTooLarge => "the request headers are over the size limit",
            ApiError::Overloaded => "the server is at its request limit; retry shortly",
            ApiError::Unauthorized => {
                "a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)"
            }
            ApiError::PayloadTooLarge => "the request body is over the size limit",
            ApiError::UnsupportedMediaType => "the request body must be application/json",
            ApiError::Unavailable => "the cache store is unavailable; nothing was changed",
            ApiError::StoreFull => "the cache store is full; nothing was stored",
            ApiError::Internal => "internal error",
        }
    }
}

impl ApiError {
    /// The error for a bare status that a layer below the handlers produced (hyper's parser, a
    /// timeout, the router's 405), so that every response has the documented body.
    #[must_use]
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => ApiError::MalformedRequest,
            401 => ApiError::Unauthorized,
            404 => ApiError::NotFound,
            405 => ApiError::MethodNotAllowed,
            408 => ApiError::RequestTimeout,
            413 => ApiError::PayloadTooLarge,
            414 => ApiError::UriTooLong,
            415 => ApiError::UnsupportedMediaType,
            429 => ApiError::TooManyAuthFailures,
            431 => ApiError::HeadersTooLarge,
            503 => ApiError::Overloaded,
            _ => ApiError::Internal,
        }
    }

    /// The JSON body.
    #[must_use]
    pub fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code(), "message": self.message()}}).to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.message()}});
        (self.status(), Json(body)).into_response()
    }
}

impl From<sealcache::Error> for ApiError {
    fn from(err: sealcache::Error) -> Self {
        match err {
            sealcache::Error::InvalidOperation => ApiError::InvalidOperation,
            sealcache::Error::InvalidKey => ApiError::InvalidRequest("invalid key"),
            sealcache::Error::Unavailable | sealcache::Error::Connect(_) => ApiError::Unavailable,
            sealcache::Error::WriteRefused {
                reason: sealcache::WriteRefusal::OutOfMemory,
            } => ApiError::StoreFull,
            sealcache::Error::WriteRefused { reason } => {
                tracing::warn!(reason = reason.as_str(), "Redis refused a write");
                ApiError::Unavailable
            }
            sealcache::Error::InvalidJson(_) => ApiError::InvalidRequest(
                "response must be JSON that can be returned exactly as given (no unpaired UTF-16 surrogate escapes)",
            ),
            sealcache::Error::Seal(sealcache_codec::Error::PlaintextTooLarge { .. }) => {
                ApiError::PayloadTooLarge
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::Internal
            }
        }
    }
}
