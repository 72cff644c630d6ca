//! Traces and security log records over OTLP/HTTP, against a test receiver decoding the protobuf
//! with the OpenTelemetry proto types: the caller's `traceparent` is honoured, the server span has
//! the HTTP attributes and children for the cache and each Redis command, no request text, key or
//! value appears in anything exported, a tampered value gives a `decrypt_failed` log record in the
//! request's trace, and a collector that hangs neither slows requests nor grows memory (drops are
//! counted).

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "common/server.rs"]
mod common;
use common::{Stack, start_server};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use sealcache_testkit::otlp::{self, receiver};
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";
const PROMPT: &str = "PROMPT-TEXT-never-exported-7f3a";
const ANSWER: &str = "ANSWER-VALUE-never-exported-91c2";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Any> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        Any::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        Any::IntValue(i) => Some(*i),
        _ => None,
    }
}

fn spans(got: &Mutex<otlp::Received>) -> Vec<Span> {
    got.lock()
        .unwrap()
        .traces
        .iter()
        .filter_map(|b| ExportTraceServiceRequest::decode(b.as_slice()).ok())
        .flat_map(|r| r.resource_spans)
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn log_records(
    got: &Mutex<otlp::Received>,
) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
    got.lock()
        .unwrap()
        .logs
        .iter()
        .filter_map(|b| ExportLogsServiceRequest::decode(b.as_slice()).ok())
        .flat_map(|r| r.resource_logs)
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records)
        .collect()
}

fn otel_vars(stack: &Stack, otlp_port: u16, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    vars.extend(
        [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp_port}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "200".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "600000".to_owned()),
            // L1 off: every lookup reaches Redis, so each has a Redis span.
            ("SEALCACHE_L1_CAPACITY", "0".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_lookup_in_a_callers_trace_has_server_cache_and_redis_spans_and_no_secrets() {
    let (otlp_port, got) = receiver();
    let stack = Stack::start();
    let server = start_server(&otel_vars(&stack, otlp_port, &[]), None);
    let http = reqwest::blocking::Client::new();
    let key = stack.secret(layout::API_KEY);
    let key = key.trim();
    let r = http
        .put(format!("{}/v1/cache/entries", server.base))
        .bearer_auth(key)
        .json(&json!({"text": PROMPT, "operation": "qa", "response": {"answer": ANSWER}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{}/v1/cache/lookup", server.base))
        .bearer_auth(key)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN}-01"))
        .header("tracestate", "vendor=value")
        .header("x-request-id", "trace-test-1")
        .json(&json!({"text": PROMPT, "operation": "qa"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["hit"], true);
    // A caller that did not sample its trace: head sampling (parent-based) creates no span.
    const UNSAMPLED: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
    let r = http
        .post(format!("{}/v1/cache/lookup", server.base))
        .bearer_auth(key)
        .header("traceparent", format!("00-{UNSAMPLED}-{PARENT_SPAN}-00"))
        .json(&json!({"text": PROMPT, "operation": "qa"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    let (server_span, trace) = wait_for("the lookup's spans", || {
        let all = spans(&got);
        let server_span = all
            .iter()
            .find(|s| hex(&s.trace_id) == TRACE_ID && s.kind == 2)?
            .clone();
        let trace: Vec<Span> = all
            .into_iter()
            .filter(|s| hex(&s.trace_id) == TRACE_ID)
            .collect();
        // The server span and its children (cache lookup, Redis GET) all arrived.
        (trace.iter().any(|s| s.kind == 3)).then_some((server_span, trace))
    });
    // Give the unsampled request's spans, if any were made, the same time to arrive.
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        spans(&got).iter().all(|s| hex(&s.trace_id) != UNSAMPLED),
        "an unsampled caller's request was traced"
    );
    // The server span: child of the caller's span, with the HTTP conventions.
    assert_eq!(hex(&server_span.parent_span_id), PARENT_SPAN);
    assert_eq!(server_span.trace_state, "vendor=value");
    assert_eq!(server_span.name, "POST /v1/cache/lookup");
    let a = &server_span.attributes;
    assert_eq!(text(a, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(text(a, "http.route").as_deref(), Some("/v1/cache/lookup"));
    assert_eq!(int(a, "http.response.status_code"), Some(200));
    assert_eq!(
        text(a, "http.request.header.x-request-id").as_deref(),
        Some("trace-test-1")
    );
    // The cache span is the server span's child; the Redis span the cache span's.
    let cache = trace
        .iter()
        .find(|s| s.name == "sealcache lookup")
        .expect("a cache lookup span");
    assert_eq!(cache.parent_span_id, server_span.span_id);
    assert_eq!(
        text(&cache.attributes, "sealcache.tier").as_deref(),
        Some("redis")
    );
    assert_eq!(
        attr(&cache.attributes, "sealcache.hit"),
        Some(&Any::BoolValue(true))
    );
    let redis = trace.iter().find(|s| s.kind == 3).unwrap();
    assert_eq!(redis.parent_span_id, cache.span_id);
    let r = &redis.attributes;
    assert_eq!(text(r, "db.system.name").as_deref(), Some("redis"));
    assert_eq!(text(r, "db.operation.name").as_deref(), Some("GET"));
    assert_eq!(text(r, "server.address").as_deref(), Some("localhost"));
    assert_eq!(int(r, "server.port"), Some(i64::from(stack.redis.port())));

    // Nothing exported holds the request text, the answer, the Redis key or the API key.
    let ring =
        sealcache_codec::Keyring::from_file(stack.path().join(layout::ENCRYPTION_KEYRING)).unwrap();
    let redis_key = sealcache::KeyScheme::new("ai_cache", ring.name_secret())
        .unwrap()
        .ai_key(&sealcache::AiRequest::new("qa", PROMPT))
        .unwrap();
    let digest = redis_key.rsplit(':').next().unwrap().to_owned();
    let everything: Vec<u8> = {
        let got = got.lock().unwrap();
        got.traces
            .iter()
            .chain(&got.logs)
            .chain(&got.metrics)
            .flatten()
            .copied()
            .collect()
    };
    let haystack = String::from_utf8_lossy(&everything);
    for secret in [PROMPT, ANSWER, redis_key.as_str(), digest.as_str(), key] {
        assert!(!haystack.contains(secret), "{secret:?} was exported");
    }
}

#[test]
fn a_tampered_value_gives_a_decrypt_failed_log_record_in_the_requests_trace() {
    const TAMPER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let (otlp_port, got) = receiver();
    let stack = Stack::start();
    let server = start_server(&otel_vars(&stack, otlp_port, &[]), None);
    let http = reqwest::blocking::Client::new();
    let key = stack.secret(layout::API_KEY);
    let key = key.trim();
    let r = http
        .put(format!("{}/v1/cache/entries", server.base))
        .bearer_auth(key)
        .json(&json!({"text": PROMPT, "operation": "qa", "response": {"answer": ANSWER}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let ring =
        sealcache_codec::Keyring::from_file(stack.path().join(layout::ENCRYPTION_KEYRING)).unwrap();
    let redis_key = sealcache::KeyScheme::new("ai_cache", ring.name_secret())
        .unwrap()
        .ai_key(&sealcache::AiRequest::new("qa", PROMPT))
        .unwrap();
    let mut admin = stack.admin();
    let mut raw: Vec<u8> = redis::cmd("GET").arg(&redis_key).query(&mut admin).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(&redis_key)
        .arg(raw)
        .query(&mut admin)
        .unwrap();
    let r = http
        .post(format!("{}/v1/cache/lookup", server.base))
        .bearer_auth(key)
        .header("traceparent", format!("00-{TAMPER_TRACE}-{PARENT_SPAN}-01"))
        .json(&json!({"text": PROMPT, "operation": "qa"}))
        .send()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["hit"], false);

    let record = wait_for("the decrypt_failed log record", || {
        log_records(&got)
            .into_iter()
            .find(|r| r.event_name == "sealcache.security.decrypt_failed")
    });
    assert_eq!(
        hex(&record.trace_id),
        TAMPER_TRACE,
        "linked to the request's trace"
    );
    assert!(!record.span_id.is_empty());
    assert_eq!(
        text(&record.attributes, "event.name").as_deref(),
        Some("sealcache.security.decrypt_failed")
    );
    assert_eq!(
        text(&record.attributes, "sealcache.security.type").as_deref(),
        Some("decrypt_failed")
    );
    assert_eq!(int(&record.attributes, "sealcache.security.count"), Some(1));
    // High severity: ERROR (17).
    assert_eq!(record.severity_number, 17);
    let body = format!("{:?}", record.body);
    for secret in [PROMPT, ANSWER, redis_key.as_str()] {
        assert!(!body.contains(secret), "{secret:?} in the record body");
    }
    // An API-key failure is a record too (outside any cache span, still in the request's trace).
    let r = http
        .get(format!("{}/internal/cache/metrics", server.base))
        .bearer_auth("wrong-key")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    wait_for("the api_auth_failed record", || {
        log_records(&got)
            .into_iter()
            .find(|r| r.event_name == "sealcache.security.api_auth_failed")
    });
}

/// A collector that accepts connections and never answers: exports hang until their timeout.
fn black_hole() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[test]
fn a_hanging_collector_neither_blocks_requests_nor_grows_the_queue() {
    let stack = Stack::start();
    let port = black_hole();
    let vars = otel_vars(
        &stack,
        port,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
            ("SEALCACHE_METRICS_PUBLIC", "true"),
        ],
    );
    let server = start_server(&vars, None);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let key = stack.secret(layout::API_KEY);
    let key = key.trim();
    // Each lookup makes at least three spans; a queue of 8 is full within a few requests, and
    // the export in flight hangs for 30 s. Every request still completes (the client would time
    // out after 10 s if one blocked on the exporter).
    let started = Instant::now();
    for i in 0..60 {
        let r = http
            .post(format!("{}/v1/cache/lookup", server.base))
            .bearer_auth(key)
            .json(&json!({"text": format!("question {i}"), "operation": "qa"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let elapsed = started.elapsed();
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let dropped: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("sealcache_telemetry_dropped")
                && l.contains("signal=\"spans\"")
                && l.contains("reason=\"queue_full\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no dropped-spans counter in /metrics:\n{metrics}"));
    assert!(
        dropped >= 100.0,
        "60 lookups make at least 180 spans; at most 8 queued plus one batch in flight: {dropped} dropped"
    );
    assert!(
        elapsed < Duration::from_secs(25),
        "60 lookups took {elapsed:?} while the collector hung"
    );
}

#[test]
fn a_collector_that_is_down_loses_spans_that_are_counted() {
    let stack = Stack::start();
    // Nothing listens there: every export is refused.
    let port = free_port();
    let vars = otel_vars(
        &stack,
        port,
        &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("SEALCACHE_METRICS_PUBLIC", "true"),
        ],
    );
    let server = start_server(&vars, None);
    let http = reqwest::blocking::Client::new();
    let key = stack.secret(layout::API_KEY);
    for i in 0..5 {
        let r = http
            .post(format!("{}/v1/cache/lookup", server.base))
            .bearer_auth(key.trim())
            .json(&json!({"text": format!("q {i}"), "operation": "qa"}))
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "requests are answered while the collector is down"
        );
    }
    let failed = wait_for("spans counted as export_failed", || {
        let metrics = http
            .get(format!("{}/metrics", server.base))
            .send()
            .ok()?
            .text()
            .ok()?;
        metrics
            .lines()
            .find(|l| {
                l.starts_with("sealcache_telemetry_dropped")
                    && l.contains("signal=\"spans\"")
                    && l.contains("reason=\"export_failed\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|&n| n > 0.0)
    });
    assert!(failed >= 1.0);
}
