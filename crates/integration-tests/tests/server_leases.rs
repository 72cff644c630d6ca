//! Leases over HTTP with two `sealcache-server` processes on one Redis and on a Redis Cluster: 50
//! concurrent lookups-with-lease for one request get exactly one lease and 50 identical answers
//! (the model is called once); a leader whose replica is killed mid-computation is taken over by
//! one waiter within the lease TTL, and nobody waits past `wait_ms`; `max_age_seconds` and
//! `no_cache`; lease tokens checked strictly.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sealcache_config_gen::layout;
use sealcache_testkit::cluster::{ClusterOptions, RedisCluster};
use sealcache_testkit::free_port;
use serde_json::{Value, json};

#[path = "common/server.rs"]
mod common;
use common::{Server, Stack, start_server};

struct Api {
    key: String,
    http: Client,
}

impl Api {
    fn new(stack: &Stack) -> Self {
        Self {
            key: stack.secret(layout::API_KEY),
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    fn lookup(&self, server: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{server}/v1/cache/lookup"))
            .header("Authorization", format!("Bearer {}", self.key))
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    fn store(&self, server: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{server}/v1/cache/entries"))
            .header("Authorization", format!("Bearer {}", self.key))
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    fn release(&self, server: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{server}/v1/cache/leases/{token}"))
            .header("Authorization", format!("Bearer {}", self.key))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }
}

fn single(stack: &Stack) -> Server {
    let listen = format!("127.0.0.1:{}", free_port());
    start_server(&stack.server_env(&stack.redis_url(), &listen), None)
}

fn on_cluster(stack: &Stack, cluster: &RedisCluster) -> Server {
    let listen = format!("127.0.0.1:{}", free_port());
    start_server(&stack.cluster_server_env(cluster, &listen), None)
}

/// 50 clients, alternating between the two replicas, ask at once; the one that gets the lease
/// calls "the model" (400 ms) and stores with its token; the 49 others wait and get its answer.
fn fifty_clients_one_lease(replicas: [&Server; 2], api: &Arc<Api>, text: &str) {
    let model_calls = Arc::new(AtomicUsize::new(0));
    let leases = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let base = replicas[i % 2].base.clone();
            let (api, model_calls, leases, barrier) = (
                api.clone(),
                model_calls.clone(),
                leases.clone(),
                barrier.clone(),
            );
            let text = text.to_owned();
            std::thread::spawn(move || {
                let request = json!({"text": text, "operation": "qa", "model": "gpt-4o-mini"});
                let mut lookup = request.clone();
                lookup["lease"] = json!({"ttl_ms": 10_000});
                lookup["wait_ms"] = json!(15_000);
                barrier.wait();
                let (status, body) = api.lookup(&base, &lookup);
                assert_eq!(status, 200, "{body}");
                if body["hit"] == true {
                    return body["response"].clone();
                }
                let token = body["lease"]["token"]
                    .as_str()
                    .expect("a miss with a lease");
                assert!(body["lease"]["expires_in_ms"].as_u64().unwrap() > 9_000);
                leases.fetch_add(1, Ordering::SeqCst);
                let n = model_calls.fetch_add(1, Ordering::SeqCst) + 1;
                std::thread::sleep(Duration::from_millis(400));
                let answer =
                    json!({"answer": "forty-two", "call": n, "big": 12345678901234567890u64});
                let mut store = request;
                store["response"] = answer.clone();
                store["lease"] = json!({"token": token});
                let (status, body) = api.store(&base, &store);
                assert_eq!(status, 201, "{body}");
                answer
            })
        })
        .collect();
    let answers: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(leases.load(Ordering::SeqCst), 1, "exactly one lease");
    assert_eq!(
        model_calls.load(Ordering::SeqCst),
        1,
        "the model was called once"
    );
    assert_eq!(answers.len(), 50);
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "50 identical answers: {answers:?}"
    );
}

#[test]
fn fifty_clients_on_two_replicas_of_one_redis_get_one_lease_and_one_answer() {
    let stack = Stack::start();
    let (a, b) = (single(&stack), single(&stack));
    let api = Arc::new(Api::new(&stack));
    fifty_clients_one_lease([&a, &b], &api, "a popular question");
}

#[test]
fn fifty_clients_on_two_replicas_of_a_cluster_get_one_lease_and_one_answer() {
    let stack = Stack::start();
    let cluster = RedisCluster::start(ClusterOptions::default());
    let (a, b) = (on_cluster(&stack, &cluster), on_cluster(&stack, &cluster));
    let api = Arc::new(Api::new(&stack));
    for text in [
        "a popular question",
        "another one",
        "a third, in another slot",
    ] {
        fifty_clients_one_lease([&a, &b], &api, text);
    }
}

/// The leader's replica is killed (`kill -9`) while the leader holds the lease and has not
/// stored: one waiter on the other replica takes over within the lease TTL, the others get its
/// answer, and no request waits past its `wait_ms`.
#[test]
fn a_killed_leader_is_taken_over_within_the_lease_ttl() {
    let stack = Stack::start();
    let (mut a, b) = (single(&stack), single(&stack));
    let api = Arc::new(Api::new(&stack));
    let request = json!({"text": "the leader dies", "operation": "qa"});
    let mut lookup = request.clone();
    lookup["lease"] = json!({"ttl_ms": 1500});
    lookup["wait_ms"] = json!(4000);
    let (status, body) = api.lookup(&a.base, &lookup);
    assert_eq!(status, 200);
    assert!(body["lease"]["token"].is_string(), "{body}");
    let leased_at = Instant::now();
    // The leader computes... and its replica dies (the client would die with it).
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    let model_calls = Arc::new(AtomicUsize::new(0));
    let took_over_after = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let (api, base, lookup, request) =
                (api.clone(), b.base.clone(), lookup.clone(), request.clone());
            let (model_calls, took_over_after) = (model_calls.clone(), took_over_after.clone());
            std::thread::spawn(move || {
                let asked = Instant::now();
                let (status, body) = api.lookup(&base, &lookup);
                let waited = asked.elapsed();
                assert_eq!(status, 200, "{body}");
                assert!(
                    waited < Duration::from_millis(4000 + 500),
                    "a request waited {waited:?}, past wait_ms"
                );
                if body["hit"] == true {
                    return body["response"].clone();
                }
                let token = body["lease"]["token"].as_str().unwrap().to_owned();
                took_over_after.lock().unwrap().push(leased_at.elapsed());
                model_calls.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                let mut store = request;
                store["response"] = json!({"by": "the new leader"});
                store["lease"] = json!({"token": token});
                assert_eq!(api.store(&base, &store).0, 201);
                json!({"by": "the new leader"})
            })
        })
        .collect();
    let answers: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        model_calls.load(Ordering::SeqCst),
        1,
        "one waiter took over"
    );
    let took_over = took_over_after.lock().unwrap()[0];
    assert!(
        took_over >= Duration::from_millis(1300) && took_over < Duration::from_millis(1500 + 500),
        "took over {took_over:?} after the lease was taken (TTL 1.5 s)"
    );
    assert!(
        answers
            .iter()
            .all(|a| *a == json!({"by": "the new leader"}))
    );

    // A holder alive but slower than everybody's wait: the waiters answer a miss at wait_ms.
    let mut slow = json!({"text": "a slow holder", "operation": "qa"});
    slow["lease"] = json!({"ttl_ms": 60_000});
    let (_, body) = api.lookup(&b.base, &slow);
    assert!(body["lease"]["token"].is_string());
    slow["wait_ms"] = json!(700);
    let asked = Instant::now();
    let (status, body) = api.lookup(&b.base, &slow);
    let waited = asked.elapsed();
    assert_eq!((status, body), (200, json!({"hit": false})));
    assert!(
        waited >= Duration::from_millis(650) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
}

#[test]
fn max_age_seconds_no_cache_and_lease_tokens_over_http() {
    let stack = Stack::start();
    let (a, b) = (single(&stack), single(&stack));
    let api = Api::new(&stack);
    let request = json!({"text": "aging", "operation": "qa"});
    let mut store = request.clone();
    store["response"] = json!({"v": 1});
    assert_eq!(api.store(&a.base, &store).0, 201);
    let mut young = request.clone();
    young["max_age_seconds"] = json!(1);
    for server in [&a.base, &b.base, &a.base] {
        let (status, body) = api.lookup(server, &young);
        assert_eq!(
            (status, &body["response"]),
            (200, &json!({"v": 1})),
            "{body}"
        );
    }
    std::thread::sleep(Duration::from_millis(2100));
    for server in [&a.base, &b.base] {
        assert_eq!(api.lookup(server, &young), (200, json!({"hit": false})));
        // Without max_age it is a hit, and `Age` says how old.
        let r = api
            .http
            .post(format!("{server}/v1/cache/lookup"))
            .header("Authorization", format!("Bearer {}", api.key))
            .json(&request)
            .send()
            .unwrap();
        let age: u64 = r.headers()["age"].to_str().unwrap().parse().unwrap();
        assert!((2..=3).contains(&age), "Age: {age}");
        assert_eq!(r.json::<Value>().unwrap()["hit"], true);
    }
    // A miss by max_age takes the lease when asked.
    young["lease"] = json!({"ttl_ms": 30_000});
    let (_, body) = api.lookup(&b.base, &young);
    let token = body["lease"]["token"].as_str().unwrap().to_owned();
    // Abandoned through the other replica: the next caller gets the lease at once.
    assert_eq!(
        api.release(&a.base, &token),
        (200, json!({"released": true}))
    );
    assert_eq!(
        api.release(&a.base, &token),
        (200, json!({"released": false}))
    );

    // no_cache: the entry is there, yet the caller gets the lease.
    let mut fresh = request.clone();
    fresh["no_cache"] = json!(true);
    fresh["lease"] = json!({"ttl_ms": 30_000});
    let (status, body) = api.lookup(&a.base, &fresh);
    assert_eq!(status, 200);
    assert_eq!(body["hit"], false, "{body}");
    let token = body["lease"]["token"].as_str().unwrap().to_owned();
    // A token is accepted only with its own request...
    let mut elsewhere = json!({"text": "another", "operation": "qa", "response": 1});
    elsewhere["lease"] = json!({"token": token});
    let (status, body) = api.store(&a.base, &elsewhere);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "lease.token belongs to another request"
    );
    // ... and completes it.
    store["response"] = json!({"v": 2});
    store["lease"] = json!({"token": token});
    assert_eq!(api.store(&a.base, &store).0, 201);
    assert_eq!(
        api.release(&b.base, &token),
        (200, json!({"released": false})),
        "completed by the store"
    );
    let (_, body) = api.lookup(&b.base, &request);
    assert_eq!(body["response"], json!({"v": 2}));

    // Tokens are parsed strictly: nothing else names a key.
    let digest = "0".repeat(64);
    let secret = "0".repeat(32);
    for bad in [
        "nope".to_owned(),
        format!("qa.{digest}.{}", secret.to_uppercase().replace('0', "A")),
        format!("QA.{digest}.{secret}"),
        format!("qa.{}.{secret}", &digest[1..]),
        format!("qa:v2:qa.{digest}.{secret}"),
        format!("%2E%2E%2Fqa.{digest}.{secret}"),
        format!("qa*.{digest}.{secret}"),
        format!("qa.{digest}.{secret}.x"),
    ] {
        let (status, body) = api.release(&a.base, &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    // A well-formed token nobody holds releases nothing.
    assert_eq!(
        api.release(&a.base, &format!("qa.{digest}.{secret}")),
        (200, json!({"released": false}))
    );
    // Bounds.
    for (body, what) in [
        (
            json!({"text": "x", "operation": "qa", "lease": {"ttl_ms": 0}}),
            "ttl_ms",
        ),
        (
            json!({"text": "x", "operation": "qa", "lease": {"ttl_ms": 600_001}}),
            "ttl_ms",
        ),
        (
            json!({"text": "x", "operation": "qa", "wait_ms": 29_500}),
            "wait_ms",
        ),
        (
            json!({"text": "x", "operation": "qa", "lease": {"ttl_ms": 10, "x": 1}}),
            "unknown",
        ),
    ] {
        let (status, body) = api.lookup(&a.base, &body);
        assert_eq!(status, 400, "{what}: {body}");
    }
}
