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
    /// 401: missing or wrong API key.
    Unauthorized,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 503: Redis is unavailable, or refused the write; nothing was stored or removed.
    Unavailable,
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
            ApiError::MalformedJson | ApiError::InvalidRequest(_) | ApiError::InvalidOperation => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
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
            ApiError::Unauthorized => "unauthorized",
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
