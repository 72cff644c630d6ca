//! Streamed answers over HTTP: recorded OpenAI and Anthropic SSE streams stored with `"events"`
//! and replayed byte-exact as `text/event-stream`; a stream changed in Redis is a miss and a
//! counted `decrypt_failed`; an aborted upload stores nothing; events that could not replay exactly
//! are refused.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::time::Duration;

use reqwest::blocking::Client;
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use serde_json::{Value, json};

#[path = "common/server.rs"]
mod common;
#[path = "common/sse.rs"]
mod sse;
use common::{Stack, start_server};

#[test]
fn streams_are_stored_and_replayed_byte_exact() {
    let stack = Stack::start();
    let listen = format!("127.0.0.1:{}", free_port());
    let server = start_server(&stack.server_env(&stack.redis_url(), &listen), None);
    let key = stack.secret(layout::API_KEY);
    let http = Client::new();
    let lookup = |body: &Value, accept: Option<&str>| {
        let mut r = http
            .post(format!("{}/v1/cache/lookup", server.base))
            .header("Authorization", format!("Bearer {key}"))
            .json(body);
        if let Some(accept) = accept {
            r = r.header("Accept", accept);
        }
        let r = r.send().unwrap();
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        (
            r.status().as_u16(),
            content_type,
            r.bytes().unwrap().to_vec(),
        )
    };
    let store = |body: &Value| {
        let r = http
            .put(format!("{}/v1/cache/entries", server.base))
            .header("Authorization", format!("Bearer {key}"))
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let status = || -> Value {
        http.get(format!("{}/internal/cache/security-status", server.base))
            .header("Authorization", format!("Bearer {key}"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };

    for (name, bytes) in sse::fixtures() {
        let request = json!({"text": name, "operation": "chat", "model": "recorded"});
        // A miss asked as a stream is the usual JSON.
        let (code, content_type, body) = lookup(&request, Some("text/event-stream"));
        assert_eq!((code, content_type.as_str()), (200, "application/json"));
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"hit": false})
        );

        let events = serde_json::to_value(sse::parse(&bytes)).unwrap();
        let mut put = request.clone();
        put["events"] = events.clone();
        assert_eq!(store(&put).0, 201, "{name}");
        let (code, content_type, body) = lookup(&request, Some("text/event-stream"));
        assert_eq!((code, content_type.as_str()), (200, "text/event-stream"));
        assert_eq!(body, bytes, "{name}: byte-exact");
        // Without `Accept: text/event-stream`: the events as JSON.
        let (_, content_type, body) = lookup(&request, None);
        assert_eq!(content_type, "application/json");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["hit"], true);
        assert_eq!(body["events"], events);
        assert!(body.get("response").is_none());
    }

    // Multi-line data is one `data:` line per line; a JSON entry asked as a stream is JSON.
    let request = json!({"text": "lines", "operation": "chat"});
    let mut put = request.clone();
    put["events"] = json!([{"event": "note", "data": "one\ntwo\n"}, {"data": ""}, {"event": null, "data": "x"}]);
    assert_eq!(store(&put).0, 201);
    let (_, _, body) = lookup(&request, Some("text/event-stream"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "event: note\ndata: one\ndata: two\ndata: \n\ndata: \n\ndata: x\n\n"
    );
    let plain = json!({"text": "plain", "operation": "chat"});
    let mut put = plain.clone();
    put["response"] = json!({"a": 1});
    assert_eq!(store(&put).0, 201);
    let (_, content_type, body) = lookup(&plain, Some("text/event-stream"));
    assert_eq!(content_type, "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["response"],
        json!({"a": 1})
    );

    // Refused: events that could not replay as given, both kinds at once, neither, unknown
    // members.
    for bad in [
        json!({"events": [{"data": "a\r\nb"}]}),
        json!({"events": [{"event": "a\nb", "data": "x"}]}),
        json!({"events": [{"event": "", "data": "x"}]}),
        json!({"events": []}),
        json!({"events": [{"data": "x", "id": "1"}]}),
        json!({"events": [{"event": "x"}]}),
        json!({"events": [{"data": "x"}], "response": 1}),
        json!({}),
    ] {
        let mut put = json!({"text": "refused", "operation": "chat"});
        put.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (code, body) = store(&put);
        assert_eq!(code, 400, "{put}: {body}");
    }
    let refused = json!({"text": "refused", "operation": "chat"});
    assert_eq!(
        serde_json::from_slice::<Value>(&lookup(&refused, None).2).unwrap(),
        json!({"hit": false})
    );

    // Tampered in Redis (spliced bytes, another stream's value): a miss, counted.
    let mut admin = stack.admin();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("ai_cache:v3:chat:*")
        .query(&mut admin)
        .unwrap();
    let values: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| redis::cmd("GET").arg(k).query(&mut admin).unwrap())
        .collect();
    let before = status()["security_events_by_type"]["decrypt_failed"]
        .as_u64()
        .unwrap_or(0);
    let first = &values[0];
    // Cut inside the ciphertext: past the 49-byte data-key header and the envelope header.
    let dropped = [&first[..80], &first[120..]].concat();
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg(&dropped)
        .query(&mut admin)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&keys[1])
        .arg(&values[2])
        .query(&mut admin)
        .unwrap();
    // The server's L1 holds its own copies; its next reads of these keys must go to Redis. A
    // new server process starts with an empty L1.
    let listen = format!("127.0.0.1:{}", free_port());
    let fresh = start_server(&stack.server_env(&stack.redis_url(), &listen), None);
    for name in [
        "openai_chat_completions.sse",
        "anthropic_messages.sse",
        "openai_responses.sse",
        "lines",
        "plain",
    ] {
        let request = json!({"text": name, "operation": "chat", "model": "recorded"});
        let request = if name.ends_with(".sse") {
            request
        } else {
            json!({"text": name, "operation": "chat"})
        };
        let r = http
            .post(format!("{}/v1/cache/lookup", fresh.base))
            .header("Authorization", format!("Bearer {key}"))
            .header("Accept", "text/event-stream")
            .json(&request)
            .send()
            .unwrap();
        let _ = r.bytes();
    }
    let after: Value = http
        .get(format!("{}/internal/cache/security-status", fresh.base))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        after["security_events_by_type"]["decrypt_failed"]
            .as_u64()
            .unwrap_or(0),
        2,
        "both tampered entries counted, as misses ({before} before on the first server)"
    );

    // An upload cut off mid-body (the client aborted its stream) stores nothing.
    let body = serde_json::to_vec(&json!({
        "text": "aborted upload", "operation": "chat",
        "events": [{"data": "partial"}, {"data": "more"}],
    }))
    .unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        tcp,
        "PUT /v1/cache/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    tcp.write_all(&body[..body.len() / 2]).unwrap();
    drop(tcp);
    std::thread::sleep(Duration::from_millis(300));
    let aborted = json!({"text": "aborted upload", "operation": "chat"});
    assert_eq!(
        serde_json::from_slice::<Value>(&lookup(&aborted, None).2).unwrap(),
        json!({"hit": false})
    );
}

/// A holder publishes its stream's events as it receives them (`POST
/// /v1/cache/leases/{token}/events`); a client of another replica that looks up with `Accept:
/// text/event-stream` and `wait_ms` gets `200 text/event-stream` at once and each event as it is
/// published, then the rest once the holder stored the stream: byte-exact. A token without its
/// lease publishes nothing (`409 lease_lost`); a holder that abandons its lease ends the
/// followers' responses incomplete.
#[test]
fn a_live_stream_is_followed_from_another_replica_over_http() {
    use std::io::Read as _;
    let stack = Stack::start();
    let servers: Vec<_> = (0..2)
        .map(|_| {
            let listen = format!("127.0.0.1:{}", free_port());
            start_server(&stack.server_env(&stack.redis_url(), &listen), None)
        })
        .collect();
    let (a, b) = (servers[0].base.clone(), servers[1].base.clone());
    let key = stack.secret(layout::API_KEY);
    let http = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let bytes = sse::fixtures()[0].1.clone();
    let events = sse::parse(&bytes);
    let events_json = |range: std::ops::Range<usize>| serde_json::to_value(&events[range]).unwrap();
    let request = json!({"text": "live over http", "operation": "chat", "model": "recorded"});
    let post = |url: String, body: &Value| {
        let r = http
            .post(url)
            .header("Authorization", format!("Bearer {key}"))
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };

    let mut leased = request.clone();
    leased["lease"] = json!({"ttl_ms": 20_000});
    let (code, body) = post(format!("{a}/v1/cache/lookup"), &leased);
    assert_eq!(code, 200);
    let token = body["lease"]["token"].as_str().unwrap().to_owned();
    let append = |from: usize, to: usize| {
        post(
            format!("{a}/v1/cache/leases/{token}/events"),
            &json!({"from": from, "events": events_json(from..to)}),
        )
    };
    assert_eq!(append(0, 2), (200, json!({"appended": 2, "next": 2})));

    // The follower on replica B: the response starts at once, with the events published so far.
    let mut waiting = request.clone();
    waiting["wait_ms"] = json!(10_000);
    let mut follower = http
        .post(format!("{b}/v1/cache/lookup"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Accept", "text/event-stream")
        .json(&waiting)
        .send()
        .unwrap();
    assert_eq!(follower.status().as_u16(), 200);
    assert_eq!(follower.headers()["content-type"], "text/event-stream");
    let first_two = sealcache::render_sse(&events[..2]);
    let mut got = vec![0u8; first_two.len()];
    follower.read_exact(&mut got).unwrap();
    assert_eq!(got, first_two, "the first events arrive live");
    assert_eq!(append(2, 4).0, 200);
    let next_two = sealcache::render_sse(&events[2..4]);
    let mut got = vec![0u8; next_two.len()];
    follower.read_exact(&mut got).unwrap();
    assert_eq!(got, next_two);
    // Completed: the whole stream stored with the token; the follower gets the rest from it.
    let mut put = request.clone();
    put["events"] = events_json(0..events.len());
    put["lease"] = json!({"token": token});
    let r = http
        .put(format!("{a}/v1/cache/entries"))
        .header("Authorization", format!("Bearer {key}"))
        .json(&put)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let mut rest = Vec::new();
    follower.read_to_end(&mut rest).unwrap();
    let mut whole = first_two.clone();
    whole.extend_from_slice(&next_two);
    whole.extend_from_slice(&rest);
    assert_eq!(whole, bytes, "byte-exact");
    // The completion removed the frames the holder published.
    let mut admin = stack.admin();
    let frames: Vec<String> = redis::cmd("KEYS")
        .arg("*:live:*")
        .query(&mut admin)
        .unwrap();
    assert!(frames.is_empty(), "{frames:?}");
    // The lease is completed: its token publishes nothing more.
    let (code, body) = append(0, 1);
    assert_eq!(code, 409);
    assert_eq!(body["error"]["code"], "lease_lost");

    // Abandoned: the follower's response ends incomplete.
    let abandoned = json!({"text": "abandoned live", "operation": "chat"});
    let mut leased = abandoned.clone();
    leased["lease"] = json!({"ttl_ms": 20_000});
    let (_, body) = post(format!("{a}/v1/cache/lookup"), &leased);
    let token = body["lease"]["token"].as_str().unwrap().to_owned();
    let (code, _) = post(
        format!("{a}/v1/cache/leases/{token}/events"),
        &json!({"from": 0, "events": events_json(0..1)}),
    );
    assert_eq!(code, 200);
    let mut waiting = abandoned.clone();
    waiting["wait_ms"] = json!(10_000);
    let mut follower = http
        .post(format!("{b}/v1/cache/lookup"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Accept", "text/event-stream")
        .json(&waiting)
        .send()
        .unwrap();
    let first = sealcache::render_sse(&events[..1]);
    let mut got = vec![0u8; first.len()];
    follower.read_exact(&mut got).unwrap();
    assert_eq!(got, first);
    let r = http
        .delete(format!("{a}/v1/cache/leases/{token}"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut rest = Vec::new();
    assert!(
        follower.read_to_end(&mut rest).is_err(),
        "an abandoned stream is not passed off as complete"
    );
}
