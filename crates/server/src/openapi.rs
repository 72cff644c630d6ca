//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the body types (`sealcache-api`'s responses, the routes' request fields), and
//! served at `GET /openapi.json` (public: it describes the API, never a key or an entry).
//!
//! Every operation also lists the errors any request can get (`400`, `408`, `413`, `414`, `415`,
//! `431`, `500`, `503`, and for the authenticated ones `401`, `403`, `429`), each with the one error
//! body (`ErrorBody`), added in one place (the `CommonErrors` modifier) rather than per handler.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The name of the `X-API-Key` security scheme.
pub const API_KEY_SCHEME: &str = "api_key";
/// The name of the `Authorization: Bearer` security scheme.
pub const BEARER_SCHEME: &str = "bearer";

/// The generated document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sealcache-server",
        description = "The sealed AI response cache over Redis: lookups and stores of sealed entries, leases, live streams, erasure, and the observed security posture. docs/api.md is the prose companion of this document."
    ),
    paths(
        crate::routes::health,
        crate::routes::lookup,
        crate::routes::store,
        crate::routes::invalidate,
        crate::routes::security_status,
        crate::routes::metrics_json,
        crate::routes::metrics_text,
        crate::routes::lease::release,
        crate::routes::live::append,
        crate::routes::tenancy::erase_subject,
        crate::routes::tenancy::erase_tenant,
        openapi_json,
    ),
    components(schemas(sealcache_api::ErrorBody)),
    modifiers(&SecuritySchemes, &CommonErrors),
    tags(
        (name = "cache", description = "Sealed entries: lookup, store, leases, live streams"),
        (name = "tenancy", description = "Erasure of a subject's or a tenant's data"),
        (name = "operations", description = "Health, security status, metrics, invalidation, this document")
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The document, as served.
#[must_use]
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// Adds the two ways to present an API key.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds the errors every request can get to each operation (the authentication errors to the
/// authenticated ones), unless the operation documents the code itself.
struct CommonErrors;

/// Errors any request can get, before or regardless of its endpoint.
const ANY_REQUEST: &[(&str, &str)] = &[
    (
        "400",
        "The request or its body is malformed, has an unknown or repeated member, or a value out of range",
    ),
    ("408", "The request took longer than the request timeout"),
    ("413", "The body is over the limit"),
    ("414", "The request target is too long"),
    ("415", "The body is not `application/json`"),
    ("431", "The header section is too large"),
    (
        "500",
        "An internal error (details only in the server's log)",
    ),
    (
        "503",
        "Redis is unavailable or the server is at its in-flight limit",
    ),
];

/// Errors of the authenticated endpoints.
const AUTHENTICATED: &[(&str, &str)] = &[
    ("401", "Missing or wrong API key"),
    ("403", "The key's scopes do not allow this operation"),
    ("429", "Too many failed API-key attempts from this peer"),
];

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let codes =
                    ANY_REQUEST
                        .iter()
                        .chain(if authenticated { AUTHENTICATED } else { &[] });
                for (code, description) in codes {
                    operation
                        .responses
                        .responses
                        .entry((*code).to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content(
                                    "application/json",
                                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                                )
                                .into()
                        });
                }
            }
        }
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> Response {
    // Generated once per process: the document is fixed at build time.
    static JSON: std::sync::OnceLock<Option<axum::body::Bytes>> = std::sync::OnceLock::new();
    match JSON.get_or_init(|| serde_json::to_vec(&document()).ok().map(Into::into)) {
        Some(json) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json.clone(),
        )
            .into_response(),
        None => crate::error::ApiError::Internal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_endpoint_and_its_errors() {
        let document = serde_json::to_value(document()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = document["paths"].as_object().unwrap();
        let mut operations = Vec::new();
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                let authenticated = operation.get("security").is_some();
                // Every operation documents the errors any request can get; the authenticated
                // ones also 401, 403 and 429, each with the one error body.
                for code in ["400", "408", "413", "500", "503"] {
                    assert!(responses.contains_key(code), "{method} {path}: no {code}");
                }
                for code in ["401", "403", "429"] {
                    assert_eq!(
                        responses.contains_key(code),
                        authenticated,
                        "{method} {path}: {code}"
                    );
                }
                assert!(
                    operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .is_some_and(|r| r.ends_with("/ErrorBody")),
                    "{method} {path}: 400 without the error body"
                );
                operations.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        operations.sort();
        assert_eq!(
            operations,
            [
                "DELETE /v1/cache/leases/{token}",
                "DELETE /v1/subjects/{subject}",
                "DELETE /v1/tenants/{tenant}",
                "GET /health",
                "GET /internal/cache/metrics",
                "GET /internal/cache/security-status",
                "GET /metrics",
                "GET /openapi.json",
                "POST /internal/cache/invalidate",
                "POST /v1/cache/leases/{token}/events",
                "POST /v1/cache/lookup",
                "PUT /v1/cache/entries",
            ]
        );
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for name in [
            "SecurityStatusResponse",
            "LookupAnswer",
            "ErrorBody",
            "StoreFields",
        ] {
            assert!(schemas.contains_key(name), "no schema {name}");
        }
        // An event's rules are the server's: no other member, a name neither empty nor with CR
        // or LF, data without CR (the document allowed each of them while the server refused).
        let event = &schemas["SseEvent"];
        assert_eq!(event["additionalProperties"], false, "{event}");
        assert_eq!(event["required"], serde_json::json!(["data"]), "{event}");
        assert_eq!(
            event["properties"]["data"]["pattern"], "^[^\\r]*$",
            "{event}"
        );
        assert_eq!(event["properties"]["event"]["minLength"], 1, "{event}");
        let schemes = document["components"]["securitySchemes"]
            .as_object()
            .unwrap();
        assert_eq!(schemes[API_KEY_SCHEME]["name"], "X-API-Key");
        assert_eq!(schemes[BEARER_SCHEME]["scheme"], "bearer");
    }
}
