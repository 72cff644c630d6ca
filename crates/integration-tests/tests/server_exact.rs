//! Byte-exact answers over HTTP, against the server binary and a real TLS + mTLS + ACL
//! redis-server: whatever JSON text a PUT accepts, a lookup returns those bytes (from L1 and from
//! Redis); what could not be returned exactly is refused with 400 and stored nowhere; a write Redis
//! refuses for memory is 507 `store_full` and counted.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use reqwest::blocking::Client;
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use serde_json::value::RawValue;

#[path = "common/server.rs"]
mod common;
use common::{Server, Stack, start_server};

/// One stack, a server with L1 (the writer) and one without (every lookup reads Redis).
struct Fixture {
    stack: Stack,
    with_l1: Server,
    without_l1: Server,
    key: String,
    http: Client,
}

impl Fixture {
    fn start() -> Self {
        let stack = Stack::start();
        let vars = |l1: &str| {
            let mut v = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
            v.push(("SEALCACHE_L1_CAPACITY".into(), l1.into()));
            v
        };
        let with_l1 = start_server(&vars("10000"), None);
        let without_l1 = start_server(&vars("0"), None);
        let key = stack.secret(layout::API_KEY);
        Self {
            stack,
            with_l1,
            without_l1,
            key,
            http: Client::new(),
        }
    }

    fn send(&self, method: reqwest::Method, url: String, body: String) -> (u16, String) {
        let r = self
            .http
            .request(method, url)
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// PUTs `response` (JSON text, spliced in as it is) for request `text`.
    fn put(&self, text: &str, response: &str) -> (u16, String) {
        let body = format!(
            r#"{{"text": {}, "operation": "qa", "response": {response} }}"#,
            serde_json::to_string(text).unwrap()
        );
        self.send(
            reqwest::Method::PUT,
            format!("{}/v1/cache/entries", self.with_l1.base),
            body,
        )
    }

    /// The `response` bytes of a lookup on `server`, `None` on a miss.
    fn lookup(&self, server: &Server, text: &str) -> Option<String> {
        let body = serde_json::json!({"text": text, "operation": "qa"}).to_string();
        let (status, answer) = self.send(
            reqwest::Method::POST,
            format!("{}/v1/cache/lookup", server.base),
            body,
        );
        assert_eq!(status, 200, "{answer}");
        // Fields as raw text: a `null` response is a response, not an absent one.
        let parsed: std::collections::HashMap<&str, &RawValue> =
            serde_json::from_str(&answer).unwrap();
        (parsed["hit"].get() == "true").then(|| parsed["response"].get().to_owned())
    }
}

static CASE: AtomicU64 = AtomicU64::new(0);

fn ws() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![" ", "\n", "\t", "\r", ""]), 0..3)
        .prop_map(|v| v.concat())
}

/// Numbers as written by any language: big and tiny, signs, fractions, exponents.
fn number() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::sample::select(vec![
            "0",
            "7",
            "12345678901234567890123",
            "9007199254740993",
        ]),
        prop::option::of("[0-9]{1,25}"),
        prop::option::of((
            prop::sample::select(vec!["e", "E"]),
            prop::sample::select(vec!["", "+", "-"]),
            "[0-9]{1,3}",
        )),
    )
        .prop_map(|(neg, int, frac, exp)| {
            let mut n = String::new();
            if neg {
                n.push('-');
            }
            n.push_str(int);
            if let Some(f) = frac {
                n.push('.');
                n.push_str(&f);
            }
            if let Some((e, sign, digits)) = exp {
                n.push_str(e);
                n.push_str(sign);
                n.push_str(&digits);
            }
            n
        })
}

/// Strings with every escape form, BMP and astral characters, and valid surrogate pairs.
fn string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 ]{0,8}",
        any::<char>()
            .prop_filter("unescaped", |c| *c >= ' ' && *c != '"' && *c != '\\')
            .prop_map(String::from),
        prop::sample::select(vec![
            r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t"
        ])
        .prop_map(String::from),
        (0u32..0xD800).prop_map(|u| format!("\\u{u:04x}")),
        (0xE000u32..=0xFFFF).prop_map(|u| format!("\\u{u:04X}")),
        (0xD800u32..0xDC00, 0xDC00u32..0xE000).prop_map(|(h, l)| format!("\\u{h:04x}\\u{l:04X}")),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|p| format!("\"{}\"", p.concat()))
}

fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        number(),
        string(),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            (
                prop::collection::vec((ws(), inner.clone(), ws()), 0..6),
                ws()
            )
                .prop_map(|(items, w)| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(a, v, b)| format!("{a}{v}{b}"))
                        .collect();
                    format!("[{w}{}]", items.join(","))
                }),
            (
                prop::collection::vec((string(), ws(), inner, ws()), 0..6),
                ws()
            )
                .prop_map(|(members, w)| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, a, v, b)| format!("{k}{a}:{b}{v}"))
                        .collect();
                    format!("{{{w}{}}}", members.join(" , "))
                }),
        ]
    })
}

#[test]
fn every_accepted_json_text_comes_back_byte_for_byte() {
    let fx = Fixture::start();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&json_text(), |text| {
            let name = format!("case {}", CASE.fetch_add(1, Ordering::Relaxed));
            let (status, body) = fx.put(&name, &text);
            prop_assert_eq!(status, 201, "{}", body);
            prop_assert_eq!(fx.lookup(&fx.with_l1, &name), Some(text.clone()));
            prop_assert_eq!(fx.lookup(&fx.without_l1, &name), Some(text));
            Ok(())
        })
        .unwrap();

    // Named cases of the report: a 23-digit integer, deep nesting past serde_json's 128 levels
    // (the limit of a `Value` round trip) up to thousands of levels.
    for (name, text) in [
        (
            "big integer",
            r#"{"tokens": 12345678901234567890123}"#.to_owned(),
        ),
        (
            "deep 129",
            format!("{}1{}", "[".repeat(129), "]".repeat(129)),
        ),
        (
            "deep 5000",
            format!("{}\"x\"{}", r#"{"a":"#.repeat(5000), "}".repeat(5000)),
        ),
    ] {
        let (status, body) = fx.put(name, &text);
        assert_eq!(status, 201, "{name}: {body}");
        assert_eq!(
            fx.lookup(&fx.with_l1, name).as_deref(),
            Some(&*text),
            "{name}"
        );
        assert_eq!(
            fx.lookup(&fx.without_l1, name).as_deref(),
            Some(&*text),
            "{name}"
        );
    }
}

#[test]
fn json_that_cannot_be_returned_exactly_is_refused_and_stored_nowhere() {
    let fx = Fixture::start();
    for (i, bad) in [
        r#""\ud800""#,
        r#"{"a": "\udc00"}"#,
        r#"["\ud83d", 1]"#,
        r#""\ud83d\u0041""#,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("bad {i}");
        let (status, body) = fx.put(&name, bad);
        assert_eq!(status, 400, "{bad}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "invalid_request", "{body}");
        assert!(!body.contains("ud800"), "the error never echoes input");
        assert_eq!(fx.lookup(&fx.with_l1, &name), None);
        assert_eq!(fx.lookup(&fx.without_l1, &name), None);
    }
    // The server is healthy and every later lookup answers.
    let (status, _) = fx.put("good", r#""ok""#);
    assert_eq!(status, 201);
    assert_eq!(
        fx.lookup(&fx.without_l1, "good").as_deref(),
        Some(r#""ok""#)
    );
}

#[test]
fn a_write_redis_refuses_for_memory_is_507_store_full_and_counted() {
    let fx = Fixture::start();
    let (status, _) = fx.put("before", r#"{"v":"old"}"#);
    assert_eq!(status, 201);
    let mut admin = fx.stack.admin();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut admin)
        .unwrap();
    let (status, body) = fx.put("at the limit", r#"{"v":1}"#);
    assert_eq!(status, 507, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "store_full");
    // Not served by the writer's L1, not in Redis.
    assert_eq!(fx.lookup(&fx.with_l1, "at the limit"), None);
    assert_eq!(fx.lookup(&fx.without_l1, "at the limit"), None);
    // A refused overwrite leaves the stored value, everywhere.
    let (status, _) = fx.put("before", r#"{"v":"new"}"#);
    assert_eq!(status, 507);
    assert_eq!(
        fx.lookup(&fx.with_l1, "before").as_deref(),
        Some(r#"{"v":"old"}"#)
    );
    let get = |path: &str| -> serde_json::Value {
        fx.http
            .get(format!("{}{path}", fx.with_l1.base))
            .header("Authorization", format!("Bearer {}", fx.key))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let metrics = get("/internal/cache/metrics");
    assert_eq!(
        metrics["performance"]["write_failures"]["oom"], 2,
        "{metrics}"
    );
    let status = get("/internal/cache/security-status");
    assert_eq!(status["write_failures"]["oom"], 2, "{status}");
    let text = fx
        .http
        .get(format!("{}/metrics", fx.with_l1.base))
        .header("Authorization", format!("Bearer {}", fx.key))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("sealcache_write_failures_total{")
                && l.contains("reason=\"oom\"")
                && l.ends_with(" 2")),
        "{text}"
    );
}
