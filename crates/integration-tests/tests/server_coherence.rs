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
    let password = stack.path().join("cluster_app_password");
    std::fs::write(&password, cluster.app_password()).unwrap();
    let start = || {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut vars: Vec<(String, String)> = stack
            .server_env(&stack.redis_url(), &listen)
            .into_iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "REDIS_URL"
                        | "REDIS_PASSWORD_FILE"
                        | "REDIS_TLS_CA_PATH"
                        | "REDIS_TLS_CERT_PATH"
                        | "REDIS_TLS_KEY_PATH"
                )
            })
            .collect();
        let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
        vars.extend([
            (
                "REDIS_CLUSTER_NODES".to_owned(),
                cluster.seed_urls().join(","),
            ),
            ("REDIS_PASSWORD_FILE".to_owned(), path(password.clone())),
            ("REDIS_TLS_CA_PATH".to_owned(), path(cluster.ca_cert())),
            (
                "REDIS_TLS_CERT_PATH".to_owned(),
                path(cluster.client_cert()),
            ),
            ("REDIS_TLS_KEY_PATH".to_owned(), path(cluster.client_key())),
        ]);
        start_server(&vars, None)
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
