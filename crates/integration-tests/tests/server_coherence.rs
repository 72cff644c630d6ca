//! Two `sealcache-server` processes on one Redis, then on a Redis Cluster: an overwrite, an
//! invalidation by operation and a clear made through one reach the other's L1 within a second.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sealcache_config_gen::layout;
use sealcache_testkit::cluster::{ClusterOptions, RedisCluster};
use sealcache_testkit::free_port;
use serde_json::{Value, json};

#[path = "common/server.rs"]
mod common;
use common::{Server, Stack, start_server};

struct Pair {
    a: Server,
    b: Server,
    key: String,
    http: Client,
}

impl Pair {
    fn auth(&self, r: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        r.header("Authorization", format!("Bearer {}", self.key))
    }

    fn store(&self, server: &Server, text: &str, response: &Value) {
        let r = self
            .auth(self.http.put(format!("{}/v1/cache/entries", server.base)))
            .json(&json!({"text": text, "operation": "qa", "response": response}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    }

    fn lookup(&self, server: &Server, text: &str) -> Option<Value> {
        let body: Value = self
            .auth(self.http.post(format!("{}/v1/cache/lookup", server.base)))
            .json(&json!({"text": text, "operation": "qa"}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (body["hit"] == true).then(|| body["response"].clone())
    }

    fn invalidate(&self, server: &Server, body: &Value) {
        let r = self
            .auth(
                self.http
                    .post(format!("{}/internal/cache/invalidate", server.base)),
            )
            .json(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    fn status(&self, server: &Server) -> Value {
        self.auth(
            self.http
                .get(format!("{}/internal/cache/security-status", server.base)),
        )
        .send()
        .unwrap()
        .json()
        .unwrap()
    }

    /// Polls B until `want` holds, for at most one second.
    fn b_within_a_second(&self, text: &str, want: impl Fn(Option<Value>) -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            if want(self.lookup(&self.b, text)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn check(&self) {
        for s in [&self.a, &self.b] {
            let status = self.status(s);
            assert_eq!(status["l1_coherence"]["subscribed"], true, "{status:#}");
        }
        self.store(&self.a, "coherent", &json!({"v": 1}));
        assert_eq!(self.lookup(&self.b, "coherent"), Some(json!({"v": 1})));
        // B now holds an L1 copy; A overwrites.
        assert_eq!(self.lookup(&self.b, "coherent"), Some(json!({"v": 1})));
        self.store(&self.a, "coherent", &json!({"v": 2}));
        assert!(
            self.b_within_a_second("coherent", |v| v == Some(json!({"v": 2}))),
            "B served the overwrite within 1 s"
        );
        self.invalidate(&self.a, &json!({"operation": "qa"}));
        assert!(
            self.b_within_a_second("coherent", |v| v.is_none()),
            "B dropped the invalidated entry within 1 s"
        );
        self.store(&self.a, "coherent", &json!({"v": 3}));
        assert_eq!(self.lookup(&self.b, "coherent"), Some(json!({"v": 3})));
        self.invalidate(&self.a, &json!({"all": true, "confirm": "invalidate-all"}));
        assert!(
            self.b_within_a_second("coherent", |v| v.is_none()),
            "B dropped its copies after a clear within 1 s"
        );
    }
}

#[test]
fn two_servers_on_one_redis_keep_their_l1_coherent() {
    let stack = Stack::start();
    let start = || {
        let listen = format!("127.0.0.1:{}", free_port());
        start_server(&stack.server_env(&stack.redis_url(), &listen), None)
    };
    let pair = Pair {
        a: start(),
        b: start(),
        key: stack.secret(layout::API_KEY),
        http: Client::new(),
    };
    pair.check();
}

#[test]
fn two_servers_on_a_cluster_keep_their_l1_coherent() {
    // The keyring and API key come from a generated deployment; Redis is the cluster.
    let stack = Stack::start();
    let cluster = RedisCluster::start(ClusterOptions::default());
    let start = || {
        let listen = format!("127.0.0.1:{}", free_port());
        start_server(&stack.cluster_server_env(&cluster, &listen), None)
    };
    let pair = Pair {
        a: start(),
        b: start(),
        key: stack.secret(layout::API_KEY),
        http: Client::new(),
    };
    let status = pair.status(&pair.a);
    assert_eq!(status["cluster"]["cluster_state"], "ok", "{status:#}");
    pair.check();
}

/// With `PUBLISH` taken from the application user while both servers run, coherence fails safe on
/// both sides: A refuses the overwrite it cannot announce (and leaves no new value behind), and B,
/// whose heartbeat cannot get through either, stops serving its L1 copy within two heartbeats,
/// and says so in its status. Once the right is back, both serve L1 again.
#[test]
fn a_refused_publish_fails_safe_on_every_replica() {
    let stack = Stack::start();
    let start = || {
        let listen = format!("127.0.0.1:{}", free_port());
        start_server(&stack.server_env(&stack.redis_url(), &listen), None)
    };
    let pair = Pair {
        a: start(),
        b: start(),
        key: stack.secret(layout::API_KEY),
        http: Client::new(),
    };
    pair.check();
    pair.store(&pair.a, "announced", &json!({"v": 1}));
    // B holds an L1 copy.
    assert_eq!(pair.lookup(&pair.b, "announced"), Some(json!({"v": 1})));
    assert_eq!(pair.lookup(&pair.b, "announced"), Some(json!({"v": 1})));

    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "cache_app", "-publish"])
        .query(&mut stack.admin())
        .unwrap();
    let r = pair
        .auth(pair.http.put(format!("{}/v1/cache/entries", pair.a.base)))
        .json(&json!({"text": "announced", "operation": "qa", "response": {"v": 2}}))
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        503,
        "an overwrite the other replicas cannot hear of is refused"
    );
    // Within two heartbeats B stops serving its L1 copy of v1: it reads Redis, where the refused
    // write left nothing new (v1 or nothing, never a value A refused).
    let started = Instant::now();
    let mut b_status = pair.status(&pair.b);
    while b_status["l1_coherence"]["subscribed"] != false {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "B still says subscribed: {b_status:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
        b_status = pair.status(&pair.b);
    }
    assert_ne!(pair.lookup(&pair.b, "announced"), Some(json!({"v": 2})));
    assert_ne!(pair.lookup(&pair.a, "announced"), Some(json!({"v": 2})));
    let check = b_status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "l1_coherence")
        .unwrap()
        .clone();
    assert_eq!(check["passed"], false, "{check}");
    assert!(
        pair.status(&pair.a)["security_events_by_type"]["config_weak"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "cache_app", "+publish"])
        .query(&mut stack.admin())
        .unwrap();
    let started = Instant::now();
    while pair.status(&pair.b)["l1_coherence"]["subscribed"] != true
        || pair.status(&pair.a)["l1_coherence"]["subscribed"] != true
    {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "coherence did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pair.check();
}
