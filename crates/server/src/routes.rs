//! The HTTP endpoints (a contract: paths, fields and codes).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body: 415 unless `application/json`, 400 when malformed (fixed messages).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else if caused_by_timeout(&e) {
                ApiError::RequestTimeout
            } else {
                // The body could not be read as HTTP framed it (a bad chunk size, a body shorter
                // than its `Content-Length`): a framing error, not bad JSON.
                ApiError::MalformedRequest
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            if e.is_data() {
                ApiError::InvalidRequest("a required field is missing or has the wrong type")
            } else if serde_json::from_slice::<&RawValue>(&bytes).is_ok() {
                // Valid JSON whose fields cannot be read: options nested deeper than 127 levels, a
                // number a double cannot hold, an unpaired UTF-16 surrogate in a text field.
                ApiError::InvalidRequest(
                    "a field has a value the server cannot read (options nested over 127 levels, a number out of range, or an unpaired UTF-16 surrogate)",
                )
            } else {
                ApiError::MalformedJson
            }
        })
    }
}

/// Whether a body error comes from the body-read deadline (a stalled body is 408, not bad JSON).
fn caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestFields {
    text: String,
    operation: String,
    #[serde(default)]
    options: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

impl RequestFields {
    fn into_request(self) -> sealcache::AiRequest {
        sealcache::AiRequest {
            text: self.text,
            operation: self.operation,
            options: self.options.unwrap_or_default(),
            question: self.question,
            model: self.model,
        }
    }
}

/// `GET /health` (no auth; says nothing about the security posture).
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let up = state.cache.redis_available().await;
    let body = serde_json::json!({
        "status": if up { "ok" } else { "degraded" },
        "redis": if up { "connected" } else { "unavailable" },
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// A lookup's answer on a hit: the stored JSON text goes out as it is, byte for byte.
#[derive(Serialize)]
struct LookupHit<'a> {
    hit: bool,
    response: &'a RawValue,
    ttl_remaining_seconds: u64,
}

/// `POST /v1/cache/lookup`.
pub(crate) async fn lookup(
    State(state): State<AppState>,
    JsonBody(fields): JsonBody<RequestFields>,
) -> Result<Response, ApiError> {
    let request = fields.into_request();
    match state.cache.get(&request).await? {
        Some(hit) => {
            // Borrowed, never re-parsed into a `Value` (that would round numbers beyond double
            // precision and fail on escapes the store accepted); `RawValue` checks the syntax
            // without recursion, so deep nesting is fine.
            let response: &RawValue = serde_json::from_slice(hit.json_bytes()).map_err(|_| {
                tracing::error!("a stored value is not JSON text");
                ApiError::Internal
            })?;
            let body = LookupHit {
                hit: true,
                response,
                // Rounded to the nearest second, as Redis's TTL does (a fresh 7200 s entry is 7200).
                ttl_remaining_seconds: hit
                    .ttl_remaining()
                    .map_or(0, |d| (d.as_millis() as u64).saturating_add(500) / 1000),
            };
            let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::Internal)?;
            Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
        }
        None => Ok(Json(serde_json::json!({"hit": false})).into_response()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StoreFields {
    #[serde(flatten)]
    request: RequestFields,
    response: Box<RawValue>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

/// `PUT /v1/cache/entries`.
pub(crate) async fn store(
    State(state): State<AppState>,
    JsonBody(fields): JsonBody<StoreFields>,
) -> Result<Response, ApiError> {
    let ttl = fields.ttl_seconds.map(Duration::from_secs);
    if ttl.is_some_and(|t| t.is_zero() || t > Duration::from_secs(30 * 86_400)) {
        return Err(ApiError::InvalidRequest(
            "ttl_seconds must be between 1 and 2592000",
        ));
    }
    let json = sealcache::Bytes::copy_from_slice(fields.response.get().as_bytes());
    let used = state
        .cache
        .set_json(&fields.request.into_request(), json, ttl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"stored": true, "ttl_seconds": used.as_secs()})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct InvalidateFields {
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    confirm: Option<String>,
}

/// `POST /internal/cache/invalidate`.
pub(crate) async fn invalidate(
    State(state): State<AppState>,
    JsonBody(fields): JsonBody<InvalidateFields>,
) -> Result<Response, ApiError> {
    let removed = match (fields.operation, fields.all) {
        (Some(op), None | Some(false)) => state.cache.invalidate_operation(&op).await?,
        (None, Some(true)) => {
            let confirm = fields.confirm.unwrap_or_default();
            state.cache.clear(&confirm).await.map_err(|e| match e {
                sealcache::Error::ClearNotConfirmed => ApiError::InvalidRequest(
                    "clearing everything needs \"confirm\": \"invalidate-all\"",
                ),
                other => other.into(),
            })?
        }
        _ => {
            return Err(ApiError::InvalidRequest(
                "give either \"operation\" or \"all\": true with \"confirm\"",
            ));
        }
    };
    Ok(Json(serde_json::json!({"invalidated": removed})).into_response())
}

/// `GET /internal/cache/security-status`.
pub(crate) async fn security_status(State(state): State<AppState>) -> Response {
    let mut status = state.cache.security_status().await;
    let isolation = match &state.redis_host {
        Some((host, port)) => crate::isolation::observe(host, *port).await,
        None => crate::isolation::Isolation {
            isolated: false,
            detail: "no Redis host".into(),
        },
    };
    status.record_network_isolation(
        isolation.isolated,
        state.isolation_claimed,
        &isolation.detail,
    );
    Json(status).into_response()
}

/// `GET /internal/cache/metrics`.
pub(crate) async fn metrics_json(State(state): State<AppState>) -> Response {
    let monitor = state.cache.monitor();
    Json(serde_json::json!({
        "performance": monitor.performance_summary(),
        "security": monitor.security_summary(),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text of the OpenTelemetry instruments.
pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    match state.telemetry.render_prometheus() {
        Ok(Some(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(None) => ApiError::Internal.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "metrics rendering failed");
            ApiError::Internal.into_response()
        }
    }
}
