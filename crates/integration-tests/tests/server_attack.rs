//! The server binary under attack and load, on loopback, against a real TLS + mTLS + ACL
//! redis-server: slow clients are cut off within the configured timeouts, connections and
//! in-flight requests are capped, a huge declared body is refused at once, a flood of large
//! stores keeps memory bounded, API-key guessing is refused and logged in aggregate without locking
//! out the valid key from the same address, and every error response (the parser's too) has the
//! JSON error body and a request id.
//!
//! Every loop here is bounded in count and time.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use serde_json::Value;

#[path = "common/server.rs"]
mod common;
#[path = "common/raw.rs"]
mod raw;
use common::{Server, Stack, start_server};
use raw::{json_error, read_to_close};

const HEADER_TIMEOUT: u64 = 2;
const BODY_TIMEOUT: u64 = 2;
const REQUEST_TIMEOUT: u64 = 4;
const MAX_CONNECTIONS: usize = 24;
const MAX_IN_FLIGHT: usize = 4;
const AUTH_LIMIT: usize = 5;
const AUTH_BLOCK: u64 = 3;

struct Fixture {
    /// Kept alive for the server (its redis-server and files).
    _stack: Stack,
    server: Server,
    key: String,
    log: std::path::PathBuf,
}

fn start(extra: &[(&str, &str)]) -> Fixture {
    let stack = Stack::start();
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    for (k, v) in [
        (
            "SEALCACHE_HEADER_READ_TIMEOUT_SECS",
            HEADER_TIMEOUT.to_string(),
        ),
        ("SEALCACHE_BODY_READ_TIMEOUT_SECS", BODY_TIMEOUT.to_string()),
        (
            "SEALCACHE_REQUEST_TIMEOUT_SECS",
            REQUEST_TIMEOUT.to_string(),
        ),
        ("SEALCACHE_MAX_CONNECTIONS", MAX_CONNECTIONS.to_string()),
        ("SEALCACHE_MAX_IN_FLIGHT", MAX_IN_FLIGHT.to_string()),
        ("SEALCACHE_AUTH_FAILURE_LIMIT", AUTH_LIMIT.to_string()),
        ("SEALCACHE_AUTH_BLOCK_SECS", AUTH_BLOCK.to_string()),
    ] {
        vars.push((k.to_owned(), v));
    }
    for (k, v) in extra {
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let log = stack.path().join("server.log");
    let server = start_server(&vars, Some(&log));
    let key = stack.secret(layout::API_KEY);
    Fixture {
        _stack: stack,
        server,
        key,
        log,
    }
}

impl Fixture {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    }

    /// VmRSS and VmHWM of the server process, in KiB.
    fn memory(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.server.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap()
                .parse()
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn metrics(&self) -> String {
        Client::new()
            .get(format!("{}/metrics", self.server.base))
            .bearer_auth(&self.key)
            .send()
            .unwrap()
            .text()
            .unwrap()
    }
}

#[test]
fn slow_and_idle_clients_are_cut_off_within_the_timeouts() {
    let fx = start(&[]);
    let limit = Duration::from_secs(HEADER_TIMEOUT) + Duration::from_millis(1500);

    // Idle: a connection that sends nothing.
    let (_, took) = read_to_close(fx.connect());
    assert!(took <= limit, "idle connection held {took:?}");

    // Header drip: a header line every 400 ms, never finishing.
    let mut drip = fx.connect();
    let started = Instant::now();
    drip.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    drip.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut closed = false;
    for i in 0..40 {
        if drip
            .write_all(format!("X-Drip-{i}: a\r\n").as_bytes())
            .is_err()
        {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if matches!(drip.read(&mut buf), Ok(0)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dripping header was never cut off");
    assert!(started.elapsed() <= limit + Duration::from_secs(1));

    // Idle after a keep-alive request.
    let mut keep = fx.connect();
    keep.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = keep.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (_, took) = read_to_close(keep);
    assert!(took <= limit, "idle keep-alive connection held {took:?}");

    // A client that pipelines requests and never reads its responses: once the server's writes
    // make no progress for the write-stall limit (the request timeout), the connection is closed.
    let mut greedy = fx.connect();
    let requests = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(30_000);
    let writer = {
        let mut w = greedy.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&requests);
        })
    };
    std::thread::sleep(Duration::from_secs(REQUEST_TIMEOUT + 2));
    greedy
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answered = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match greedy.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                answered += buf[..n]
                    .windows(12)
                    .filter(|w| w == b"HTTP/1.1 200")
                    .count();
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break false;
            }
            Err(_) => break true,
        }
    };
    assert!(
        closed,
        "a client that never reads kept its connection ({answered} answers read)"
    );
    assert!(answered < 30_000);
    drop(greedy);
    writer.join().unwrap();

    // Slow body: a byte every second (each gap under the body timeout) is stopped by the request
    // timeout with 408 and the JSON body.
    let mut slow = fx.connect();
    let started = Instant::now();
    slow.write_all(
        format!(
            "PUT /v1/cache/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
            fx.key
        )
        .as_bytes(),
    )
    .unwrap();
    let writer = {
        let mut w = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..20 {
                if w.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };
    let (response, _) = read_to_close(slow);
    let took = started.elapsed();
    let (status, body, _) = json_error(&response);
    assert_eq!(status, 408, "{response}");
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(
        took <= Duration::from_secs(REQUEST_TIMEOUT + 2),
        "a slow body held the request for {took:?}"
    );
    writer.join().unwrap();

    // A stalled body (no byte after the headers) ends within the body timeout.
    let mut stalled = fx.connect();
    let started = Instant::now();
    stalled
        .write_all(
            format!(
                "PUT /v1/cache/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
                fx.key
            )
            .as_bytes(),
        )
        .unwrap();
    let (response, _) = read_to_close(stalled);
    assert!(
        started.elapsed() <= Duration::from_secs(BODY_TIMEOUT + 2),
        "a stalled body held the request for {:?}",
        started.elapsed()
    );
    let (status, body, _) = json_error(&response);
    assert_eq!(status, 408, "{response}");
    assert_eq!(body["error"]["code"], "request_timeout");
}

#[test]
fn connections_over_the_cap_wait_without_memory_growth_and_in_flight_is_shed() {
    let fx = start(&[("SEALCACHE_HEADER_READ_TIMEOUT_SECS", "3")]);
    // Fill every connection slot with a half-sent request.
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut s = fx.connect();
            s.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (rss_before, _) = fx.memory();
    // 300 more connections: they wait in the kernel's accept queue, not in the server.
    let queued: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", fx.server.port)).ok())
        .collect();
    let mut probe = fx.connect();
    probe
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(
        probe.read(&mut buf).is_err(),
        "a connection over the cap was served at once"
    );
    let (rss_after, _) = fx.memory();
    assert!(
        rss_after < rss_before + 4096,
        "300 queued connections grew the server by {} KiB",
        rss_after.saturating_sub(rss_before)
    );
    drop(queued);
    // When the held connections time out, the waiting one is served.
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (response, _) = read_to_close(probe);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(held);

    // In flight: requests holding a slot (slow bodies) make the next one 503 + Retry-After.
    let slow: Vec<TcpStream> = (0..MAX_IN_FLIGHT)
        .map(|_| {
            let mut s = fx.connect();
            s.write_all(
                format!(
                    "PUT /v1/cache/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
                    fx.key
                )
                .as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = Client::new()
        .post(format!("{}/v1/cache/lookup", fx.server.base))
        .bearer_auth(&fx.key)
        .json(&serde_json::json!({"text": "t", "operation": "qa"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    // The liveness probe is never shed.
    let health = Client::new()
        .get(format!("{}/health", fx.server.base))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(slow);
}

#[test]
fn a_huge_declared_body_is_refused_at_once_and_large_stores_keep_memory_bounded() {
    // A container-like budget: L1 at most 16 MiB.
    let fx = start(&[
        ("SEALCACHE_L1_MAX_BYTES", "16777216"),
        ("SEALCACHE_MAX_IN_FLIGHT", "64"),
    ]);
    // 10 GiB declared, nothing sent: 413 at once, no key needed to be refused.
    for auth in [false, true] {
        let mut s = fx.connect();
        let started = Instant::now();
        let key_header = if auth {
            format!("Authorization: Bearer {}\r\n", fx.key)
        } else {
            String::new()
        };
        s.write_all(
            format!(
                "PUT /v1/cache/entries HTTP/1.1\r\nHost: x\r\n{key_header}Content-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let (response, _) = read_to_close(s);
        assert!(started.elapsed() < Duration::from_secs(1));
        let (status, body, _) = json_error(&response);
        assert_eq!(status, 413);
        assert_eq!(body["error"]["code"], "payload_too_large");
    }

    // A body somewhat over the limit, sent whole: the client reads the 413 (the server reads and
    // discards the rest instead of resetting the connection under it), every time.
    let over = "x".repeat(1_500_000);
    for _ in 0..10 {
        let r = Client::new()
            .put(format!("{}/v1/cache/entries", fx.server.base))
            .bearer_auth(&fx.key)
            .header("content-type", "application/json")
            .body(over.clone())
            .send()
            .expect("the 413 is read, not a reset");
        assert_eq!(r.status(), 413);
    }

    // A flood of ~900 KB stores from 8 clients: RSS stays bounded and the server keeps answering.
    // English text from the corpus, without characters JSON escapes (the body stays ~900 KB).
    let text: String = common::corpus()
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .concat()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == '.')
        .collect();
    let value = text.repeat(900_000 / text.len().max(1) + 1);
    let value = &value[..900_000];
    let body_for = |i: usize| {
        serde_json::json!({"text": format!("flood {i}"), "operation": "qa", "response": {"text": value, "i": i}})
            .to_string()
    };
    let (_, hwm_before) = fx.memory();
    let stored = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..48 {
            let (fx, body_for, stored) = (&fx, &body_for, &stored);
            scope.spawn(move || {
                let http = Client::new();
                for i in 0..6 {
                    let sent = http
                        .put(format!("{}/v1/cache/entries", fx.server.base))
                        .bearer_auth(&fx.key)
                        .header("content-type", "application/json")
                        .body(body_for(t * 100 + i))
                        .send();
                    match sent {
                        Ok(r) if r.status() == 201 => {
                            stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        // Shed (503 + Retry-After) before the body was read: an honest answer
                        // under a flood; the client may see it or only the closed connection.
                        Ok(r) => assert_eq!(r.status(), 503),
                        Err(e) => assert!(e.is_request(), "{e}"),
                    }
                }
            });
        }
    });
    let stored = stored.into_inner();
    assert!(stored >= 60, "only {stored} of 288 large stores succeeded");
    let (_, hwm_after) = fx.memory();
    assert!(
        hwm_after < 160 * 1024,
        "peak RSS {hwm_after} KiB under a 900 KB store flood (was {hwm_before} KiB, {stored} stored)"
    );
    let health = Client::new()
        .get(format!("{}/health", fx.server.base))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    let lookup = Client::new()
        .post(format!("{}/v1/cache/lookup", fx.server.base))
        .bearer_auth(&fx.key)
        .json(&serde_json::json!({"text": "flood 3", "operation": "qa"}))
        .send()
        .unwrap();
    assert_eq!(lookup.status(), 200);
    eprintln!("flood: {stored} of 288 stored; peak RSS {hwm_before} -> {hwm_after} KiB");
}

#[test]
fn api_key_guessing_is_refused_after_the_limit_without_locking_out_the_valid_key() {
    let fx = start(&[]);
    let http = Client::new();
    let lookup = |key: Option<&str>| {
        let mut request = http
            .post(format!("{}/v1/cache/lookup", fx.server.base))
            .json(&serde_json::json!({"text": "t", "operation": "qa"}));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.send().unwrap()
    };
    let mut statuses = Vec::new();
    for i in 0..200 {
        let response = lookup(Some(&format!("guess-{i}")));
        statuses.push(response.status().as_u16());
        if i >= AUTH_LIMIT {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=AUTH_BLOCK).contains(&retry));
        }
    }
    assert!(
        statuses[..AUTH_LIMIT].iter().all(|&s| s == 401),
        "{statuses:?}"
    );
    assert!(
        statuses[AUTH_LIMIT..].iter().all(|&s| s == 429),
        "{statuses:?}"
    );
    // The valid key from the same address goes through while that address is blocked: behind NAT
    // or docker-proxy every client shares it, and a valid key is never refused because other
    // requests failed.
    for _ in 0..3 {
        assert_eq!(lookup(Some(&fx.key)).status(), 200);
    }
    // A wrong key, or none, is still refused with 429 and Retry-After while the block lasts.
    for key in [Some("guess-again"), None] {
        let blocked = lookup(key);
        assert_eq!(blocked.status(), 429);
        let retry: u64 = blocked.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=AUTH_BLOCK).contains(&retry));
        let body: Value = blocked.json().unwrap();
        assert_eq!(body["error"]["code"], "too_many_auth_failures");
    }

    let metrics = fx.metrics();
    let count = |ty: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("sealcache_security_events_total{")
                    && l.contains(&format!("type=\"{ty}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        count("api_auth_failed"),
        202.0,
        "every failure counted, the refused ones during the block too"
    );
    assert_eq!(count("api_rate_limited"), 1.0);
    // 202 failures, a handful of log records: the first failure, one aggregate, the block; the
    // 197 refused during the block add none.
    let log = std::fs::read_to_string(&fx.log).unwrap();
    let records = log
        .lines()
        .filter(|l| l.contains("api_auth_failed") || l.contains("api_rate_limited"))
        .count();
    assert!((2..=4).contains(&records), "{records} records:\n{log}");
    assert!(
        log.contains("count=4") || log.contains("\"count\":4"),
        "{log}"
    );

    // After the block a wrong key is a plain 401 again, and the valid key still works.
    std::thread::sleep(Duration::from_secs(AUTH_BLOCK) + Duration::from_millis(300));
    assert_eq!(lookup(Some("guess-after")).status(), 401);
    assert_eq!(lookup(Some(&fx.key)).status(), 200);
}

#[test]
fn every_error_response_has_the_json_body_and_a_bounded_request_id() {
    let fx = start(&[]);
    let raw = |request: &[u8]| -> String {
        let mut s = fx.connect();
        s.write_all(request).unwrap();
        let (response, _) = read_to_close(s);
        response
    };
    // 404 and 405 from the router.
    for (request, status, code) in [
        (
            &b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
            404,
            "not_found",
        ),
        (
            b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            405,
            "method_not_allowed",
        ),
    ] {
        let response = raw(request);
        let (got, body, _) = json_error(&response);
        assert_eq!(got, status, "{response}");
        assert_eq!(body["error"]["code"], code);
    }
    // Parser-level errors, answered by hyper before routing: 431 and 400.
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let response = raw(big.as_bytes());
    let (status, body, _) = json_error(&response);
    assert_eq!(status, 431, "{response}");
    assert_eq!(body["error"]["code"], "headers_too_large");
    let response = raw(b"NOT HTTP AT ALL\r\n\r\n");
    let (status, body, _) = json_error(&response);
    assert_eq!(status, 400, "{response}");
    assert_eq!(body["error"]["code"], "malformed_request");

    // Request ids: a sane one is echoed, an oversized or control-laden one is replaced.
    let http = Client::new();
    let id_of = |id: &str| {
        http.get(format!("{}/health", fx.server.base))
            .header("x-request-id", id)
            .send()
            .unwrap()
            .headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(id_of("trace-42"), "trace-42");
    let long = "x".repeat(129);
    let replaced = id_of(&long);
    assert_ne!(replaced, long);
    assert!(replaced.len() <= 128);
    assert_eq!(id_of(&"y".repeat(128)), "y".repeat(128));
    // Ids of ours are distinct and tell nothing of how many requests came before (a counter did).
    let ours: Vec<u64> = (0..8)
        .map(|_| {
            let id = http
                .get(format!("{}/health", fx.server.base))
                .send()
                .unwrap()
                .headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let hex = id.strip_prefix("sc-").unwrap_or_else(|| panic!("{id}"));
            assert_eq!(hex.len(), 16, "{id}");
            u64::from_str_radix(hex, 16).unwrap()
        })
        .collect();
    let distinct: std::collections::BTreeSet<u64> = ours.iter().copied().collect();
    assert_eq!(distinct.len(), ours.len(), "{ours:x?}");
    assert!(
        ours.windows(2).all(|w| w[1].abs_diff(w[0]) > 1 << 16),
        "ids count up: {ours:x?}"
    );
}
