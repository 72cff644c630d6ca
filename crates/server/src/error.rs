//! API errors: a fixed status and body per variant; details go to `tracing` only.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Longest unknown field name an error shows (longer ones are cut, marked with `...`).
pub(crate) const MAX_SHOWN_FIELD_NAME: usize = 64;

/// Most header fields a request may have; one more is answered 431 [`ApiError::TooManyHeaders`].
/// It is hyper's own limit, kept at its default: setting it moves every request's header parsing
/// from the stack to the heap. (`crate::conn_io` tells its 431 from the byte limit's.)
pub(crate) const MAX_HEADER_FIELDS: usize = 100;

/// Every error the API answers with: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body is not valid JSON.
    MalformedJson,
    /// 400: a required field is missing or has the wrong type.
    InvalidRequest(&'static str),
    /// 400: the body has a member the endpoint does not take. Carries the member's name when it is
    /// printable ASCII, cut to 64 characters (a name is the only text of a request an error ever
    /// shows); otherwise the message says the name is not shown.
    UnknownField(Option<String>),
    /// 400: a member appears more than once in one JSON object: the top-level field `field`
    /// (`nested: false`), or a member of any object inside the field `field` (`nested: true`,
    /// named by the field only: the names inside it are the client's).
    DuplicateMember {
        /// Our field: the duplicated one, or the one the duplicate is inside.
        field: &'static str,
        /// Whether the duplicate is inside `field` rather than `field` itself.
        nested: bool,
    },
    /// 400: the operation name is invalid.
    InvalidOperation,
    /// 400: the request could not be parsed as HTTP (answered before routing).
    MalformedRequest,
    /// 401: missing or wrong API key.
    Unauthorized,
    /// 403: the API key is valid but its scopes do not allow this operation.
    Forbidden,
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
    /// 431: the header section is over the byte limit.
    HeadersTooLarge,
    /// 431: the request has more header fields than the limit (100, hyper's).
    TooManyHeaders,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 409: the lease token no longer holds its lease (released, or expired); nothing was
    /// published with it.
    LeaseLost,
    /// 503: Redis is unavailable, or refused the write; nothing was stored or removed.
    Unavailable,
    /// 503: the change could not be announced to the other replicas (the L1 invalidation could
    /// not be published): a store was undone; a removal has happened in Redis, but other
    /// replicas stop serving their copies only when their own heartbeat fails.
    InvalidationNotPublished,
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
            | ApiError::UnknownField(_)
            | ApiError::DuplicateMember { .. }
            | ApiError::InvalidOperation
            | ApiError::MalformedRequest => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::TooManyAuthFailures => StatusCode::TOO_MANY_REQUESTS,
            ApiError::HeadersTooLarge | ApiError::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable | ApiError::InvalidationNotPublished => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::StoreFull => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::LeaseLost => StatusCode::CONFLICT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson => "malformed_json",
            ApiError::InvalidRequest(_)
            | ApiError::UnknownField(_)
            | ApiError::DuplicateMember { .. } => "invalid_request",
            ApiError::InvalidOperation => "invalid_operation",
            ApiError::MalformedRequest => "malformed_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::UriTooLong => "uri_too_long",
            ApiError::TooManyAuthFailures => "too_many_auth_failures",
            ApiError::HeadersTooLarge => "headers_too_large",
            ApiError::TooManyHeaders => "too_many_headers",
            ApiError::Overloaded => "overloaded",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable => "unavailable",
            ApiError::InvalidationNotPublished => "invalidation_not_published",
            ApiError::StoreFull => "store_full",
            ApiError::LeaseLost => "lease_lost",
            ApiError::Internal => "internal",
        }
    }

    /// The message: fixed text, never input, but for the name of an unknown field (see
    /// [`ApiError::UnknownField`]).
    #[must_use]
    pub fn message(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            ApiError::MalformedJson => "the request body is not valid JSON",
            ApiError::InvalidRequest(what) => what,
            ApiError::UnknownField(Some(name)) => {
                return Cow::Owned(format!("unknown field \"{name}\""));
            }
            ApiError::UnknownField(None) => {
                "unknown field (its name is not shown: it is not printable ASCII)"
            }
            ApiError::DuplicateMember {
                field,
                nested: false,
            } => return Cow::Owned(format!("member \"{field}\" appears more than once")),
            ApiError::DuplicateMember {
                field,
                nested: true,
            } => {
                return Cow::Owned(format!(
                    "an object in \"{field}\" has a member that appears more than once"
                ));
            }
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
            ApiError::TooManyHeaders => "the request has more than 100 header fields",
            ApiError::Overloaded => "the server is at its request limit; retry shortly",
            ApiError::Unauthorized => {
                "a valid API key is required (Authorization: Bearer KEY or X-API-Key: KEY)"
            }
            ApiError::Forbidden => "this API key's scopes do not allow this operation",
            ApiError::PayloadTooLarge => "the request body is over the size limit",
            ApiError::UnsupportedMediaType => "the request body must be application/json",
            ApiError::Unavailable => "the cache store is unavailable; nothing was changed",
            ApiError::InvalidationNotPublished => {
                "the other replicas could not be told of this change: a store is undone; a removal reached Redis, but replicas may serve their copies until their coherence check fails"
            }
            ApiError::StoreFull => "the cache store is full; nothing was stored",
            ApiError::LeaseLost => {
                "the lease token no longer holds its lease; nothing was published"
            }
            ApiError::Internal => "internal error",
        })
    }

    /// [`ApiError::UnknownField`] for the member `name`: shown if it is printable ASCII, cut to
    /// 64 characters.
    #[must_use]
    pub(crate) fn unknown_field(name: &str) -> Self {
        if !name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return ApiError::UnknownField(None);
        }
        // Printable ASCII: every character is one byte, so any index is a boundary.
        ApiError::UnknownField(Some(match name.get(..MAX_SHOWN_FIELD_NAME) {
            Some(head) if name.len() > MAX_SHOWN_FIELD_NAME => format!("{head}..."),
            _ => name.to_owned(),
        }))
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
            403 => ApiError::Forbidden,
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

    /// The JSON body, typed.
    #[must_use]
    pub fn error_body(&self) -> sealcache_api::ErrorBody {
        sealcache_api::ErrorBody::new(self.code(), self.message())
    }

    /// The JSON body.
    #[must_use]
    pub fn body(&self) -> String {
        serde_json::to_string(&self.error_body()).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.error_body())).into_response()
    }
}

impl From<sealcache::Error> for ApiError {
    fn from(err: sealcache::Error) -> Self {
        match err {
            sealcache::Error::InvalidOperation => ApiError::InvalidOperation,
            sealcache::Error::InvalidKey => ApiError::InvalidRequest("invalid key"),
            sealcache::Error::Unavailable | sealcache::Error::Connect(_) => ApiError::Unavailable,
            // The other replicas could not be told (their L1 would keep the replaced answer):
            // refused as unavailable, and counted as `config_weak` by the cache.
            sealcache::Error::InvalidationNotPublished => {
                tracing::warn!("a change was refused: its L1 invalidation could not be published");
                ApiError::InvalidationNotPublished
            }
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
            // Fixed texts of the cache's own (they name the rule, never the input).
            sealcache::Error::InvalidEvent(why) => ApiError::InvalidRequest(why),
            sealcache::Error::InvalidLeaseToken => ApiError::InvalidRequest("invalid lease token"),
            sealcache::Error::LeaseLost => ApiError::LeaseLost,
            sealcache::Error::LeaseNotForRequest => {
                ApiError::InvalidRequest("lease.token belongs to another request")
            }
            sealcache::Error::InvalidSubject => ApiError::InvalidRequest(
                "subject must be 1 to 1024 bytes without control characters",
            ),
            sealcache::Error::InvalidTenant => {
                ApiError::InvalidRequest("tenant must be 1 to 256 bytes without control characters")
            }
            sealcache::Error::SharedWithSubject => {
                ApiError::InvalidRequest("a shared entry has no subject")
            }
            sealcache::Error::DataKeyUnavailable => ApiError::Unavailable,
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_ascii_field_names_are_shown() {
        assert_eq!(
            ApiError::unknown_field("optoins").message(),
            r#"unknown field "optoins""#
        );
        let long = "x".repeat(300);
        let shown = ApiError::unknown_field(&long).message().into_owned();
        assert_eq!(
            shown,
            format!(r#"unknown field "{}...""#, &long[..MAX_SHOWN_FIELD_NAME])
        );
        for hidden in ["naïve", "tab\there", "new\nline", "\u{7f}", "ключ"] {
            assert_eq!(
                ApiError::unknown_field(hidden),
                ApiError::UnknownField(None)
            );
            let message = ApiError::unknown_field(hidden).message();
            assert!(!message.contains(hidden), "{message}");
        }
        assert_eq!(ApiError::unknown_field("").message(), r#"unknown field """#);
    }

    #[test]
    fn the_header_limits_have_their_own_codes_and_messages() {
        let count = ApiError::TooManyHeaders;
        let bytes = ApiError::HeadersTooLarge;
        assert_eq!(count.status(), bytes.status());
        assert_ne!(count.code(), bytes.code());
        assert!(
            count
                .message()
                .contains(&format!("{MAX_HEADER_FIELDS} header fields")),
            "{}",
            count.message()
        );
        assert_eq!(
            ApiError::DuplicateMember {
                field: "options",
                nested: true
            }
            .body(),
            r#"{"error":{"code":"invalid_request","message":"an object in \"options\" has a member that appears more than once"}}"#
        );
    }
}
