//! The server binary is strict about what it accepts, on loopback against a real TLS + mTLS + ACL
//! redis-server, and says precisely why it refuses: a request that will be refused gets its final
//! answer instead of `100 Continue`, an HTTP/2 preface gets the JSON 400, too many header fields
//! have their own 431, and a JSON body with a duplicated or unknown member is a 400 that names our
//! field (never the client's values), with nothing stored.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::blocking::Client;
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use serde_json::{Value, json};

#[path = "common/server.rs"]
mod common;
#[path = "common/raw.rs"]
mod raw;
use common::{Server, Stack, start_server};
use raw::{Conn, json_error, read_to_close};

/// The server's default body limit (1 MiB).
const BODY_LIMIT: usize = 1 << 20;

struct Fixture {
    /// Kept alive for the server (its redis-server and files).
    _stack: Stack,
    server: Server,
    key: String,
}

impl Fixture {
    fn start() -> Self {
        let stack = Stack::start();
        let vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
        let server = start_server(&vars, Some(&stack.path().join("server.log")));
        let key = stack.secret(layout::API_KEY);
        Self {
            _stack: stack,
            server,
            key,
        }
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.server.port, Duration::from_secs(5))
    }

    /// A raw request's complete answer (the connection closed after it).
    fn raw(&self, request: &[u8]) -> String {
        let mut conn = self.conn();
        conn.send(request);
        read_to_close(conn.stream).0
    }

    /// `body` sent as JSON to `path` with the valid key: status and body.
    fn send(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let response = Client::new()
            .request(method, format!("{}{path}", self.server.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap())
    }
}

#[test]
fn a_request_that_will_be_refused_gets_its_answer_instead_of_100_continue() {
    let fx = Fixture::start();
    let key = format!("Authorization: Bearer {}\r\n", fx.key);
    let json = "Content-Type: application/json\r\n";
    let cases: [(&str, String, usize, u16, &str); 7] = [
        (
            "POST /v1/cache/lookup",
            json.to_owned(),
            40,
            401,
            "unauthorized",
        ),
        (
            "PUT /v1/cache/entries",
            format!("{json}X-API-Key: wrong\r\n"),
            40,
            401,
            "unauthorized",
        ),
        (
            "POST /v1/cache/lookup",
            format!("{key}Content-Type: text/plain\r\n"),
            40,
            415,
            "unsupported_media_type",
        ),
        // Over the limit but within the size whose body would be read and discarded.
        (
            "PUT /v1/cache/entries",
            format!("{key}{json}"),
            2 * BODY_LIMIT,
            413,
            "payload_too_large",
        ),
        (
            "PUT /v1/cache/entries",
            format!("{key}{json}"),
            100 * BODY_LIMIT,
            413,
            "payload_too_large",
        ),
        (
            "POST /health",
            json.to_owned(),
            40,
            405,
            "method_not_allowed",
        ),
        ("POST /nope", format!("{key}{json}"), 40, 404, "not_found"),
    ];
    for (line, headers, length, status, code) in cases {
        let mut conn = fx.conn();
        conn.send(
            format!(
                "{line} HTTP/1.1\r\nHost: x\r\n{headers}Expect: 100-continue\r\nContent-Length: {length}\r\n\r\n"
            )
            .as_bytes(),
        );
        let response = conn
            .response()
            .unwrap_or_else(|| panic!("{line}: no answer without a body"));
        assert_eq!(response.status, status, "{line} {headers}: {response:?}");
        assert_eq!(response.code(), code, "{line}");
        assert!(response.header("x-request-id").is_some(), "{response:?}");
    }

    // A request that will be served gets `100 Continue`, then its answer once the body is sent.
    let body = r#"{"text": "continue", "operation": "qa"}"#;
    let mut conn = fx.conn();
    conn.send(
        format!(
            "POST /v1/cache/lookup HTTP/1.1\r\nHost: x\r\n{key}{json}Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = conn.response().unwrap();
    assert_eq!(interim.status, 100, "{interim:?}");
    conn.send(body.as_bytes());
    let answer = conn.response().unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), json!({"hit": false}));
}

#[test]
fn an_http2_preface_gets_the_documented_json_400() {
    let fx = Fixture::start();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // As the first bytes of a connection (prior knowledge), alone and followed by a SETTINGS frame
    // as h2 clients send it.
    let with_settings = [&preface[..], &[0, 0, 0, 4, 0, 0, 0, 0, 0]].concat();
    for request in [&preface[..], &with_settings] {
        let response = fx.raw(request);
        let (status, body, _) = json_error(&response);
        assert_eq!(status, 400, "{response}");
        assert_eq!(body["error"]["code"], "malformed_request");
    }
    // After a request on a kept-alive connection.
    let mut conn = fx.conn();
    conn.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().unwrap().status, 200);
    conn.send(preface);
    let response = conn.response().unwrap();
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.code(), "malformed_request");
    assert!(response.header("x-request-id").is_some());
}

#[test]
fn too_many_header_fields_have_their_own_431_apart_from_too_many_bytes() {
    let fx = Fixture::start();
    let with_headers = |n: usize, line: &dyn Fn(usize) -> String| {
        let mut request = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
        for i in 1..n {
            request.push_str(&line(i));
        }
        request.push_str("\r\n");
        request
    };
    let small = |i: usize| format!("X-H-{i}: v\r\n");
    let tiny = |_: usize| "a:\r\n".to_owned();
    let wide = |i: usize| format!("X-W-{i}: {}\r\n", "w".repeat(1000));

    // 100 header fields (Host included) are served.
    let mut conn = fx.conn();
    conn.send(with_headers(100, &small).as_bytes());
    assert_eq!(conn.response().unwrap().status, 200);

    // 101 small ones, or 2000 tiny ones (8 KB, under the byte limit): too many fields.
    for request in [with_headers(101, &small), with_headers(2000, &tiny)] {
        let response = fx.raw(request.as_bytes());
        let (status, body, _) = json_error(&response);
        assert_eq!(status, 431, "{response}");
        assert_eq!(body["error"]["code"], "too_many_headers", "{response}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("100 header fields"), "{message}");
    }
    // 30 wide ones (30 KB, under the field limit) or one huge one: too many bytes.
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    for request in [with_headers(30, &wide), huge] {
        let response = fx.raw(request.as_bytes());
        let (status, body, _) = json_error(&response);
        assert_eq!(status, 431, "{response}");
        assert_eq!(body["error"]["code"], "headers_too_large", "{response}");
    }
    // The same on a kept-alive connection, after a request with a body.
    for (request, code) in [
        (with_headers(101, &small), "too_many_headers"),
        (with_headers(30, &wide), "headers_too_large"),
    ] {
        let mut conn = fx.conn();
        let body = r#"{"text": "kept alive", "operation": "qa"}"#;
        conn.send(
            format!(
                "POST /v1/cache/lookup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                fx.key,
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(conn.response().unwrap().status, 200);
        conn.send(request.as_bytes());
        let response = conn.response().unwrap();
        assert_eq!(response.status, 431, "{response:?}");
        assert_eq!(response.code(), code);
    }
}

#[test]
fn duplicated_or_unknown_members_are_refused_naming_only_our_fields_and_nothing_is_stored() {
    let fx = Fixture::start();
    use reqwest::Method;
    let refused = |method: Method, path: &str, body: &str| -> String {
        let (status, answer) = fx.send(method, path, body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(
            answer["error"]["code"], "invalid_request",
            "{body}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap().to_owned();
        for secret in ["secret-value", "secret-name", "other-value"] {
            assert!(!message.contains(secret), "{message} echoes input");
        }
        message
    };
    let lookup = "/v1/cache/lookup";
    let entries = "/v1/cache/entries";

    // Duplicates: at the top level (the member is ours, so it is named) ...
    let message = refused(
        Method::POST,
        lookup,
        r#"{"text": "secret-value", "text": "other-value", "operation": "qa"}"#,
    );
    assert_eq!(message, r#"member "text" appears more than once"#);
    // ... and in `options` at any depth, also when spelled with an escape (never named: the
    // names inside options are the client's).
    for options in [
        r#"{"secret-name": 1, "secret-name": 2}"#,
        r#"{"a": [{"b": {"secret-name": 1, "secret-name": "secret-value"}}]}"#,
        r#"{"a": 1, "\u0061": 2}"#,
    ] {
        let body = format!(r#"{{"text": "t", "operation": "qa", "options": {options}}}"#);
        let message = refused(Method::POST, lookup, &body);
        assert!(
            message.contains(r#""options""#) && message.contains("more than once"),
            "{message}"
        );
    }

    // Unknown fields are named when the name is short printable ASCII.
    let message = refused(
        Method::POST,
        lookup,
        r#"{"text": "t", "operation": "qa", "optoins": {"secret-name": 1}}"#,
    );
    assert_eq!(message, r#"unknown field "optoins""#);
    let long = "f".repeat(300);
    let message = refused(
        Method::POST,
        lookup,
        &format!(r#"{{"text": "t", "operation": "qa", "{long}": 1}}"#),
    );
    assert!(message.starts_with(r#"unknown field "ffff"#), "{message}");
    assert!(message.len() < 120, "{message}");
    let message = refused(
        Method::POST,
        lookup,
        r#"{"text": "t", "operation": "qa", "secret-namé": 1}"#,
    );
    assert!(message.starts_with("unknown field ("), "{message}");
    refused(
        Method::POST,
        "/internal/cache/invalidate",
        r#"{"operation": "qa", "force": true}"#,
    );

    // A refused store stores nothing: a later lookup of the same request misses.
    let request = r#""text": "strict store", "operation": "qa""#;
    for body in [
        format!(r#"{{{request}, "response": {{"a": 1}}, "ttl": 60}}"#),
        format!(r#"{{{request}, "response": {{"a": 1}}, "response": {{"a": 2}}}}"#),
        format!(r#"{{{request}, "options": {{"k": 1, "k": 1}}, "response": {{"a": 1}}}}"#),
    ] {
        refused(Method::PUT, entries, &body);
        let (status, answer) = fx.send(Method::POST, lookup, &format!("{{{request}}}"));
        assert_eq!((status, answer), (200, json!({"hit": false})));
    }

    // `response` is stored as given, byte for byte: its members are the client's data, not
    // fields of ours.
    let stored = r#"{"a": 1, "a": 2}"#;
    let (status, _) = fx.send(
        Method::PUT,
        entries,
        &format!(r#"{{{request}, "response": {stored}}}"#),
    );
    assert_eq!(status, 201);
    let answer = Client::new()
        .post(format!("{}{lookup}", fx.server.base))
        .bearer_auth(&fx.key)
        .header("content-type", "application/json")
        .body(format!("{{{request}}}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(answer.contains(stored), "{answer}");
}

/// Starts the server on `stack` with `vars`, stores and finds one entry through it, and returns
/// its security status (the status probe opens redis-rs TLS connections of its own).
fn serve_and_status(stack: &Stack, vars: &[(String, String)]) -> Value {
    let server = start_server(vars, Some(&stack.path().join("server.log")));
    let key = stack.secret(layout::API_KEY);
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = Client::new()
            .request(method, format!("{}{path}", server.base))
            .bearer_auth(&key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().unwrap(),
        )
    };
    let (stored, body) = send(
        reqwest::Method::PUT,
        "/v1/cache/entries",
        Some(json!({"text": "tls roots", "operation": "qa", "response": {"a": 1}})),
    );
    assert_eq!(stored, 201, "{body}");
    let (found, body) = send(
        reqwest::Method::POST,
        "/v1/cache/lookup",
        Some(json!({"text": "tls roots", "operation": "qa"})),
    );
    assert_eq!((found, &body["hit"]), (200, &json!(true)), "{body}");
    let (status, body) = send(
        reqwest::Method::GET,
        "/internal/cache/security-status",
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// With no CA pinned, the server trusts the system's CA store, read once (`SSL_CERT_FILE` names
/// the store here: the deployment's CA, and nothing else): it stores, finds, and the status
/// probe's anonymous connection verifies the same way. The store handed to redis-rs is the
/// system's, never redis-rs's built-in (webpki) roots, which know nothing of this CA.
#[test]
fn with_no_ca_pinned_the_system_ca_store_is_trusted() {
    let stack = Stack::start();
    let mut vars: Vec<(String, String)> = stack
        .server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()))
        .into_iter()
        .filter(|(k, _)| k != "REDIS_TLS_CA_PATH")
        .collect();
    let ca = stack.path().join(layout::CA_CERT);
    vars.push(("SSL_CERT_FILE".into(), ca.display().to_string()));
    let status = serve_and_status(&stack, &vars);
    // (The status's own handshake probe observes TLS only against a pinned CA: without one,
    // `tls_negotiated` stays unobserved.)
    assert_eq!(status["default_user_disabled"], json!(true), "{status}");
}

/// With a pinned CA the system's CA store is never read: the data connection and the status
/// probe's own connections (its anonymous `PING` through redis-rs) connect while `SSL_CERT_FILE`
/// and `SSL_CERT_DIR` name nothing. redis-rs reads that store on every TLS connection unless told
/// otherwise, on an async worker: a status call or a password change stalled every request in
/// flight for the length of hundreds of file reads (a store during a cluster rotation timed out).
#[test]
fn a_pinned_ca_is_all_a_tls_connection_reads_the_system_ca_store_is_never_scanned() {
    let stack = Stack::start();
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    let nowhere = stack.path().join("no-such-ca-store");
    vars.push((
        "SSL_CERT_FILE".into(),
        nowhere.join("ca.pem").display().to_string(),
    ));
    vars.push(("SSL_CERT_DIR".into(), nowhere.display().to_string()));
    let status = serve_and_status(&stack, &vars);
    assert_eq!(
        status["default_user_disabled"],
        json!(true),
        "the anonymous probe's own TLS connection was made: {status}"
    );
}
